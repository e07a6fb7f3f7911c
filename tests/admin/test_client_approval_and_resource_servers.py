"""Admins approve held self-registrations and name resource servers, in the admin UI and the CLI."""

import json
from datetime import timedelta

from idp import audit, client as clients, clock
from idp.extensions import db
from tests.admin.test_admin_ui import NEW_CLIENT, AdminBrowser  # noqa: F401  (AdminBrowser through the fixture)
from tests.admin.test_admin_ui import admin  # noqa: F401  (fixture)


def self_registered(client, **metadata) -> dict:
    token = clients.issue_initial_access_token(clock.now() + timedelta(hours=1), note="test")
    db.session.commit()
    body = {"client_name": "Pharmacie du Centre", "redirect_uris": ["https://pharmacie.example.lu/callback"], **metadata}
    response = client.post("/register", json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_the_admin_sees_a_held_client_and_approves_it(client, admin):
    registered = self_registered(client, scope="openid matricule")
    admin.login()
    listing = client.get("/admin/").get_data(as_text=True)
    assert "En attente d&#39;approbation" in listing or "En attente d'approbation" in listing
    url = f"/admin/clients/{registered['client_id']}"
    page = client.get(url).get_data(as_text=True)
    assert "scope:matricule" in page and "Approuver le client" in page
    assert clients.get(registered["client_id"]) is None

    response = admin.post(f"{url}/approve", form_page=url)
    assert response.status_code == 303
    db.session.expire_all()
    approved = clients.get(registered["client_id"])
    assert approved is not None and approved.pending_approval == [] and approved.approved_reservations == ["scope:matricule"]
    (event,) = audit.recent(name=audit.Event.CLIENT_APPROVED.value)
    assert event.actor == "admin:alice" and event.details["approved"] == ["scope:matricule"]
    assert "Approuver le client" not in client.get(url).get_data(as_text=True)


def test_approval_needs_the_csrf_token(client, admin):
    registered = self_registered(client, scope="openid matricule")
    admin.login()
    assert client.post(f"/admin/clients/{registered['client_id']}/approve").status_code == 400
    assert clients.get(registered["client_id"]) is None


def test_the_admin_names_a_resource_server_and_one_audience_has_one(client, admin):
    admin.login()
    admin.create_client(name="DSP API", resource_audience="https://api.dsp.esante.lu", grant_types=["client_credentials"],
                        redirect_uris="", post_logout_redirect_uris="", scope="openid")
    (api,) = clients.all_clients()
    assert api.resource_audience == "https://api.dsp.esante.lu"
    assert clients.resource_server_for("https://api.dsp.esante.lu").client_id == api.client_id
    refused = admin.create_client(name="Autre API", resource_audience="https://api.dsp.esante.lu", grant_types=["client_credentials"],
                                  redirect_uris="", post_logout_redirect_uris="", scope="openid")
    assert refused.status_code == 400 and "already the resource server" in refused.get_data(as_text=True)
    assert len(clients.all_clients()) == 1


def test_the_cli_names_and_unnames_a_resource_server(runner):
    created = runner.invoke(args=["clients", "create", "--name", "DSP API", "--grant-type", "client_credentials", "--scope", "openid",
                                  "--resource-server", "https://api.dsp.esante.lu", "--json"])
    assert created.exit_code == 0, created.output
    client_id = json.loads(created.output)["client_id"]
    assert json.loads(created.output)["resource_audience"] == "https://api.dsp.esante.lu"
    fragment = runner.invoke(args=["clients", "update", client_id, "--resource-server", "https://api.dsp.esante.lu/#x"])
    assert fragment.exit_code == 1 and "without fragment" in fragment.output
    cleared = runner.invoke(args=["clients", "update", client_id, "--resource-server", "", "--json"])
    assert cleared.exit_code == 0 and json.loads(cleared.output)["resource_audience"] is None


def test_self_registration_cannot_name_itself_a_resource_server(client):
    registered = self_registered(client, resource_audience="https://api.dsp.esante.lu")
    db.session.expire_all()
    assert clients.get(registered["client_id"]).resource_audience is None
    assert clients.resource_server_for("https://api.dsp.esante.lu") is None
