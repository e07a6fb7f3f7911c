"""Self-registration (RFC 7591 with an initial access token) cannot take what only an admin may give.

Reserved: the scopes ``matricule``, ``delegations`` and ``assisted_patients``; the grants token
exchange and ``client_credentials``; a public ``sub``; names that pass for the agency's own
services. A registration asking for any of them is kept but held: the client does not exist for
the protocol until an admin approves it (``idp clients approve`` or the admin UI). RFC 7591 §3.2.1
lets the server decide what it provisions; the answer says what awaits approval.
"""

from datetime import timedelta

import pytest

from idp import audit, client as clients, clock
from idp.extensions import db
from tests.conftest import authorization_url, pkce_pair
from tests.oauth.test_rfc7591_registration import MACHINE_CLIENT, WEB_CLIENT, bearer, register


@pytest.fixture
def initial_token(app) -> str:
    token = clients.issue_initial_access_token(clock.now() + timedelta(hours=1), note="tests")
    db.session.commit()
    return token


RESERVED_ASKS = [
    ({"scope": "openid profile matricule"}, "scope:matricule"),
    ({"scope": "openid delegations"}, "scope:delegations"),
    ({"scope": "openid assisted_patients"}, "scope:assisted_patients"),
    ({"grant_types": ["authorization_code", clients.TOKEN_EXCHANGE]}, f"grant_type:{clients.TOKEN_EXCHANGE}"),
    ({"subject_type": "public"}, "subject_type:public"),
    ({"client_name": "Agence eSanté — DSP officiel"}, "client_name"),
    ({"client_name": "DSP OFFICIEL"}, "client_name"),
    ({"client_name": "Agence e-Sante"}, "client_name"),
    ({"client_name": "Agence eSante\u0301"}, "client_name"),  # e + combining acute accent
    ({"client_name": "Agence \u0435Sant\u0435"}, "client_name"),  # Cyrillic е for the Latin e
]


def authorize_status(client, client_id: str) -> int:
    _, challenge = pkce_pair()
    return client.get(authorization_url(client_id, WEB_CLIENT["redirect_uris"][0], challenge)).status_code


@pytest.mark.parametrize(("change", "reason"), RESERVED_ASKS)
def test_a_registration_asking_for_something_reserved_is_held_until_an_admin_approves(client, initial_token, change, reason):
    response = register(client, initial_token, {**WEB_CLIENT, **change})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert [item for item in body["pending_approval"] if item == reason or item.startswith(reason + ":")], body["pending_approval"]
    assert authorize_status(client, body["client_id"]) == 400, "a held client does not exist for /authorize"
    token = client.post("/token", data={"grant_type": "authorization_code", "code": "x"}, auth=(body["client_id"], body["client_secret"]))
    assert token.status_code == 401 and token.get_json()["error"] == "invalid_client"


def test_similar_but_different_names_need_no_approval(client, initial_token):
    for name in ("Pharmacie Santé Plus", "Laboratoire Ketterthill", "Cabinet Dr Müller"):
        assert "pending_approval" not in register(client, initial_token, {**WEB_CLIENT, "client_name": name}).get_json(), name
        initial_token = clients.issue_initial_access_token(clock.now() + timedelta(hours=1), note="tests")
        db.session.commit()


def test_a_registration_without_reserved_asks_works_at_once(client, initial_token):
    body = register(client, initial_token, WEB_CLIENT).get_json()
    assert "pending_approval" not in body
    assert authorize_status(client, body["client_id"]) in (302, 303)


def test_a_machine_client_waits_for_approval_then_gets_tokens(client, initial_token, runner):
    body = register(client, initial_token, MACHINE_CLIENT).get_json()
    assert body["pending_approval"] == ["grant_type:client_credentials"]
    data = {"grant_type": "client_credentials", "client_id": body["client_id"], "client_secret": body["client_secret"]}
    held = client.post("/token", data=data)
    assert held.status_code == 400 and held.get_json()["error"] == "invalid_client"  # RFC 6749 §5.2: 401 only with a header

    approved = runner.invoke(args=["clients", "approve", body["client_id"], "--json"])
    assert approved.exit_code == 0, approved.output
    assert client.post("/token", data=data).status_code == 200
    names = [event.name for event in audit.recent(limit=5)]
    assert audit.Event.CLIENT_APPROVED.value in names


def test_the_held_client_can_still_read_and_delete_its_registration(client, initial_token):
    body = register(client, initial_token, {**WEB_CLIENT, "scope": "openid matricule"}).get_json()
    read = client.get(f"/register/{body['client_id']}", headers=bearer(body["registration_access_token"]))
    assert read.status_code == 200 and read.get_json()["pending_approval"] == ["scope:matricule"]
    assert client.delete(f"/register/{body['client_id']}", headers=bearer(body["registration_access_token"])).status_code == 204


def test_an_approved_client_asking_for_more_through_rfc7592_is_held_again(client, initial_token, runner):
    body = register(client, initial_token, {**WEB_CLIENT, "scope": "openid matricule"}).get_json()
    assert runner.invoke(args=["clients", "approve", body["client_id"]]).exit_code == 0
    assert authorize_status(client, body["client_id"]) in (302, 303)
    same = client.put(f"/register/{body['client_id']}", headers=bearer(body["registration_access_token"]),
                      json={**WEB_CLIENT, "scope": "openid matricule", "client_id": body["client_id"]})
    assert same.status_code == 200 and "pending_approval" not in same.get_json(), "what was approved stays approved"
    more = client.put(f"/register/{body['client_id']}", headers=bearer(body["registration_access_token"]),
                      json={**WEB_CLIENT, "scope": "openid matricule delegations", "client_id": body["client_id"]})
    assert more.status_code == 200 and more.get_json()["pending_approval"] == ["scope:delegations"]
    assert authorize_status(client, body["client_id"]) == 400


def test_approving_a_client_that_waits_for_nothing_is_refused(client, initial_token, runner):
    body = register(client, initial_token, WEB_CLIENT).get_json()
    result = runner.invoke(args=["clients", "approve", body["client_id"]])
    assert result.exit_code == 1 and "nothing to approve" in result.output


def test_clients_registered_by_an_admin_need_no_approval(runner):
    result = runner.invoke(args=["clients", "create", "--name", "Agence eSanté — DSP officiel", "--redirect-uri",
                                 "https://dsp.esante.lu/callback", "--scope", "openid matricule delegations", "--json"])
    assert result.exit_code == 0, result.output
    import json

    created = json.loads(result.output)
    assert created["pending_approval"] == []
