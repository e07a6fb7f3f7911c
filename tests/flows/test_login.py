"""Connexion → PATIENT: matricule + password, then a one-time code by SMS or e-mail."""

import html as html_entities
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from idp import clock, create_app, credential, messaging, one_time_code, sso_session
from idp.flows.login import LOGIN_ATTEMPT_TTL
from idp.page_guards import safe_next
from idp.extensions import db
from tests.conftest import PatientFactory, csrf_token
from tests.flows.conftest import audit_names, labelled_ids, visible_input_ids
from tests.flows.local_servers import SmsGateway, closed_port

WRONG_PASSWORD = "Wrong2026pass"
UNKNOWN_MATRICULE = "1893120105732"  # valid, but nobody has it in these tests
SAME_ANSWER_MESSAGE = "Matricule ou mot de passe incorrect."


def page_text(response) -> str:
    """The page as a person reads it: character references such as ``&#39;`` decoded."""
    return html_entities.unescape(response.get_data(as_text=True))


def login_attempt(http, matricule: str, password: str):
    page = http.get("/login")
    return http.post("/login", data={"csrf_token": csrf_token(page_text(page)), "matricule": matricule, "password": password})


def comparable(html: str, matricule: str) -> str:
    """The page with what legitimately differs (CSRF token, the typed matricule) blanked out."""
    return re.sub(r'value="[^"]*"', 'value=""', html).replace(matricule, "")


def sso_sessions() -> list[sso_session.SsoSession]:
    return list(db.session.scalars(select(sso_session.SsoSession)))


def failed_attempts(patient) -> int:
    db.session.expire_all()
    return db.session.get(credential.PasswordCredential, patient.account.id).failed_attempts


def challenge_id_of(http) -> str:
    with http.session_transaction() as flow:
        return flow["login"]["challenge"]


def request_new_code(http):
    page = http.get("/login/code")
    return http.post("/login/code/resend", data={"csrf_token": csrf_token(page_text(page))})


# --- the login page --------------------------------------------------------------------------


def test_login_page_uses_the_guide_wording(client):
    html = client.get("/login").get_data(as_text=True)
    for wording in ("Connexion", "PATIENT", "Matricule & Mot de passe", "Matricule", "Mot de passe"):
        assert wording in html
    assert '<html lang="fr">' in html


def test_every_field_of_the_login_pages_has_a_label(client, patients):
    patient = patients.create()
    login_page = page_text(client.get("/login"))
    assert visible_input_ids(login_page) == ["matricule", "password", "remember"]
    patients.submit_password(patient)
    channel_page = page_text(client.get("/login/channel"))
    assert visible_input_ids(channel_page) == ["channel-0", "channel-1"]
    patients.choose_channel("sms")
    code_page = page_text(client.get("/login/code"))
    assert visible_input_ids(code_page) == ["code"]
    for html in (login_page, channel_page, code_page):
        assert set(visible_input_ids(html)) <= labelled_ids(html)


def test_wrong_password_and_unknown_matricule_get_the_same_answer(client, patients):
    patient = patients.create()
    wrong = login_attempt(client, patient.matricule, WRONG_PASSWORD)
    unknown = login_attempt(client, UNKNOWN_MATRICULE, WRONG_PASSWORD)
    pending = patients.create(status="pending")
    not_active = login_attempt(client, pending.matricule, WRONG_PASSWORD)
    assert wrong.status_code == unknown.status_code == not_active.status_code == 400
    assert SAME_ANSWER_MESSAGE in page_text(wrong)
    assert comparable(page_text(wrong), patient.matricule) == comparable(page_text(unknown), UNKNOWN_MATRICULE)
    assert comparable(page_text(wrong), patient.matricule) == comparable(page_text(not_active), pending.matricule)
    assert sso_sessions() == []


def test_a_malformed_matricule_is_refused_before_any_lookup(client):
    response = login_attempt(client, "1893120105733", WRONG_PASSWORD)
    assert response.status_code == 400
    assert "Le matricule doit comporter 11 ou 13 chiffres valides." in page_text(response)
    assert audit_names() == []


