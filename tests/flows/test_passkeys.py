"""Passkeys on the patient pages: « Mes clés d'accès », « Se connecter avec une clé d'accès », step 4.

The answers come from a software authenticator written from WebAuthn Level 3
(tests/support/soft_authenticator.py); the browser tests drive Chromium's virtual authenticator.
"""

import html as html_entities
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from idp import audit, clock, messaging, passkey, sso_session
from idp.assurance import ACR_HIGH, ACR_SUBSTANTIAL
from idp.extensions import db
from tests.conftest import authorization_url, csrf_token, pkce_pair, query_of
from tests.flows.conftest import audit_names
from tests.flows.test_activation import pending, wizard  # noqa: F401  (fixtures: a letter, the wizard driver)
from tests.support import passkey_driver
from tests.support.soft_authenticator import SoftAuthenticator

ORIGIN = "http://127.0.0.1:5000"  # the test issuer
RP_ID = "127.0.0.1"


def text(response) -> str:
    return html_entities.unescape(response.get_data(as_text=True))


@pytest.fixture
def authenticator():
    return SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)


@pytest.fixture
def patient_with_passkey(patients, client, authenticator):
    """A patient logged in with password + code who added a passkey; then logged out."""
    patient = patients.create()
    patients.login(patient)
    added = passkey_driver.register(client, authenticator)
    assert added.status_code == 303, text(added)
    sso_session.end_all(patient.account.id)
    db.session.commit()
    client.delete_cookie("esante_sso")
    return patient


def current_sessions() -> list[sso_session.SsoSession]:
    db.session.expire_all()
    return list(db.session.scalars(select(sso_session.SsoSession).where(sso_session.SsoSession.ended_at.is_(None))))


def test_a_passkey_with_user_verification_is_a_whole_login(client, patient_with_passkey, authenticator):
    response = passkey_driver.log_in(client, authenticator, next_url="/account")

    assert response.status_code == 303 and response.headers["Location"] == "/account"
    [session] = current_sessions()
    assert session.account_id == patient_with_passkey.account.id
    assert session.acr == "http://eidas.europa.eu/LoA/substantial"
    assert session.amr == ["hwk", "user", "mfa"], "RFC 8176: a hardware-bound key, the device verified its holder, two factors"
    assert client.get("/account").status_code == 200


def test_a_synced_passkey_is_recorded_as_a_software_key(patients, client):
    synced = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN, backup_eligible=True, backed_up=True, uses_counter=False)
    patients.login(patients.create())
    assert passkey_driver.register(client, synced).status_code == 303
    sso_session.end_all(current_sessions()[0].account_id)
    db.session.commit()
    client.delete_cookie("esante_sso")

    assert passkey_driver.log_in(client, synced).status_code == 303

    [session] = current_sessions()
    assert session.amr == ["swk", "user", "mfa"], "a synced passkey's key leaves the device: RFC 8176 swk"
    assert session.acr == "http://eidas.europa.eu/LoA/substantial"
    page = text(client.get("/account/passkeys"))
    assert "Synchronisée entre vos appareils" in page


def test_adding_a_passkey_needs_a_login_at_most_five_minutes_old(patients, client, authenticator):
    patient = patients.create()
    patients.login(patient)
    clock.advance(timedelta(seconds=301))

    page = client.get("/account/passkeys/new")
    options = passkey_driver.fetch_options(client, "/account/passkeys/options", csrf_token(text(page)))

    assert "reconnectez-vous" in text(page) and "Me reconnecter" in text(page)
    assert options.status_code == 403
    assert passkey.passkeys_of(passkey.Owner(account_id=patient.account.id)) == []
    patients.login(patient, next_url="/account/passkeys/new")  # the fresh login the page asks for
    assert passkey_driver.register(client, authenticator).status_code == 303


def test_a_registration_posted_after_five_minutes_is_refused_even_with_options_fetched_in_time(patients, client, authenticator):
    patient = patients.create()
    patients.login(patient)
    token = csrf_token(text(client.get("/account/passkeys/new")))
    options = passkey_driver.fetch_options(client, "/account/passkeys/options", token).get_json()
    clock.advance(timedelta(seconds=301))

    response = client.post("/account/passkeys/new", data={"csrf_token": token, "name": "Tard",
                                                          "credential": json.dumps(authenticator.create(options))})

    assert response.status_code == 400 and "reconnectez-vous" in text(response)
    assert passkey.passkeys_of(passkey.Owner(account_id=patient.account.id)) == []


def test_the_patient_names_lists_renames_and_deletes_passkeys(patients, client, authenticator):
    patient = patients.create()
    patients.login(patient)
    passkey_driver.register(client, authenticator, "iPhone de Rita")
    second = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    passkey_driver.register(client, second, "  Clé   USB  ")
    first, usb = passkey.passkeys_of(passkey.Owner(account_id=patient.account.id))
    assert (first.name, usb.name) == ("iPhone de Rita", "Clé USB")

    listing = text(client.get("/account/passkeys"))
    assert "iPhone de Rita" in listing and "Clé USB" in listing and "Liée à un seul appareil" in listing
    token = csrf_token(listing)
    assert client.post(f"/account/passkeys/{usb.id}/rename", data={"csrf_token": token, "name": "YubiKey bleue"}).status_code == 303
    assert client.post(f"/account/passkeys/{first.id}/delete", data={"csrf_token": token}).status_code == 303

    [left] = passkey.passkeys_of(passkey.Owner(account_id=patient.account.id))
    assert left.name == "YubiKey bleue"
    assert {"passkey:registered", "passkey:renamed", "passkey:removed"} <= set(audit_names())


