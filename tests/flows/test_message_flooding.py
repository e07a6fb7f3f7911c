"""Nobody can flood a patient's phone or mailbox with codes (issue 13, medium 7).

Every send of a one-time code (forgotten password, activation, login, contact change) waits
``ONE_TIME_CODE_RESEND_COOLDOWN`` seconds after the previous unused code of the same step, and an
account gets at most ``ONE_TIME_CODE_DAILY_SENDS`` unused codes a day. A refused send is told on
the page, in the patient's language, with a 429: never a silent drop.
"""

from datetime import timedelta

import pytest

from idp import clock, messaging
from idp.extensions import db
from tests.conftest import PatientFactory, csrf_token
from tests.flows.test_activation import Wizard, pending  # noqa: F401  (fixture)

FORGOTTEN_UNTHROTTLED = {"RATE_LIMIT_PASSWORD_RESET_PER_ACCOUNT": "1000 per hour"}


def post(client, path: str, page: str | None = None, headers: dict | None = None, **data):
    html = client.get(page or path, headers=headers).get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_token(html), **data}, headers=headers)


def sent_to(destination: str) -> int:
    db.session.expire_all()
    return len(messaging.outbox_messages(destination))


def text(response) -> str:
    return response.get_data(as_text=True).replace("&#39;", "'")


@pytest.mark.settings(**FORGOTTEN_UNTHROTTLED)
def test_forgotten_password_requests_send_one_code_per_cooldown(app, client, patients):
    """Before: every « Recevoir un code » sent a new SMS, however fast they came."""
    patient = patients.create(email=None)
    responses = [post(client, "/password/forgotten", matricule=patient.matricule) for _ in range(3)]
    assert [r.status_code for r in responses] == [303, 429, 429]
    assert "Veuillez patienter" in text(responses[1]) and "secondes avant de demander un nouveau code" in text(responses[1])
    assert sent_to(patient.account.mobile) == 1
    clock.advance(timedelta(seconds=app.config["ONE_TIME_CODE_RESEND_COOLDOWN"] + 1))
    assert post(client, "/password/forgotten", matricule=patient.matricule).status_code == 303
    assert sent_to(patient.account.mobile) == 2


@pytest.mark.settings(ONE_TIME_CODE_DAILY_SENDS=3, **FORGOTTEN_UNTHROTTLED)
def test_codes_left_unused_are_capped_per_account_and_day(app, client, patients):
    patient = patients.create(email=None)
    statuses = []
    for _ in range(4):
        statuses.append(post(client, "/password/forgotten", matricule=patient.matricule))
        clock.advance(timedelta(seconds=app.config["ONE_TIME_CODE_RESEND_COOLDOWN"] + 1))
    assert [r.status_code for r in statuses] == [303, 303, 303, 429]
    assert "Trop de codes ont été envoyés à ce compte sans être utilisés" in text(statuses[-1])
    assert sent_to(patient.account.mobile) == 3
    clock.advance(timedelta(hours=24))
    assert post(client, "/password/forgotten", matricule=patient.matricule).status_code == 303, "a new day, a new budget"


@pytest.mark.settings(ONE_TIME_CODE_DAILY_SENDS=2)
def test_codes_that_were_used_do_not_count_against_the_daily_cap(client, patients):
    """A patient who logs in many times a day is not a flood: each code came back."""
    patient = patients.create(email=None)
    for _ in range(4):
        assert patients.login(patient).status_code == 303
    assert sent_to(patient.account.mobile) == 4


def test_a_second_login_within_the_cooldown_is_told_to_wait(app, client, patients, second_client):
    patient = patients.create(email=None)
    patients.submit_password(patient)
    other = PatientFactory(app, second_client).submit_password(patient)
    assert other.status_code == 303 and other.headers["Location"].endswith("/login/channel")
    page = second_client.get("/login/channel")
    assert "Veuillez patienter" in text(page)
    assert sent_to(patient.account.mobile) == 1


def test_a_used_code_lifts_the_cooldown(client, patients):
    patient = patients.create(email=None)
    assert patients.login(patient).status_code == 303
    again = patients.submit_password(patient)
    assert again.headers["Location"].endswith("/login/code"), "the last code was used: the next login sends at once"
    assert sent_to(patient.account.mobile) == 2


def test_the_activation_channel_step_waits_between_sends(client, patients, pending):
    account, code = pending
    wizard = Wizard(client, patients)
    wizard.accept_cgu()
    wizard.code(account.matricule, code)
    wizard.password()
    assert wizard.send(destination="+352621555777").status_code == 303
    again = wizard.send(destination="+352621555778")
    assert again.status_code == 429 and "Veuillez patienter" in text(again)
    assert sent_to("+352621555778") == 0


def test_a_contact_change_waits_between_sends(client, patients):
    patient = patients.create(email="marie@example.lu", mobile="+352621000111")
    patients.login(patient)
    first = post(client, "/account/contact", channel="sms", destination="+352621999888", current_password=patient.password)
    second = post(client, "/account/contact", channel="sms", destination="+352621999777", current_password=patient.password)
    assert (first.status_code, second.status_code) == (303, 429)
    assert "Veuillez patienter" in text(second)
    assert sent_to("+352621999777") == 0


@pytest.mark.parametrize("language, words", [
    ("fr", "Veuillez patienter"),
    ("de", "Bitte warten Sie"),
    ("en", "Please wait"),
])
@pytest.mark.settings(**FORGOTTEN_UNTHROTTLED)
def test_the_refusal_is_told_in_the_patients_language(client, patients, language, words):
    patient = patients.create(email=None)
    headers = {"Accept-Language": language}
    post(client, "/password/forgotten", matricule=patient.matricule, headers=headers)
    refused = post(client, "/password/forgotten", matricule=patient.matricule, headers=headers)
    assert refused.status_code == 429 and words in text(refused)
