"""The patient is told of a login from a new browser and of a lockout (ASVS 5.0 §6.3.5); wrong
one-time codes are bounded per account and day."""

import re
from datetime import timedelta

import pytest

from idp import audit, clock, messaging
from idp.extensions import db
from tests.conftest import PatientFactory, csrf_token
from tests.flows.conftest import audit_names

NEW_DEVICE = "Nouvelle connexion à votre compte eSanté"
LOCKED = "temporairement bloquée après plusieurs mots de passe erronés"


def notices(to: str, text: str) -> list[str]:
    db.session.expire_all()
    return [message.body for message in messaging.outbox_messages(to) if text in message.body]


def test_a_login_from_a_new_browser_is_told_on_every_channel(app, patients):
    patient = patients.create()
    patients.login(patient)
    assert notices(patient.account.mobile, NEW_DEVICE) == [], "the first browser of an account is the patient's own"

    patients.login(patient)
    assert notices(patient.account.mobile, NEW_DEVICE) == [], "the same browser again: nothing to tell"

    other_browser = app.test_client()
    other_browser.environ_base["HTTP_USER_AGENT"] = "Mozilla/5.0 (X11) Gecko/20100101 Firefox/140.0"
    PatientFactory(app, other_browser).login(patient)
    (sms,) = notices(patient.account.mobile, NEW_DEVICE)
    (mail,) = notices(patient.account.email, NEW_DEVICE)
    assert "Firefox" in sms and "helpdesk" in sms and sms == mail


def test_the_device_cookie_is_long_lived_http_only_and_random(client, patients):
    patient = patients.create()
    patients.login(patient)
    cookie = client.get_cookie("esante_device")
    assert cookie is not None and cookie.http_only and len(cookie.value) == 43
    forged = patients.create(email="other@example.lu", mobile="+352621000222")
    client.set_cookie("esante_device", "not-a-device-id")
    patients.login(forged)
    assert client.get_cookie("esante_device").value != "not-a-device-id", "a malformed cookie is replaced"


def test_the_lockout_is_told_once_when_it_starts(app, client, patients):
    patient = patients.create()
    for _ in range(app.config["PASSWORD_MAX_FAILURES"]):
        patients.submit_password(patient, password="Wrong-password-1")
    assert len(notices(patient.account.mobile, LOCKED)) == 1
    assert len(notices(patient.account.email, LOCKED)) == 1
    patients.submit_password(patient, password="Wrong-password-1")
    assert len(notices(patient.account.mobile, LOCKED)) == 1, "attempts during the lockout send nothing more"


@pytest.mark.settings(ONE_TIME_CODE_DAILY_FAILURES=7, RATE_LIMIT_ONE_TIME_CODE_PER_ACCOUNT="100 per minute")
def test_wrong_codes_are_bounded_per_account_and_day_whatever_the_resends(app, client, patients):
    """Resends give fresh tries per code, never more wrong guesses per account and day."""
    patient = patients.create()
    patients.submit_password(patient)
    patients.choose_channel("sms")
    for _ in range(2):  # two codes, each with five tries would be ten guesses
        code = patients.last_code(patient.account.mobile)
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            patients.submit_code(wrong)
        clock.advance(timedelta(seconds=app.config["ONE_TIME_CODE_RESEND_COOLDOWN"] + 1))
        page = client.get("/login/code")
        client.post("/login/code/resend", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    blocked = patients.submit_code(patients.last_code(patient.account.mobile))
    assert blocked.status_code == 400, "even the right code is refused once the day's budget is spent"
    assert "Trop de codes erronés pour ce compte aujourd&#39;hui" in blocked.get_data(as_text=True)
    assert audit_names().count(audit.Event.ONE_TIME_CODE_FAILED.value) == 7, "seven wrong codes were compared, no more"

    clock.advance(timedelta(hours=24))
    assert patients.login(patient).status_code == 303, "a new day, a new budget"


@pytest.mark.parametrize("status", ["unknown", "pending"])
def test_a_matricule_without_an_account_locks_like_one_with_an_account(app, client, patients, status):
    """The lockout answer never tells which matricules have an active account (ASVS 5.0 §6.3.8)."""
    real = patients.create()
    if status == "pending":
        other = patients.create(status="pending", email="pending@example.lu", mobile="+352621000999")
        matricule, notice_to = other.matricule, other.account.mobile
    else:
        from idp import matricule as matricule_rules

        matricule, notice_to = matricule_rules.with_check_digits("19700101" + "999"), None
    answers = {}
    for name, value in (("real", real.matricule), ("other", matricule)):
        statuses, last = [], None
        for _ in range(app.config["PASSWORD_MAX_FAILURES"] + 1):
            page = client.get("/login")
            last = client.post("/login", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "matricule": value,
                                               "password": "Wrong-password-1"})
            statuses.append(last.status_code)
        answers[name] = (statuses, re.search(r"bloquée pendant \d+ minutes?", last.get_data(as_text=True)).group(0))
    assert answers["other"] == answers["real"]
    assert answers["real"][0] == [400] * (app.config["PASSWORD_MAX_FAILURES"] - 1) + [429, 429]
    if notice_to:
        assert notices(notice_to, LOCKED) == [], "a pending account is not told (it has no password yet)"
