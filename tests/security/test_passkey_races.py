"""Passkey challenges are single use whatever the concurrency, and every instance sees them.

On a live threaded server, on SQLite and on PostgreSQL: one assertion (its challenge, flow
cookie and CSRF token) posted many times at the same moment, each from its own loopback
address, logs in exactly once; a challenge given by one instance is answered at another and
then refused at both.
"""

import json

from sqlalchemy import func, select

from idp import audit, create_app, sso_session
from idp.extensions import db
from tests.security.burst import address, burst
from tests.support.browser import LiveServer
from tests.support.soft_authenticator import SoftAuthenticator

BURST = 8


def passkey_sessions(live) -> int:
    live.fresh()
    return sum(1 for amr in db.session.scalars(select(sso_session.SsoSession.amr)) if "hwk" in amr)


def patient_with_passkey(live) -> SoftAuthenticator:
    """A patient who logged in with password + code and added a passkey on the live server."""
    patient = live.patients.create(email=None)
    browser = live.visitor()
    assert browser.submit("/login", matricule=patient.matricule, password=patient.password).status_code == 303
    live.fresh()
    assert browser.submit("/login/code", code=live.patients.last_code(patient.account.mobile)).status_code == 303
    authenticator = SoftAuthenticator(rp_id="127.0.0.1", origin=live.url)
    added = _register(browser, authenticator)
    assert added.status_code == 303, added.text[:500]
    return authenticator


def _register(browser, authenticator):
    token = browser.csrf("/account/passkeys/new")
    options = browser.post("/account/passkeys/options", headers={"X-CSRFToken": token})
    assert options.status_code == 200, options.text[:300]
    answer = authenticator.create(options.json())
    return browser.post("/account/passkeys/new", {"csrf_token": token, "name": "Téléphone", "credential": json.dumps(answer)})


def test_one_assertion_posted_many_times_at_once_logs_in_exactly_once(live):
    authenticator = patient_with_passkey(live)
    browser = live.visitor(500)
    token = browser.csrf("/login")
    options = browser.post("/login/passkey/options", headers={"X-CSRFToken": token}).json()
    answer = {"csrf_token": token, "credential": json.dumps(authenticator.get(options)), "next": "", "remember": ""}
    copies = [browser.clone(address(index)) for index in range(BURST)]

    responses = burst([lambda c=c: c.post("/login/passkey", answer) for c in copies])

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [303] + [400] * (BURST - 1), statuses
    assert all("expiré ou a déjà été utilisée" in r.text.replace("&#39;", "'") for r in responses if r.status_code == 400)
    assert passkey_sessions(live) == 1
    live.fresh()
    logins = db.session.scalar(select(func.count()).select_from(audit.AuditEvent).where(
        audit.AuditEvent.name == audit.Event.LOGIN_SUCCEEDED.value))
    assert logins == 2, "the password + code login that added the passkey, and exactly one passkey login"


def test_a_challenge_given_by_one_instance_is_answered_at_another_once(live, tmp_path):
    authenticator = patient_with_passkey(live)
    browser = live.visitor()
    token = browser.csrf("/login")
    options = browser.post("/login/passkey/options", headers={"X-CSRFToken": token}).json()
    answer = {"csrf_token": token, "credential": json.dumps(authenticator.get(options)), "next": "", "remember": ""}
    # A second instance on the same database, behind the same issuer (a load balancer).
    other = create_app({**live.app.config, "INSTANCE_PATH": str(tmp_path / "other")})
    with LiveServer(other) as second:
        elsewhere = browser.clone("127.0.0.1")
        elsewhere.base = second.url

        first = elsewhere.post("/login/passkey", answer)
        again = browser.post("/login/passkey", answer)
    with other.app_context():
        db.engine.dispose()

    assert first.status_code == 303, first.text[:500]
    assert again.status_code == 400 and "expiré ou a déjà été utilisée" in again.text.replace("&#39;", "'")
    assert passkey_sessions(live) == 1
