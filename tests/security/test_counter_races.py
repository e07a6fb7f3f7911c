"""Every security counter holds its bound under a burst of simultaneous requests (issue 13, high).

The attack: the same flow cookie and CSRF token (or the same credentials), many requests
released at once, each from its own loopback address so that no per-address limit ever
trips. A counter read in Python, changed and written back lets most of such a burst through
(74 of 150 one-time codes were checked against a limit of 5 on SQLite). Each test runs on a
live threaded server, on SQLite and on PostgreSQL, and asserts the bound exactly: how many
secrets were really compared is read from the audit trail, which records each comparison.
The per-account throttles are set out of reach here, so that only the counters are tested.
"""

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import func, select

from idp import activation_letter, admin_account, audit, clock, messaging
from idp.extensions import db
from tests.security.burst import burst

BURST = 30
OUT_OF_REACH = {
    "RATE_LIMIT_LOGIN_PER_ACCOUNT": "10000 per minute",
    "RATE_LIMIT_ONE_TIME_CODE_PER_ACCOUNT": "10000 per minute",
    "RATE_LIMIT_PASSWORD_RESET_PER_ACCOUNT": "10000 per minute",
    "RATE_LIMIT_ADMIN_LOGIN_PER_ACCOUNT": "10000 per minute",
}
ADMIN_PASSWORD = "Correct-Horse-42-battery"


def events(live, name: audit.Event) -> int:
    live.fresh()
    return db.session.scalar(select(func.count()).select_from(audit.AuditEvent).where(audit.AuditEvent.name == name.value))


def last_code(live, to: str) -> str:
    live.fresh()
    return live.patients.last_code(to)


def wrong_code(right: str) -> str:
    return "000000" if right != "000000" else "111111"


def logged_in_to_the_code_step(live, patient, index: int | None = None):
    """A browser that gave the right password: the code went to the patient's only channel."""
    browser = live.visitor(index)
    sent = browser.submit("/login", matricule=patient.matricule, password=patient.password)
    assert sent.status_code == 303 and sent.headers["Location"].endswith("/login/code"), sent.text[:500]
    return browser


def assert_clean(responses, allowed: set[int]) -> None:
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= allowed, f"unexpected answers: {statuses}"


@pytest.mark.settings(**OUT_OF_REACH)
def test_a_burst_of_wrong_login_codes_checks_exactly_the_allowed_tries(live):
    patient = live.patients.create(email=None)
    browser = logged_in_to_the_code_step(live, patient)
    right = last_code(live, patient.account.mobile)
    token = browser.csrf("/login/code")
    attackers = [browser.clone(f"127.0.{index // 250}.{index % 250 + 2}") for index in range(BURST)]

    responses = burst([lambda a=a: a.post("/login/code", {"csrf_token": token, "code": wrong_code(right)}) for a in attackers])

    assert_clean(responses, {400})
    tries = live.app.config["ONE_TIME_CODE_MAX_ATTEMPTS"]
    assert events(live, audit.Event.ONE_TIME_CODE_FAILED) == tries, "each wrong code compared is audited; no more than the tries"
    countdown = sorted(int(r.text.split("Il vous reste ")[1].split(" ")[0]) for r in responses if "Il vous reste" in r.text)
    assert countdown == list(range(1, tries)), "each try was counted once"
    refused = browser.submit("/login/code", code=right)
    assert refused.status_code == 400 and "Trop d&#39;essais" in refused.text, "the real code no longer works"


@pytest.mark.settings(**OUT_OF_REACH)
def test_a_burst_of_wrong_reset_codes_checks_exactly_the_allowed_tries(live):
    patient = live.patients.create(email=None)
    browser = live.visitor()
    assert browser.submit("/password/forgotten", matricule=patient.matricule).status_code == 303
    right = last_code(live, patient.account.mobile)
    token = browser.csrf("/password/reset")
    attackers = [browser.clone(f"127.0.{index // 250}.{index % 250 + 2}") for index in range(BURST)]
    form = {"csrf_token": token, "code": wrong_code(right), "password": "Nouveau-Mot2passe", "confirmation": "Nouveau-Mot2passe"}

    responses = burst([lambda a=a: a.post("/password/reset", form) for a in attackers])

    assert_clean(responses, {400})
    assert events(live, audit.Event.ONE_TIME_CODE_FAILED) == live.app.config["ONE_TIME_CODE_MAX_ATTEMPTS"]
    refused = browser.submit("/password/reset", code=right, password="Nouveau-Mot2passe", confirmation="Nouveau-Mot2passe")
    assert refused.status_code == 400, "the real code no longer works"
    assert events(live, audit.Event.PASSWORD_RESET) == 0


