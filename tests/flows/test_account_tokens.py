""""Applications connectées": the patient's live refresh tokens, first-party clients included, and
their revocation from the account pages (ASVS 5.0 §10.4.9)."""

import re

import pytest
from sqlalchemy import select

from idp import audit, delegation as delegations, token as tokens
from idp.extensions import db
from tests.conftest import PatientFactory, csrf_token
from tests.oauth.conftest import NATIVE_CALLBACK, OidcDriver, register

REVOKE_ACTION = re.compile(r'action="/account/sessions/applications/([^"/]+)/revoke"')


@pytest.fixture
def oidc(client, patients):
    return OidcDriver(client, patients)


@pytest.fixture
def mydsp(app):
    """MyDSP, the native app: first party, public, refresh tokens."""
    return register(name="MyDSP", redirect_uris=[NATIVE_CALLBACK], auth_method="none", first_party=True,
                    scope="openid profile offline_access")


def family_of(refresh_token: str) -> str:
    return tokens.find_refresh_token(refresh_token).family_id


def applications_section(page: str) -> str:
    return page[page.index("Applications connectées"):]


def revoke(client, family_id: str):
    page = client.get("/account/sessions").get_data(as_text=True)
    return client.post(f"/account/sessions/applications/{family_id}/revoke", data={"csrf_token": csrf_token(page)})


def test_first_party_applications_holding_a_refresh_token_are_listed(client, oidc, patients, rp_client, mydsp):
    patient = patients.create()
    viewer_tokens = oidc.tokens(rp_client, patient, scope="openid offline_access")
    app_tokens = oidc.tokens(mydsp, patient, scope="openid offline_access")
    no_refresh = register(name="Laboratoire interne", redirect_uris=["https://lab.example.lu/cb"], first_party=True, scope="openid")
    oidc.tokens(no_refresh, patient, scope="openid", redirect_uri="https://lab.example.lu/cb")

    section = applications_section(client.get("/account/sessions").get_data(as_text=True))

    assert "DSP viewer" in section and "MyDSP" in section
    assert "Laboratoire interne" not in section, "a client without a refresh token holds nothing to revoke"
    assert set(REVOKE_ACTION.findall(section)) == {family_of(viewer_tokens["refresh_token"]), family_of(app_tokens["refresh_token"])}
    assert "Connectée depuis le" in section and "Dernière utilisation" in section


def test_a_rotated_refresh_token_stays_one_application(client, oidc, patients, rp_client):
    patient = patients.create()
    first = oidc.tokens(rp_client, patient, scope="openid offline_access")
    oidc.refresh(rp_client, first["refresh_token"])
    section = applications_section(client.get("/account/sessions").get_data(as_text=True))
    assert REVOKE_ACTION.findall(section) == [family_of(first["refresh_token"])]


def test_revoking_an_application_ends_its_refresh_token_family_and_drops_it_from_the_list(client, oidc, patients, rp_client, mydsp):
    patient = patients.create()
    first = oidc.tokens(rp_client, patient, scope="openid offline_access")
    rotated = oidc.refresh(rp_client, first["refresh_token"]).get_json()
    kept = oidc.tokens(mydsp, patient, scope="openid offline_access")
    family = family_of(first["refresh_token"])

    done = revoke(client, family)

    assert done.status_code == 303 and done.headers["Location"].endswith("/account/sessions")
    assert oidc.refresh(rp_client, rotated["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert oidc.userinfo(rotated["access_token"]).status_code == 401
    page = client.get("/account/sessions").get_data(as_text=True)
    assert "L&#39;accès de DSP viewer à votre compte a été retiré." in page
    section = applications_section(page)
    assert family not in section and "DSP viewer" not in section
    assert "MyDSP" in section and oidc.refresh(mydsp, kept["refresh_token"]).status_code == 200, "the other application stays"
    names = db.session.scalars(select(audit.AuditEvent).where(audit.AuditEvent.name == audit.Event.TOKEN_REVOKED.value))
    (event,) = names
    assert event.account_id == patient.account.id and event.client_id == rp_client.client_id


def test_another_patients_application_cannot_be_revoked_by_changing_the_id(app, client, oidc, patients, rp_client):
    victim = patients.create()
    victim_tokens = oidc.tokens(rp_client, victim, scope="openid offline_access")
    family = family_of(victim_tokens["refresh_token"])

    intruder_browser = app.test_client()
    intruder_patients = PatientFactory(app, intruder_browser)
    intruder_patients.login(patients.create(email="other@example.lu", mobile="+352621000999"), channel="sms")
    assert family not in intruder_browser.get("/account/sessions").get_data(as_text=True)

    assert revoke(intruder_browser, family).status_code == 404
    assert oidc.refresh(rp_client, victim_tokens["refresh_token"]).status_code == 200


def test_revoking_needs_the_csrf_token(client, oidc, patients, rp_client):
    patient_tokens = oidc.tokens(rp_client, patients.create(), scope="openid offline_access")
    response = client.post(f"/account/sessions/applications/{family_of(patient_tokens['refresh_token'])}/revoke")
    assert response.status_code in (303, 400)
    assert oidc.refresh(rp_client, patient_tokens["refresh_token"]).status_code == 200


def test_an_assistant_sees_and_revokes_the_tokens_they_hold_for_another_patients_record(app, client, patients, rp_client):
    parent = patients.create(given_name="Marc", family_name="Weber")
    child = patients.create(given_name="Léa", family_name="Weber", email="lea@example.lu", mobile="+352621000333")
    found = delegations.grant(child.account, parent.account, created_by=child.account)
    held, _ = tokens.issue(rp_client, child.account, "openid offline_access", grant_type="authorization_code", delegation=found,
                           include_refresh_token=True)
    db.session.commit()
    family = family_of(held["refresh_token"])
    child_browser = app.test_client()
    PatientFactory(app, child_browser).login(child)
    assert family not in child_browser.get("/account/sessions").get_data(as_text=True), "the owner removes the assistant instead"
    assert revoke(child_browser, family).status_code == 404

    patients.login(parent)
    section = applications_section(client.get("/account/sessions").get_data(as_text=True))
    assert family in section and "dossier de L. Weber" in section
    assert revoke(client, family).status_code == 303
    assert tokens.find_refresh_token(held["refresh_token"]).revoked_at is not None
