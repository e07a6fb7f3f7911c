""""Mon compte": contact change, password change, forgotten password, consents, sessions."""

import pytest
from sqlalchemy import select

from idp import consent, credential, messaging, token as tokens
from idp.extensions import db
from tests.conftest import csrf_token


def post(client, path: str, page: str | None = None, **data):
    html = client.get(page or path).get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_token(html), **data})


@pytest.fixture
def logged_in(patients):
    patient = patients.create(email="marie@example.lu", mobile="+352621000111")
    patients.login(patient)
    return patient


def test_account_pages_need_a_session(client):
    assert "/login" in client.get("/account").headers["Location"]


def test_contact_change_needs_the_password_and_a_code_to_the_new_number_and_tells_the_old_one(client, patients, logged_in):
    wrong = post(client, "/account/contact", channel="sms", destination="+352621999888", current_password="not-it-1")
    assert wrong.status_code == 400 and "Mot de passe incorrect" in wrong.get_data(as_text=True)
    sent = post(client, "/account/contact", channel="sms", destination="+352621999888", current_password=logged_in.password)
    assert sent.status_code == 303
    done = post(client, "/account/contact/verify", code=patients.last_code("+352621999888"))
    assert done.status_code == 303
    db.session.refresh(logged_in.account)
    assert logged_in.account.mobile == "+352621999888"
    assert "vient d'être modifié" in messaging.outbox_messages("+352621000111")[-1].body


def test_password_change_needs_current_password_and_code(client, patients, logged_in):
    assert post(client, "/account/password", current_password=logged_in.password).status_code == 303
    code = patients.last_code("+352621000111")
    weak = post(client, "/account/password/new", code=code, password="short", confirmation="short")
    assert weak.status_code == 400
    done = post(client, "/account/password/new", code=code, password="Nouveau2026pass", confirmation="Nouveau2026pass")
    assert done.status_code == 303
    credential.verify_password(logged_in.account, "Nouveau2026pass")


def test_forgotten_password_resets_with_a_code_and_notifies_the_other_channel(client, patients):
    patient = patients.create(email="jean@example.lu", mobile="+352621000222")
    assert post(client, "/password/forgotten", matricule=patient.matricule).status_code == 303
    code = patients.last_code("+352621000222")
    done = post(client, "/password/reset", code=code, password="Retrouve2026ok", confirmation="Retrouve2026ok")
    assert done.status_code == 303
    credential.verify_password(patient.account, "Retrouve2026ok")
    assert "réinitialisé" in messaging.outbox_messages("jean@example.lu")[-1].body


def test_forgotten_password_answers_the_same_for_an_unknown_matricule(client):
    response = post(client, "/password/forgotten", matricule="1893120105732")
    assert response.status_code == 303 and response.headers["Location"].endswith("/password/reset")
    assert messaging.outbox_messages() == []


def test_revoking_a_consent_revokes_the_clients_tokens(client, logged_in):
    consent.grant(logged_in.account.id, "pharmacy", "openid offline_access")
    from idp import client as clients

    pharmacy, _ = clients.create(name="Pharmacie", redirect_uris=["https://pharmacy.example.com/cb"], client_id="pharmacy",
                                 scope="openid offline_access")
    _, jti = tokens.issue(pharmacy, logged_in.account, "openid offline_access", grant_type="authorization_code", include_refresh_token=True)
    row = db.session.scalar(select(tokens.Token).where(tokens.Token.jti == jti))
    db.session.commit()
    page = client.get("/account/consents").get_data(as_text=True)
    assert "Pharmacie" in page
    assert post(client, "/account/consents/pharmacy/revoke", page="/account/consents").status_code == 303
    db.session.refresh(row)
    assert row.revoked_at is not None and not consent.covers(logged_in.account.id, "pharmacy", "openid")


def test_log_out_elsewhere_ends_the_other_sessions(app, client, patients, logged_in):
    other = app.test_client()
    PatientsOther = type(patients)(app, other)
    PatientsOther.login(logged_in)
    done = post(client, "/account/sessions/logout-elsewhere", page="/account/sessions", current_password=logged_in.password)
    assert done.status_code == 303
    assert "/login" in other.get("/account").headers["Location"]
    assert client.get("/account").status_code == 200


def test_log_out_elsewhere_asks_for_the_password_and_a_wrong_one_ends_nothing(app, client, patients, logged_in):
    """ASVS 5.0 §7.5.2: ending sessions needs the patient to authenticate again; a stolen session cannot do it."""
    other = app.test_client()
    type(patients)(app, other).login(logged_in)
    page = client.get("/account/sessions").get_data(as_text=True)
    assert 'type="password"' in page and 'name="current_password"' in page
    missing = post(client, "/account/sessions/logout-elsewhere", page="/account/sessions")
    assert missing.status_code == 400 and "Veuillez saisir votre mot de passe." in missing.get_data(as_text=True)
    wrong = post(client, "/account/sessions/logout-elsewhere", page="/account/sessions", current_password="not-it-1")
    assert wrong.status_code == 400
    assert "Mot de passe incorrect : aucune session n&#39;a été fermée." in wrong.get_data(as_text=True)
    assert other.get("/account").status_code == 200, "the other session is still open"
    stored = db.session.get(credential.PasswordCredential, logged_in.account.id, populate_existing=True)
    assert stored.failed_attempts == 1, "a wrong password counts towards the lockout, as at login"


def test_wrong_passwords_to_log_out_elsewhere_lock_like_wrong_logins(app, client, patients, logged_in):
    other = app.test_client()
    type(patients)(app, other).login(logged_in)
    for _ in range(app.config["PASSWORD_MAX_FAILURES"] - 1):
        assert post(client, "/account/sessions/logout-elsewhere", page="/account/sessions", current_password="not-it-1").status_code == 400
    locked = post(client, "/account/sessions/logout-elsewhere", page="/account/sessions", current_password="not-it-1")
    assert locked.status_code == 429 and "Trop de tentatives" in locked.get_data(as_text=True)
    right = post(client, "/account/sessions/logout-elsewhere", page="/account/sessions", current_password=logged_in.password)
    assert right.status_code == 429, "locked: even the right password waits"
    assert other.get("/account").status_code == 200


def test_chosen_language_is_remembered_on_the_account(app, client, patients, logged_in):
    assert client.get("/language/de?next=/account").status_code == 303
    db.session.refresh(logged_in.account)
    assert logged_in.account.locale == "de"
    other = app.test_client()
    type(patients)(app, other).login(logged_in)
    assert '<html lang="de">' in other.get("/account").get_data(as_text=True)


def test_every_account_page_offers_to_log_out(client, patients):
    """ASVS 5.0 §7.4.4: a visible logout on every authenticated page."""
    patients.login(patients.create())
    for path in ("/account", "/account/consents", "/account/sessions", "/account/assistants", "/account/trail", "/account/settings"):
        page = client.get(path).get_data(as_text=True)
        assert 'action="/logout"' in page and 'name="confirm" value="yes"' in page, path
    page = client.get("/account").get_data(as_text=True)
    done = client.post("/logout", data={"csrf_token": csrf_token(page), "confirm": "yes"})
    assert done.status_code == 200 and client.get("/account").status_code in (302, 303)
