"""No page tells which matricules have an account until a right secret is shown (issue 13, medium 5).

For each step that takes a matricule from anyone, an unknown matricule, a pending account and
an active one (with a wrong secret) must get the same status, the same message and the same
kind of work (the same tables written, no password hash compared where the others do not): the
answer, the countdown of tries, the lockout and the timing class are alike. The one exception is
the reset code a real account is sent. The answers are compared with each other, not with
strings taken from the code.
"""

import re

import pytest
from sqlalchemy import event

from idp import activation_letter, matricule, messaging
from idp.extensions import db
from tests.conftest import PatientFactory, csrf_token

WRITE = re.compile(r"^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+\"?(\w+)", re.IGNORECASE)


def visible(response) -> str:
    """The page's text without the parts that differ on every request (CSRF tokens)."""
    html = re.sub(r'value="[^"]*"', "", response.get_data(as_text=True))
    return re.sub(r"\s+", " ", html)


class Writes:
    """The database writes (verb, table) a request makes, in order."""

    def __enter__(self):
        self.seen = []
        event.listen(db.engine, "before_cursor_execute", self._record)
        return self.seen

    def _record(self, connection, cursor, statement, parameters, context, executemany):
        if match := WRITE.match(statement):
            self.seen.append((match.group(1).split()[0].upper(), match.group(2)))

    def __exit__(self, *exc):
        event.remove(db.engine, "before_cursor_execute", self._record)


@pytest.fixture
def three_matricules(patients, runner):
    """An unknown matricule, a pending account (with its letter) and an active account."""
    unknown = matricule.with_check_digits("19700101" + "999")
    pending = patients.create(status="pending", email="pending@example.lu", mobile="+352621000401")
    activation_letter.issue(pending.account)
    active = patients.create(email="active@example.lu", mobile="+352621000402", family_name="Wagner")
    db.session.commit()
    return {"unknown": unknown, "pending": pending.matricule, "active": active.matricule}


def fresh_browser(app):
    return PatientFactory(app, app.test_client()).client


def post(browser, path: str, page: str | None = None, **data):
    html = browser.get(page or path).get_data(as_text=True)
    return browser.post(path, data={"csrf_token": csrf_token(html), **data})


def test_the_activation_code_step_answers_alike_for_every_matricule(app, three_matricules):
    """Before: an active matricule with a wrong code got 409 « déjà activé », the others 400."""
    answers = {}
    for who, value in three_matricules.items():
        browser = fresh_browser(app)
        post(browser, "/activation", accept="y")
        with Writes() as writes:
            response = post(browser, "/activation/code", matricule=value, has_code="yes", activation_code="AAAA-BBBB-CCCC")
        answers[who] = (response.status_code, visible(response), writes)
    assert answers["unknown"] == answers["pending"] == answers["active"]
    assert answers["active"][0] == 400


def test_the_forgotten_password_steps_answer_alike_for_every_matricule(app, three_matricules):
    """Before: only a real account counted the tries down (« Il vous reste 4 essais »), an unknown
    matricule always answered « Code incorrect. »; and a password holding the patient's name was
    refused for a real account only, telling its name to anyone."""
    answers = {}
    for who, value in three_matricules.items():
        browser = fresh_browser(app)
        with Writes() as writes_forgotten:
            forgotten = post(browser, "/password/forgotten", matricule=value)
        pages, writes_reset = [], []
        for password in ["Wagner2026ok"] + ["Nouveau2026ok"] * app.config["ONE_TIME_CODE_MAX_ATTEMPTS"]:
            with Writes() as writes:
                reset = post(browser, "/password/reset", code="000000", password=password, confirmation=password)
            pages.append((reset.status_code, visible(reset)))
            writes_reset.append(writes)
        # The message itself is the one difference: the outbox row here, a gateway's round trip in production
        # (docs/security.md §4 keeps that gap).
        work = sorted(set(writes_forgotten) - {("INSERT", "outbox_message")})
        answers[who] = (forgotten.status_code, forgotten.headers.get("Location"), pages, work, writes_reset)
    assert answers["unknown"] == answers["pending"] == answers["active"]
    assert "Wagner" not in str(answers["active"][2]), "the name is not told"
    db.session.expire_all()
    assert [m.to for m in messaging.outbox_messages()] == ["+352621000402"], "only the real account got a code"


def test_the_forgotten_password_throttles_and_send_limits_answer_alike(app, three_matricules):
    """A second request within the cooldown is refused the same way, whether a code went out or not."""
    answers = {}
    for who, value in three_matricules.items():
        browser = fresh_browser(app)
        first = post(browser, "/password/forgotten", matricule=value)
        second = post(browser, "/password/forgotten", matricule=value)
        answers[who] = (first.status_code, second.status_code, visible(second))
    assert answers["unknown"] == answers["pending"] == answers["active"]
    assert answers["active"][:2] == (303, 429)


def test_a_password_naming_the_patient_is_refused_once_the_code_is_right(client, patients):
    """The rule that names the patient is told only to whoever holds the code, and the code stays usable."""
    patient = patients.create(family_name="Wagner", email=None, mobile="+352621000403")
    post(client, "/password/forgotten", matricule=patient.matricule)
    code = patients.last_code("+352621000403")
    named = post(client, "/password/reset", code=code, password="Wagner2026ok", confirmation="Wagner2026ok")
    assert named.status_code == 400 and "ni votre matricule ni votre nom" in named.get_data(as_text=True)
    done = post(client, "/password/reset", code=code, password="Nouveau2026ok", confirmation="Nouveau2026ok")
    assert done.status_code == 303