def test_another_patients_passkey_can_be_neither_renamed_nor_deleted(patients, client, authenticator, app):
    owner = patients.create()
    patients.login(owner)
    passkey_driver.register(client, authenticator)
    [theirs] = passkey.passkeys_of(passkey.Owner(account_id=owner.account.id))
    other_browser = app.test_client()
    intruder = patients.create(email="autre@example.lu", mobile="+352621000999")
    patients.client = other_browser
    patients.login(intruder)
    token = csrf_token(text(other_browser.get("/account/passkeys")))

    assert other_browser.post(f"/account/passkeys/{theirs.id}/rename", data={"csrf_token": token, "name": "à moi"}).status_code == 404
    assert other_browser.post(f"/account/passkeys/{theirs.id}/delete", data={"csrf_token": token}).status_code == 404
    db.session.expire_all()
    assert passkey.passkeys_of(passkey.Owner(account_id=owner.account.id))[0].name == "iPhone de Rita"


@pytest.mark.parametrize("locale, added, removed", [
    ("fr", "Une clé d'accès « iPhone de Rita » a été ajoutée", "La clé d'accès « iPhone de Rita » a été retirée"),
    ("de", "Ein Passkey „iPhone de Rita“ wurde", "Der Passkey „iPhone de Rita“ wurde"),
    ("en", "A passkey “iPhone de Rita” was added", "The passkey “iPhone de Rita” was removed"),
])
def test_the_patient_is_told_on_every_channel_in_their_language(patients, client, authenticator, locale, added, removed):
    patient = patients.create(email="rita@example.lu", mobile="+352621000222")
    patient.account.locale = locale
    db.session.commit()
    patients.login(patient)
    passkey_driver.register(client, authenticator)
    [created] = passkey.passkeys_of(passkey.Owner(account_id=patient.account.id))
    client.post(f"/account/passkeys/{created.id}/delete", data={"csrf_token": csrf_token(text(client.get("/account/passkeys")))})

    for destination in ("rita@example.lu", "+352621000222"):
        bodies = [message.body for message in messaging.outbox_messages(destination)]
        assert any(added in body for body in bodies), (destination, bodies)
        assert any(removed in body for body in bodies), (destination, bodies)


def test_a_deleted_passkey_no_longer_logs_in(client, patient_with_passkey, authenticator, patients):
    patients.login(patient_with_passkey)
    [created] = passkey.passkeys_of(passkey.Owner(account_id=patient_with_passkey.account.id))
    credential_id = created.credential_id
    client.post(f"/account/passkeys/{created.id}/delete", data={"csrf_token": csrf_token(text(client.get("/account/passkeys")))})
    sso_session.end_all(patient_with_passkey.account.id)
    db.session.commit()
    client.delete_cookie("esante_sso")

    response = passkey_driver.log_in(client, authenticator)

    assert response.status_code == 400
    assert "n'est pas (ou plus) enregistrée" in text(response)
    assert f'data-passkey-unknown="{credential_id}" data-rp-id="127.0.0.1"' in text(response), \
        "WebAuthn Level 3 signalUnknownCredential: the authenticator may forget it"
    assert current_sessions() == []
    assert "passkey:login_failed" in audit_names()


def test_the_passkey_list_tells_the_authenticator_which_passkeys_are_still_accepted(patients, client):
    patient = patients.create()
    patients.login(patient)
    kept, deleted = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN), SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    passkey_driver.register(client, kept, "Gardée")
    passkey_driver.register(client, deleted, "Supprimée")
    first, second = passkey.passkeys_of(passkey.Owner(account_id=patient.account.id))
    client.post(f"/account/passkeys/{second.id}/delete", data={"csrf_token": csrf_token(text(client.get("/account/passkeys")))})

    page = text(client.get("/account/passkeys"))

    handle = db.session.scalar(select(passkey.PasskeyUser.user_handle).where(passkey.PasskeyUser.account_id == patient.account.id))
    assert f'data-passkey-accepted="[&#34;{first.credential_id}&#34;]"' in client.get("/account/passkeys").get_data(as_text=True)
    assert f'data-user-id="{handle}"' in page, "signalAllAcceptedCredentials names the user by the handle the passkeys carry"


def test_a_lost_device_never_locks_the_patient_out(client, patient_with_passkey, patients):
    """The password and a one-time code keep working for an account with passkeys."""
    response = patients.login(patient_with_passkey)

    assert response.status_code == 303
    assert current_sessions()[0].amr[0] == "pwd"