@pytest.mark.settings(PASSWORD_MAX_FAILURES=3, PASSWORD_LOCKOUT_SECONDS=60)
def test_lockout_after_max_failures_with_backoff(client, patients):
    patient = patients.create()
    statuses = [login_attempt(client, patient.matricule, WRONG_PASSWORD).status_code for _ in range(3)]
    assert statuses == [400, 400, 429]
    locked = login_attempt(client, patient.matricule, patient.password)
    assert locked.status_code == 429, "the right password waits for the end of the lockout"
    assert "Trop de tentatives. Par sécurité, la connexion est bloquée pendant 1 minute." in page_text(locked)
    sent = [message.body for message in messaging.outbox_messages()]
    assert sent and all("temporairement bloquée" in body for body in sent), "no one-time code, only the lockout notice"
    clock.advance(timedelta(seconds=61))
    statuses = [login_attempt(client, patient.matricule, WRONG_PASSWORD).status_code for _ in range(3)]
    assert statuses == [400, 400, 429]
    clock.advance(timedelta(seconds=61))
    second = login_attempt(client, patient.matricule, patient.password)
    assert second.status_code == 429, "the second lockout lasts twice as long"
    assert "bloquée pendant 1 minute." in page_text(second)
    clock.advance(timedelta(seconds=60))
    assert login_attempt(client, patient.matricule, patient.password).status_code == 303


@pytest.mark.settings(PASSWORD_MAX_FAILURES=3)
def test_lockout_is_kept_in_the_database_and_shared_by_instances(app, settings, client, patients):
    patient = patients.create()
    other = create_app({**settings, "PASSWORD_MAX_FAILURES": 3})
    statuses = [login_attempt(client, patient.matricule, WRONG_PASSWORD).status_code for _ in range(2)]
    with other.app_context():
        statuses.append(login_attempt(other.test_client(), patient.matricule, WRONG_PASSWORD).status_code)
        db.session.remove()
    assert statuses == [400, 400, 429]
    assert login_attempt(client, patient.matricule, patient.password).status_code == 429


def test_a_right_password_resets_the_failure_count(client, patients):
    patient = patients.create()
    login_attempt(client, patient.matricule, WRONG_PASSWORD)
    assert failed_attempts(patient) == 1
    assert login_attempt(client, patient.matricule, patient.password).status_code == 303
    assert failed_attempts(patient) == 0


# --- channel choice --------------------------------------------------------------------------


def test_channel_choice_when_mobile_and_email_are_known(client, patients):
    patient = patients.create(email="marie@example.lu", mobile="+352621000111")
    response = patients.submit_password(patient)
    assert response.status_code == 303 and response.headers["Location"].endswith("/login/channel")
    assert messaging.outbox_messages() == [], "nothing is sent before the patient chooses"
    html = page_text(client.get("/login/channel"))
    assert "Code à usage unique à recevoir par" in html
    assert "Mobile (••••••••••111)" in html and "E-mail (m•••@example.lu)" in html
    assert "+352621000111" not in html and "marie@example.lu" not in html
    chosen = patients.choose_channel("email")
    assert chosen.headers["Location"].endswith("/login/code")
    [message] = messaging.outbox_messages()
    assert (message.channel, message.to) == ("email", "marie@example.lu")


@pytest.mark.parametrize("email, mobile, channel, to", [
    ("marie@example.lu", None, "email", "marie@example.lu"),
    (None, "+352621000111", "sms", "+352621000111"),
])
def test_the_code_is_sent_directly_when_only_one_channel_is_known(client, patients, email, mobile, channel, to):
    patient = patients.create(email=email, mobile=mobile)
    response = patients.submit_password(patient)
    assert response.status_code == 303 and response.headers["Location"].endswith("/login/code")
    [message] = messaging.outbox_messages()
    assert (message.channel, message.to) == (channel, to)


def test_a_channel_that_is_not_offered_is_refused(client, patients):
    patient = patients.create(email=None)
    patients.submit_password(patient)
    response = patients.choose_channel("email")
    assert response.status_code == 400
    assert messaging.outbox_messages(to="patient@example.lu") == []