@pytest.mark.settings(ONE_TIME_CODE_DAILY_FAILURES=7, **OUT_OF_REACH)
def test_bursts_on_two_codes_of_one_account_check_exactly_the_daily_budget(live):
    """Two login attempts (two codes, five tries each) of one account, attacked at once: the
    account's daily budget of wrong codes, not ten, bounds what is compared."""
    patient = live.patients.create(email=None)
    first = logged_in_to_the_code_step(live, patient)
    first_code = last_code(live, patient.account.mobile)
    clock.advance(timedelta(seconds=live.app.config["ONE_TIME_CODE_RESEND_COOLDOWN"] + 1))
    second = logged_in_to_the_code_step(live, patient, index=400)
    second_code = last_code(live, patient.account.mobile)
    tokens = {id(first): first.csrf("/login/code"), id(second): second.csrf("/login/code")}
    sends = []
    for browser, right in ((first, first_code), (second, second_code)):
        for index in range(BURST // 2):
            attacker = browser.clone(f"127.0.{len(sends) // 250}.{len(sends) % 250 + 2}")
            form = {"csrf_token": tokens[id(browser)], "code": wrong_code(right)}
            sends.append(lambda a=attacker, f=form: a.post("/login/code", f))

    responses = burst(sends)

    assert_clean(responses, {400})
    assert events(live, audit.Event.ONE_TIME_CODE_FAILED) == 7, "the daily budget, exactly"
    blocked = first.submit("/login/code", code=first_code)
    assert blocked.status_code == 400 and "aujourd&#39;hui" in blocked.text or "Trop d&#39;essais" in blocked.text


@pytest.mark.settings(**OUT_OF_REACH)
def test_simultaneous_admin_logins_with_one_totp_code_let_exactly_one_in(live):
    admin = admin_account.create("alice", ADMIN_PASSWORD)
    db.session.commit()
    code = pyotp.TOTP(admin_account.totp_seed(admin)).at(clock.timestamp())
    browsers = [live.visitor(index) for index in range(8)]
    forms = [{"csrf_token": browser.csrf("/admin/login"), "username": "alice", "password": ADMIN_PASSWORD, "totp_code": code}
             for browser in browsers]

    responses = burst([lambda b=b, f=f: b.post("/admin/login", f) for b, f in zip(browsers, forms)])

    assert sorted(response.status_code for response in responses) == [303] + [400] * 7
    assert events(live, audit.Event.ADMIN_LOGIN_SUCCEEDED) == 1


@pytest.mark.settings(**OUT_OF_REACH)
def test_a_burst_of_wrong_passwords_checks_exactly_the_allowed_failures(live):
    patient = live.patients.create()
    browsers = [live.visitor(index) for index in range(BURST)]
    forms = [{"csrf_token": browser.csrf("/login"), "matricule": patient.matricule, "password": "Wrong-password-1"} for browser in browsers]

    responses = burst([lambda b=b, f=f: b.post("/login", f) for b, f in zip(browsers, forms)])

    assert_clean(responses, {400, 429})
    failures = live.app.config["PASSWORD_MAX_FAILURES"]
    assert [r.status_code for r in responses].count(400) == failures - 1, "then the failure that locks, then locked"
    assert events(live, audit.Event.LOGIN_PASSWORD_FAILED) == failures - 1
    live.fresh()
    notices = [m for m in messaging.outbox_messages(patient.account.mobile) if "temporairement bloquée" in m.body]
    assert len(notices) == 1, "the lockout started once"
    refused = live.visitor().submit("/login", matricule=patient.matricule, password=patient.password)
    assert refused.status_code == 429, "even the right password waits for the lockout"


@pytest.mark.settings(**OUT_OF_REACH)
def test_a_burst_of_wrong_admin_passwords_locks_the_admin_account(live):
    """Forty wrong passwords from forty addresses, then the right one: refused (issue 13, medium 6)."""
    admin = admin_account.create("alice", ADMIN_PASSWORD)
    db.session.commit()
    seed = admin_account.totp_seed(admin)
    browsers = [live.visitor(index) for index in range(BURST)]
    forms = [{"csrf_token": b.csrf("/admin/login"), "username": "alice", "password": "Wrong-password-1",
              "totp_code": pyotp.TOTP(seed).at(clock.timestamp())} for b in browsers]

    responses = burst([lambda b=b, f=f: b.post("/admin/login", f) for b, f in zip(browsers, forms)])

    assert_clean(responses, {400})
    assert events(live, audit.Event.ADMIN_LOGIN_FAILED) == live.app.config["PASSWORD_MAX_FAILURES"], "compared, then locked"
    browser = live.visitor()
    clock.advance(timedelta(seconds=31))  # a TOTP step the burst did not see
    refused = browser.submit("/admin/login", username="alice", password=ADMIN_PASSWORD, totp_code=pyotp.TOTP(seed).at(clock.timestamp()))
    assert refused.status_code == 400, "the right password and code wait for the lockout"
    assert events(live, audit.Event.ADMIN_LOGIN_SUCCEEDED) == 0


@pytest.mark.settings(**OUT_OF_REACH)
def test_a_burst_of_wrong_activation_codes_counts_exactly_the_allowed_failures(live):
    patient = live.patients.create(status="pending", email=None, mobile=None)
    _, code = activation_letter.issue(patient.account)
    db.session.commit()
    browser = live.visitor()
    assert browser.submit("/activation", accept="y").status_code == 303
    token = browser.csrf("/activation/code")
    attackers = [browser.clone(f"127.0.{index // 250}.{index % 250 + 2}") for index in range(BURST)]
    form = {"csrf_token": token, "matricule": patient.matricule, "has_code": "yes", "activation_code": "AAAA-BBBB-CCCC"}

    responses = burst([lambda a=a: a.post("/activation/code", form) for a in attackers])

    assert_clean(responses, {400, 429})
    assert events(live, audit.Event.ACTIVATION_CODE_FAILED) == activation_letter.ACTIVATION_MAX_FAILURES


@pytest.mark.settings(**OUT_OF_REACH)
def test_a_burst_of_forgotten_password_requests_sends_exactly_one_code(live):
    """Message flooding (issue 13, medium 7): the send cooldown is claimed atomically too."""
    patient = live.patients.create(email=None)
    browsers = [live.visitor(index) for index in range(BURST)]
    forms = [{"csrf_token": b.csrf("/password/forgotten"), "matricule": patient.matricule} for b in browsers]

    responses = burst([lambda b=b, f=f: b.post("/password/forgotten", f) for b, f in zip(browsers, forms)])

    assert sorted(r.status_code for r in responses) == [303] + [429] * (BURST - 1)
    live.fresh()
    assert len(messaging.outbox_messages(patient.account.mobile)) == 1