def test_a_disabled_account_cannot_log_in_with_its_passkey(client, patient_with_passkey, authenticator, runner):
    result = runner.invoke(args=["patients", "disable", patient_with_passkey.matricule, "--reason", "vol"])
    assert result.exit_code == 0, result.output

    response = passkey_driver.log_in(client, authenticator)

    assert response.status_code == 400 and current_sessions() == []


def test_a_malformed_answer_gets_the_login_page_with_a_message(client, patient_with_passkey):
    token, _ = passkey_driver.login_options(client)
    for credential in ("not json", json.dumps({"id": "x"}), json.dumps({"id": "AA", "rawId": "AA", "type": "public-key", "response": {}}),
                       "[]", json.dumps({"id": 1, "rawId": [], "response": "x"})):
        response = client.post("/login/passkey", data={"csrf_token": token, "credential": credential})
        assert response.status_code == 400, credential
        assert "La clé d'accès n'a pas pu être vérifiée" in text(response) or "expiré" in text(response)
        token, _ = passkey_driver.login_options(client)
    assert current_sessions() == []


def test_the_trail_shows_passkey_logins_and_changes_in_plain_words(client, patient_with_passkey, authenticator):
    passkey_driver.log_in(client, authenticator)

    trail = text(client.get("/account/trail"))

    assert "Connexion à votre compte eSanté avec une clé d'accès" in trail
    assert "Clé d'accès « iPhone de Rita » ajoutée" in trail


def test_passkey_logins_keep_the_login_pages_next_and_remember_box(client, patient_with_passkey, authenticator):
    response = passkey_driver.log_in(client, authenticator, next_url="/account/passkeys", remember=True)

    assert response.headers["Location"] == "/account/passkeys"
    cookie = next(value for name, value in response.headers.items() if name == "Set-Cookie" and value.startswith("esante_sso="))
    assert "Max-Age=" in cookie, "« Se souvenir de cet appareil » ticked: the cookie outlives the browser"


@pytest.mark.settings(RATE_LIMIT_PASSKEY="3 per minute")
def test_passkey_ceremonies_are_rate_limited_per_address(client, patient_with_passkey):
    token = csrf_token(text(client.get("/login")))
    statuses = [passkey_driver.fetch_options(client, "/login/passkey/options", token).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]


@pytest.mark.settings(RATE_LIMIT_LOGIN_PER_ACCOUNT="2 per minute", RATE_LIMIT_PASSKEY="100 per minute")
def test_passkey_logins_count_towards_the_accounts_login_throttle(client, patient_with_passkey, authenticator):
    statuses = []
    for _ in range(3):
        statuses.append(passkey_driver.log_in(client, authenticator).status_code)
        client.delete_cookie("esante_sso")

    assert statuses == [303, 303, 429]


def test_acr_values_high_still_sends_a_passkey_session_to_luxtrust(client, patient_with_passkey, authenticator, rp_client):
    """A passkey login is substantial: a relying party asking for high gets the LuxTrust step-up,
    or ``unmet_authentication_requirements`` when the patient has no LuxTrust product linked."""
    passkey_driver.log_in(client, authenticator)
    _, challenge = pkce_pair()

    response = client.get(authorization_url(rp_client.client_id, rp_client.redirect_uris[0], challenge, acr_values=ACR_HIGH))

    assert response.status_code == 303
    assert query_of(response.headers["Location"])["error"] == "unmet_authentication_requirements"
    substantial = client.get(authorization_url(rp_client.client_id, rp_client.redirect_uris[0], challenge, acr_values=ACR_SUBSTANTIAL))
    assert "code" in query_of(substantial.headers["Location"])


def test_the_login_page_offers_the_passkey_button_and_autofill(client):
    page = text(client.get("/login"))

    assert "Se connecter avec une clé d'accès" in page
    assert 'autocomplete="username webauthn"' in page, "conditional UI: passkeys among the matricule field's suggestions"
    assert 'src="/static/passkey.js"' in page


def test_a_passkey_can_be_added_at_step_4_of_the_activation(client, wizard, pending, authenticator):
    account, code = pending
    wizard.to_last_step(account, code)

    response = passkey_driver.register(client, authenticator, "Ordinateur", page="/activation/other-means",
                                       options_url="/activation/passkey/options", post_to="/activation/passkey")

    assert response.status_code == 303 and response.headers["Location"].endswith("/activation/other-means")
    assert "Clé d'accès « Ordinateur » créée." in text(client.get("/activation/other-means"))
    assert wizard.finish().headers["Location"].endswith("/activation/done")
    assert passkey_driver.log_in(client, authenticator).status_code == 303, "once active, the passkey logs in"
    assert current_sessions()[0].account_id == account.id


def test_the_activation_passkey_needs_the_wizard_at_step_4(client, wizard, pending, authenticator):
    account, code = pending
    assert wizard.accept_cgu().status_code == 303
    assert wizard.code(account.matricule, code).status_code == 303  # step 2: no password, no channel yet

    token = csrf_token(text(client.get("/activation/password")))
    refused = passkey_driver.fetch_options(client, "/activation/passkey/options", token)

    assert refused.status_code == 409
    assert passkey.passkeys_of(passkey.Owner(account_id=account.id)) == []
