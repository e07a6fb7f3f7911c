"""Admins' passkeys (instead of password + TOTP, ADMIN_REQUIRE_PASSKEY) and the helpdesk's removal
of a patient's passkeys."""

import html as html_entities
from datetime import timedelta

import pytest
from sqlalchemy import select

from idp import admin_session, audit, clock, messaging, passkey
from idp.extensions import db
from tests.admin.test_admin_ui import AdminBrowser
from tests.conftest import csrf_token
from tests.support import passkey_driver
from tests.support.soft_authenticator import SoftAuthenticator

ORIGIN, RP_ID = "http://127.0.0.1:5000", "127.0.0.1"


def text(response) -> str:
    return html_entities.unescape(response.get_data(as_text=True))


def add_admin_passkey(admin: AdminBrowser, authenticator: SoftAuthenticator, name: str = "YubiKey"):
    return passkey_driver.register(admin.client, authenticator, name, page="/admin/passkeys", options_url="/admin/passkeys/options",
                                   post_to="/admin/passkeys/new")


def passkey_login(client, authenticator):
    return passkey_driver.log_in(client, authenticator, page="/admin/login", options_url="/admin/login/passkey/options",
                                 post_to="/admin/login/passkey")


def live_admin_sessions() -> list[admin_session.AdminSession]:
    db.session.expire_all()
    return list(db.session.scalars(select(admin_session.AdminSession).where(admin_session.AdminSession.ended_at.is_(None))))


def test_an_admin_logs_in_with_a_passkey_instead_of_password_and_totp(client, app):
    admin = AdminBrowser(client)
    admin.login()
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    assert add_admin_passkey(admin, authenticator).status_code == 303
    assert "YubiKey" in text(client.get("/admin/passkeys"))
    client.post("/admin/logout", data={"csrf_token": csrf_token(text(client.get("/admin/")))})
    assert client.get("/admin/").status_code == 303

    response = passkey_login(client, authenticator)

    assert response.status_code == 303 and response.headers["Location"].endswith("/admin/")
    assert client.get("/admin/").status_code == 200
    success = db.session.scalars(select(audit.AuditEvent).where(audit.AuditEvent.name == audit.Event.ADMIN_LOGIN_SUCCEEDED.value)).all()[-1]
    assert success.details["method"] == "passkey" and success.details["amr"] == ["hwk", "user", "mfa"]


def test_registering_an_admin_passkey_needs_a_login_at_most_five_minutes_old(client):
    admin = AdminBrowser(client)
    admin.login()
    clock.advance(timedelta(seconds=301))
    token = csrf_token(text(client.get("/admin/passkeys")))

    assert passkey_driver.fetch_options(client, "/admin/passkeys/options", token).status_code == 403
    assert "plus de 5 minutes" in text(client.get("/admin/passkeys"))


def test_a_patients_passkey_does_not_open_the_admin_pages(client, patients):
    patient = patients.create()
    patients.login(patient)
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    passkey_driver.register(client, authenticator)

    response = passkey_login(client, authenticator)

    assert response.status_code == 400 and live_admin_sessions() == []


@pytest.mark.settings(ADMIN_REQUIRE_PASSKEY=True)
def test_required_passkeys_send_an_admin_without_one_to_register_it_first(client):
    admin = AdminBrowser(client)
    admin.login()

    assert client.get("/admin/").headers["Location"].endswith("/admin/passkeys")
    assert client.get("/admin/audit").headers["Location"].endswith("/admin/passkeys")
    assert client.get("/admin/passkeys").status_code == 200
    assert add_admin_passkey(admin, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)).status_code == 303
    assert client.get("/admin/").status_code == 200


@pytest.mark.settings(ADMIN_REQUIRE_PASSKEY=True)
def test_required_passkeys_refuse_password_and_totp_to_an_admin_who_has_one(client, app):
    admin = AdminBrowser(client)
    admin.login()
    authenticator = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    add_admin_passkey(admin, authenticator)
    client.post("/admin/logout", data={"csrf_token": csrf_token(text(client.get("/admin/passkeys")))})
    clock.advance(timedelta(seconds=31))  # the next TOTP step

    refused = admin.submit_login()

    assert refused.status_code == 400 and "se connecte avec une clé d'accès" in text(refused)
    assert live_admin_sessions() == []
    assert passkey_login(client, authenticator).status_code == 303


def test_the_helpdesk_removes_a_patients_passkeys_audited_and_the_patient_told(client, app, patients):
    patient = patients.create(email="rita@example.lu", mobile=None)
    patient_browser = app.test_client()
    patients.client = patient_browser
    patients.login(patient)
    passkey_driver.register(patient_browser, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN), "iPhone de Rita")
    admin = AdminBrowser(client, username="helpdesk")
    admin.login()

    found = text(client.get(f"/admin/patients/passkeys?matricule={patient.matricule}"))
    assert "iPhone de Rita" in found
    removed = client.post("/admin/patients/passkeys", data={"csrf_token": csrf_token(found), "matricule": patient.matricule})

    assert removed.status_code == 303
    assert passkey.passkeys_of(passkey.Owner(account_id=patient.account.id)) == []
    [event] = db.session.scalars(select(audit.AuditEvent).where(audit.AuditEvent.name == audit.Event.PASSKEY_REMOVED.value)).all()
    assert event.account_id == patient.account.id and event.actor == "admin:helpdesk"
    assert any("« iPhone de Rita » a été retirée" in message.body for message in messaging.outbox_messages("rita@example.lu"))


def test_the_helpdesk_removal_needs_the_admin_session_and_csrf(client, patients, app):
    patient = patients.create()
    assert client.post("/admin/patients/passkeys", data={"matricule": patient.matricule}).status_code in (303, 400)
    admin = AdminBrowser(client)
    admin.login()
    assert client.post("/admin/patients/passkeys", data={"matricule": patient.matricule}).status_code == 400
