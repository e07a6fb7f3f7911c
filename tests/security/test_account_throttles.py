"""Per-account throttles: a burst spread over many addresses gets one account's budget, not one per address.

Each burst comes from as many loopback addresses as it has requests, so the per-address limits
(Flask-Limiter) never see more than one request each; the bound asserted is the per-account
limit, exactly. Every test runs with the throttles counted in process memory and in Redis; with
Redis, two instances share one count. The database bounds (lockouts, tries, budgets) are set out
of reach here so that only the throttles are tested.
"""

import pyotp
import pytest
from sqlalchemy import func, select

from idp import admin_account, audit, clock, create_app, messaging
from idp.extensions import db
from tests.security.burst import Visitor, address, burst
from tests.support.browser import LiveServer

BURST = 12
ALLOWED = 3
DATABASE_BOUNDS_OUT_OF_REACH = {
    "PASSWORD_MAX_FAILURES": 1000,
    "ONE_TIME_CODE_MAX_ATTEMPTS": 1000,
    "ONE_TIME_CODE_DAILY_FAILURES": 1000,
    "ONE_TIME_CODE_RESEND_COOLDOWN": 0,
    "ONE_TIME_CODE_DAILY_SENDS": 1000,
}
ADMIN_PASSWORD = "Correct-Horse-42-battery"


def events(live, name: audit.Event) -> int:
    live.fresh()
    return db.session.scalar(select(func.count()).select_from(audit.AuditEvent).where(audit.AuditEvent.name == name.value))


def statuses(responses) -> list[int]:
    return sorted(response.status_code for response in responses)


@pytest.mark.settings(RATE_LIMIT_LOGIN_PER_ACCOUNT=f"{ALLOWED} per minute", **DATABASE_BOUNDS_OUT_OF_REACH)
@pytest.mark.parametrize("who", ["account", "unknown matricule"])
def test_password_posts_for_one_matricule_are_throttled_whatever_the_addresses(live_throttles, who):
    from idp import matricule

    value = live_throttles.patients.create().matricule if who == "account" else matricule.with_check_digits("19700101" + "999")
    browsers = [live_throttles.visitor(index) for index in range(BURST)]
    forms = [{"csrf_token": b.csrf("/login"), "matricule": value, "password": "Wrong-password-1"} for b in browsers]

    responses = burst([lambda b=b, f=f: b.post("/login", f) for b, f in zip(browsers, forms)])

    assert statuses(responses) == [400] * ALLOWED + [429] * (BURST - ALLOWED)
    throttled = [r for r in responses if r.status_code == 429]
    assert all("Trop de tentatives pour ce compte" in r.text and r.headers["Retry-After"].isdigit() for r in throttled)
    checked = events(live_throttles, audit.Event.LOGIN_PASSWORD_FAILED) + events(live_throttles, audit.Event.LOGIN_UNKNOWN_MATRICULE)
    assert checked == ALLOWED, "the throttled attempts compared no password"


@pytest.mark.settings(RATE_LIMIT_ONE_TIME_CODE_PER_ACCOUNT=f"{ALLOWED} per minute", **DATABASE_BOUNDS_OUT_OF_REACH)
def test_one_time_code_entries_for_one_account_are_throttled_whatever_the_addresses(live_throttles):
    patient = live_throttles.patients.create(email=None)
    browser = live_throttles.visitor()
    assert browser.submit("/login", matricule=patient.matricule, password=patient.password).status_code == 303
    token = browser.csrf("/login/code")
    attackers = [browser.clone(address(index)) for index in range(BURST)]

    responses = burst([lambda a=a: a.post("/login/code", {"csrf_token": token, "code": "000000"}) for a in attackers])

    throttled = [r for r in responses if "Trop de codes saisis pour ce compte" in r.text]
    assert len(throttled) == BURST - ALLOWED, "told on the code page, like every refused code"
    assert statuses(responses) == [400] * BURST
    assert events(live_throttles, audit.Event.ONE_TIME_CODE_FAILED) == ALLOWED, "the throttled entries compared nothing"