def test_code_page_without_a_password_step_goes_back_to_login(client):
    for path in ("/login/channel", "/login/code"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["Location"].endswith("/login")


def test_an_old_password_step_does_not_let_anyone_finish_the_login_later(client, patients):
    patient = patients.create(email=None)
    patients.submit_password(patient)
    clock.advance(timedelta(seconds=LOGIN_ATTEMPT_TTL + 1))
    assert client.get("/login/code").headers["Location"].endswith("/login")
    stale_resend = client.post("/login/code/resend", data={"csrf_token": csrf_token(page_text(client.get("/login")))})
    assert stale_resend.headers["Location"].endswith("/login")
    assert len(messaging.outbox_messages()) == 1, "no new code for a stale attempt"
    assert sso_sessions() == []


def test_an_account_disabled_during_the_login_cannot_finish_it(client, patients):
    patient = patients.create(email=None)
    patients.submit_password(patient)
    code = patients.last_code(patient.account.mobile)
    patient.account.status = "disabled"
    db.session.commit()
    response = client.post("/login/code", data={"csrf_token": csrf_token(page_text(client.get("/login"))), "code": code})
    assert response.status_code == 303 and response.headers["Location"].endswith("/login")
    assert sso_sessions() == []


# --- the one-time code -----------------------------------------------------------------------


def test_the_code_has_six_digits_and_logs_the_patient_in(client, patients):
    patient = patients.create()
    patients.submit_password(patient)
    patients.choose_channel("sms")
    [message] = messaging.outbox_messages()
    assert re.search(r"\b\d{6}\b", message.body)
    assert "valable 5 minutes" in message.body
    done = patients.submit_code(patients.last_code(patient.account.mobile))
    assert done.status_code == 303 and done.headers["Location"].endswith("/services")
    services = client.get("/services")
    assert services.status_code == 200 and "Mes services eSanté" in page_text(services)


def test_successful_login_records_amr_and_acr_in_the_sso_session(client, patients):
    patient = patients.create()
    response = patients.login(patient, channel="sms")
    assert response.status_code == 303
    [session] = sso_sessions()
    assert session.account_id == patient.account.id
    assert session.amr == ["pwd", "otp", "sms", "mfa"]
    assert session.acr == "http://eidas.europa.eu/LoA/substantial"
    cookie = client.get_cookie("esante_sso")
    assert cookie is not None and cookie.http_only


def test_login_by_email_records_no_sms_in_amr(client, patients):
    patient = patients.create()
    patients.login(patient, channel="email")
    [session] = sso_sessions()
    assert session.amr == ["pwd", "otp", "mfa"]


def test_the_code_works_only_once(client, patients):
    patient = patients.create()
    patients.submit_password(patient)
    patients.choose_channel("sms")
    code = patients.last_code(patient.account.mobile)
    challenge_id = challenge_id_of(client)
    assert patients.submit_code(code).status_code == 303
    db.session.expire_all()
    with pytest.raises(one_time_code.OneTimeCodeUsed):
        one_time_code.verify(one_time_code.get(challenge_id), code)
    assert client.get("/login/code").headers["Location"].endswith("/login"), "the attempt is over"


def test_a_code_from_another_browsers_attempt_does_not_work(app, client, second_client, patients, distinct_codes):
    patient = patients.create()
    patients.submit_password(patient)
    patients.choose_channel("sms")
    first_code = patients.last_code(patient.account.mobile)
    clock.advance(timedelta(seconds=app.config["ONE_TIME_CODE_RESEND_COOLDOWN"] + 1))  # a login's codes are 30 s apart
    other = PatientFactory(app, second_client)
    other.submit_password(patient)
    other.choose_channel("sms")
    second_code = patients.last_code(patient.account.mobile)
    assert first_code != second_code
    refused = other.submit_code(first_code)
    assert refused.status_code == 400
    assert "Code incorrect" in page_text(refused)
    assert sso_sessions() == []
    assert patients.submit_code(first_code).status_code == 303, "the first browser still logs in with its own code"


def test_the_code_is_valid_for_the_configured_time(client, patients, app):
    patient = patients.create()
    patients.submit_password(patient)
    patients.choose_channel("sms")
    clock.advance(timedelta(seconds=app.config["ONE_TIME_CODE_TTL"] - 5))
    assert patients.submit_code(patients.last_code(patient.account.mobile)).status_code == 303


def test_an_expired_code_gets_a_clear_message(client, patients, app):
    patient = patients.create()
    patients.submit_password(patient)
    patients.choose_channel("sms")
    clock.advance(timedelta(seconds=app.config["ONE_TIME_CODE_TTL"] + 1))
    response = patients.submit_code(patients.last_code(patient.account.mobile))
    assert response.status_code == 400
    assert "Ce code a expiré. Demandez un nouveau code." in page_text(response)
    assert sso_sessions() == []


def test_wrong_entries_count_down_then_a_new_code_is_needed(client, patients, app):
    patient = patients.create()
    patients.submit_password(patient)
    patients.choose_channel("sms")
    code = patients.last_code(patient.account.mobile)
    wrong = "000000" if code != "000000" else "111111"
    texts = [page_text(patients.submit_code(wrong)) for _ in range(4)]
    assert [re.search(r"Il vous reste (\d) essai", text).group(1) for text in texts] == ["4", "3", "2", "1"]
    fifth = patients.submit_code(wrong)
    assert "Trop d'essais avec ce code. Demandez un nouveau code." in page_text(fifth)
    refused = patients.submit_code(code)
    assert refused.status_code == 400, "the right code no longer works after five wrong ones"
    assert "Trop d'essais" in page_text(refused)
    clock.advance(timedelta(seconds=app.config["ONE_TIME_CODE_RESEND_COOLDOWN"] + 1))
    request_new_code(client)
    new_code = patients.last_code(patient.account.mobile)
    assert patients.submit_code(new_code).status_code == 303


def test_resend_respects_the_cooldown(client, patients, app, distinct_codes):
    patient = patients.create()
    patients.submit_password(patient)
    patients.choose_channel("sms")
    first = patients.last_code(patient.account.mobile)
    too_soon = request_new_code(client)
    assert too_soon.status_code == 303
    assert "Veuillez patienter" in page_text(client.get("/login/code"))
    assert len(messaging.outbox_messages()) == 1, "no second message during the cooldown"
    clock.advance(timedelta(seconds=app.config["ONE_TIME_CODE_RESEND_COOLDOWN"] + 1))
    request_new_code(client)
    assert "Un nouveau code vous a été envoyé." in page_text(client.get("/login/code"))
    assert len(messaging.outbox_messages()) == 2
    second = patients.last_code(patient.account.mobile)
    assert second != first
    assert patients.submit_code(first).status_code == 400, "the previous code stops working"
    assert patients.submit_code(second).status_code == 303


# --- a messaging backend that fails ----------------------------------------------------------


def test_a_failing_sms_gateway_gives_a_clear_message_and_the_login_can_continue(app, client, patients):
    patient = patients.create(email=None)
    with SmsGateway(status=500) as gateway:
        app.config.update(SMS_BACKEND="http", SMS_GATEWAY_URL=gateway.url, SMS_GATEWAY_TOKEN="gw-token")
        failed = patients.submit_password(patient)
        assert failed.status_code == 303
        page = client.get(failed.headers["Location"])
        assert page.status_code == 200
        assert "Le code n'a pas pu être envoyé. Veuillez réessayer dans un instant." in page_text(page)
        assert len(gateway.received) == 1
        gateway.status = 200  # the gateway is repaired
        retried = patients.choose_channel("sms")
        assert retried.headers["Location"].endswith("/login/code")
        code = re.search(r"\b(\d{6})\b", gateway.received[-1]["json"]["text"]).group(1)
    assert patients.submit_code(code).status_code == 303
    assert len(sso_sessions()) == 1


def test_an_unreachable_smtp_server_gives_a_clear_message_and_the_login_can_continue(app, client, patients):
    patient = patients.create(mobile=None)
    app.config.update(MAIL_BACKEND="smtp", SMTP_PORT=closed_port(), SMTP_TIMEOUT=2)
    failed = patients.submit_password(patient)
    page = client.get(failed.headers["Location"])
    assert "Le code n'a pas pu être envoyé. Veuillez réessayer dans un instant." in page_text(page)
    assert "Traceback" not in page_text(page)
    app.config.update(MAIL_BACKEND="outbox")  # the mail server is back (as the outbox here)
    assert patients.choose_channel("email").headers["Location"].endswith("/login/code")
    assert patients.submit_code(patients.last_code(patient.account.email)).status_code == 303


def test_a_failing_resend_keeps_the_current_code(app, client, patients):
    patient = patients.create(email=None)
    patients.submit_password(patient)
    code = patients.last_code(patient.account.mobile)
    clock.advance(timedelta(seconds=app.config["ONE_TIME_CODE_RESEND_COOLDOWN"] + 1))
    with SmsGateway(status=500) as gateway:
        app.config.update(SMS_BACKEND="http", SMS_GATEWAY_URL=gateway.url)
        request_new_code(client)
    assert "Le code n'a pas pu être envoyé" in page_text(client.get("/login/code"))
    assert patients.submit_code(code).status_code == 303


# --- abuse -----------------------------------------------------------------------------------


@pytest.mark.settings(RATE_LIMIT_LOGIN="3 per minute")
def test_login_posts_are_rate_limited_per_ip(client, patients):
    patient = patients.create()
    statuses = [login_attempt(client, patient.matricule, WRONG_PASSWORD).status_code for _ in range(3)]
    limited = login_attempt(client, patient.matricule, patient.password)
    assert statuses == [400, 400, 400]
    assert limited.status_code == 429
    html = page_text(limited)
    assert "Trop de demandes" in html and '<html lang="fr">' in html
    assert "Too Many Requests" not in html
    assert limited.headers.get("Retry-After")
    assert failed_attempts(patient) == 3 and sso_sessions() == [], "the limited request did nothing"
    assert client.get("/login").status_code == 200, "reading the page is not limited"
    elsewhere = {"REMOTE_ADDR": "192.0.2.7"}
    page = client.get("/login", environ_base=elsewhere)
    other_ip = client.post("/login", environ_base=elsewhere, data={
        "csrf_token": csrf_token(page_text(page)), "matricule": patient.matricule, "password": patient.password,
    })
    assert other_ip.status_code == 303, "the limit is per IP address"


def test_post_without_csrf_token_is_refused_and_nothing_happens(client, patients):
    patient = patients.create()
    refused = client.post("/login", data={"matricule": patient.matricule, "password": patient.password})
    assert refused.status_code == 400
    assert "Traceback" not in page_text(refused) and "CSRF" not in page_text(refused)
    assert "Votre page a expiré" in page_text(refused)
    assert audit_names() == []
    assert messaging.outbox_messages() == []
    with client.session_transaction() as flow:
        assert "login" not in flow
    forged = client.post("/login", data={"csrf_token": "forged", "matricule": patient.matricule, "password": patient.password})
    assert forged.status_code == 400 and audit_names() == []


@pytest.mark.settings(PROPAGATE_EXCEPTIONS=False)
def test_an_unexpected_error_shows_a_plain_page_without_a_stack_trace(client, patients, monkeypatch):
    patient = patients.create()
    page = client.get("/login")

    def broken(*args, **kwargs):
        raise RuntimeError("database exploded: secret-detail")

    monkeypatch.setattr("idp.account.find_by_matricule", broken)
    response = client.post("/login", data={"csrf_token": csrf_token(page_text(page)), "matricule": patient.matricule, "password": patient.password})
    html = page_text(response)
    assert response.status_code == 500
    assert "Une erreur inattendue" in html and '<html lang="fr">' in html
    assert "Traceback" not in html and "secret-detail" not in html and "RuntimeError" not in html


# --- where the patient lands -----------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "/\\evil.example", "/\t/evil.example", "/ /evil.example", "javascript:alert(1)",
])
def test_next_never_leaves_the_site(app, target):
    with app.test_request_context():
        assert safe_next(target) == "/services"


def test_after_login_the_patient_lands_on_next_or_on_the_services(client, patients):
    patient = patients.create()
    assert patients.login(patient, next_url="/services?tab=dsp").headers["Location"] == "/services?tab=dsp"
    assert patients.login(patient, next_url="/\t/evil.example").headers["Location"] == "/services"