@pytest.mark.settings(RATE_LIMIT_PASSWORD_RESET_PER_ACCOUNT=f"{ALLOWED} per hour", **DATABASE_BOUNDS_OUT_OF_REACH)
def test_reset_sends_for_one_matricule_are_throttled_whatever_the_addresses(live_throttles):
    patient = live_throttles.patients.create(email=None)
    browsers = [live_throttles.visitor(index) for index in range(BURST)]
    forms = [{"csrf_token": b.csrf("/password/forgotten"), "matricule": patient.matricule} for b in browsers]

    responses = burst([lambda b=b, f=f: b.post("/password/forgotten", f) for b, f in zip(browsers, forms)])

    assert statuses(responses) == [303] * ALLOWED + [429] * (BURST - ALLOWED)
    live_throttles.fresh()
    assert len(messaging.outbox_messages(patient.account.mobile)) == ALLOWED, "one message per allowed request, none more"


@pytest.mark.settings(RATE_LIMIT_DELEGATION_LOOKUP_PER_ACCOUNT=f"{ALLOWED} per minute")
def test_assistant_lookups_by_one_account_are_throttled_whatever_the_addresses(live_throttles):
    owner = live_throttles.patients.create(email=None, mobile="+352621000301")
    sought = live_throttles.patients.create(email=None, mobile="+352621000302")
    browser = live_throttles.visitor()
    assert browser.submit("/login", matricule=owner.matricule, password=owner.password).status_code == 303
    live_throttles.fresh()
    assert browser.submit("/login/code", code=live_throttles.patients.last_code(owner.account.mobile)).status_code == 303
    form = {"csrf_token": browser.csrf("/account/assistants/add"), "matricule": sought.matricule}
    searchers = [browser.clone(address(index)) for index in range(BURST)]

    responses = burst([lambda s=s: s.post("/account/assistants/add", form) for s in searchers])

    assert statuses(responses) == [200] * ALLOWED + [429] * (BURST - ALLOWED)
    assert events(live_throttles, audit.Event.DELEGATION_LOOKUP) == ALLOWED, "a throttled look-up finds nobody and tells nothing"


@pytest.mark.settings(RATE_LIMIT_ADMIN_LOGIN_PER_ACCOUNT=f"{ALLOWED} per minute", **DATABASE_BOUNDS_OUT_OF_REACH)
def test_admin_logins_for_one_name_are_throttled_whatever_the_addresses(live_throttles):
    admin = admin_account.create("alice", ADMIN_PASSWORD)
    db.session.commit()
    code = pyotp.TOTP(admin_account.totp_seed(admin)).at(clock.timestamp())
    browsers = [live_throttles.visitor(index) for index in range(BURST)]
    forms = [{"csrf_token": b.csrf("/admin/login"), "username": "alice", "password": "Wrong-password-1", "totp_code": code}
             for b in browsers]

    responses = burst([lambda b=b, f=f: b.post("/admin/login", f) for b, f in zip(browsers, forms)])

    assert statuses(responses) == [400] * ALLOWED + [429] * (BURST - ALLOWED)
    assert events(live_throttles, audit.Event.ADMIN_LOGIN_FAILED) == ALLOWED


@pytest.mark.settings(RATE_LIMIT_LOGIN_PER_ACCOUNT=f"{ALLOWED} per minute", **DATABASE_BOUNDS_OUT_OF_REACH)
@pytest.mark.parametrize("live_throttles", ["redis"], indirect=True)
def test_two_instances_share_one_count_through_redis(live_throttles, settings, tmp_path):
    """A burst split between two instances behind a load balancer: still one budget. (In process
    memory each instance would count alone: that is why several instances must share REDIS_URL.)"""
    config = live_throttles.app.config
    second_app = create_app({**settings, **DATABASE_BOUNDS_OUT_OF_REACH, "RATE_LIMIT_LOGIN_PER_ACCOUNT": f"{ALLOWED} per minute",
                             "DATABASE_URL": config["DATABASE_URL"], "REDIS_URL": config["REDIS_URL"], "INSTANCE_PATH": str(tmp_path)})
    second = LiveServer(second_app)
    try:
        patient = live_throttles.patients.create()
        browsers = [Visitor(live_throttles.url if index % 2 else second.url, address(index)) for index in range(BURST)]
        forms = [{"csrf_token": b.csrf("/login"), "matricule": patient.matricule, "password": "Wrong-password-1"} for b in browsers]

        responses = burst([lambda b=b, f=f: b.post("/login", f) for b, f in zip(browsers, forms)])
    finally:
        second.stop()
        with second_app.app_context():
            db.engine.dispose()

    assert statuses(responses) == [400] * ALLOWED + [429] * (BURST - ALLOWED)
    assert {r.url.split("/login")[0] for r in responses} == {live_throttles.url, second.url}, "both instances answered"
