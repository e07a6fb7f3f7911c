"""What a login costs the database (issue 7): each step reads a row once and writes it once.

Every statement costs the IdP CPU in the ORM and the driver, so a row read twice (say, again
after a commit expired it) or written twice (inserted, then updated) shows up here.
"""

import re
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event, select

from idp import clock
from idp.extensions import db
from idp.known_device import KnownDevice
from tests.conftest import PatientFactory, csrf_token

STATEMENT = re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM)\s", re.IGNORECASE)
FROM_TABLE = re.compile(r"\bFROM\s+\"?(\w+)", re.IGNORECASE)
WRITTEN_TABLE = re.compile(r"^\s*(?:INSERT INTO|UPDATE|DELETE FROM)\s+\"?(\w+)", re.IGNORECASE)


@contextmanager
def statements():
    """The SQL statements run inside the block, as ``(verb, first table)`` pairs."""
    seen = []

    def count(connection, cursor, statement, parameters, context, executemany):
        verb = STATEMENT.match(statement)
        table = (WRITTEN_TABLE if verb and verb.group(1).upper() != "SELECT" else FROM_TABLE).search(statement)
        seen.append(((verb.group(1).split()[0].upper() if verb else statement.split()[0].upper()), table.group(1) if table else None))

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_the_password_step_reads_the_account_once_and_writes_the_challenge_once(client, patients):
    patient = patients.create(email=None)
    page = client.get("/login")
    form = {"csrf_token": csrf_token(page.get_data(as_text=True)), "matricule": patient.matricule, "password": patient.password}
    with statements() as seen:
        done = client.post("/login", data=form)
    assert done.headers["Location"].endswith("/login/code")
    assert seen.count(("SELECT", "account")) == 1, seen
    assert [entry for entry in seen if entry[1] == "password_credential"] == [("UPDATE", "password_credential")] * 2, \
        "one statement claims the attempt and reads the hash, one clears the count"
    assert [entry for entry in seen if entry[1] == "one_time_code"] == [("INSERT", "one_time_code")], seen


def test_the_code_page_reads_the_attempt_in_one_statement(client, patients):
    patient = patients.create(email=None)
    patients.submit_password(patient)
    with statements() as seen:
        assert client.get("/login/code").status_code == 200
    assert len(seen) == 1, seen


def test_the_code_step_reads_nothing_twice(app, client, patients):
    patient = patients.create(email=None)
    patients.login(patient)
    other_browser = app.test_client()  # a new device: the longest path, with its notice
    other = PatientFactory(app, other_browser)
    other.submit_password(patient)
    page = other_browser.get("/login/code")
    form = {"csrf_token": csrf_token(page.get_data(as_text=True)), "code": other.last_code(patient.account.mobile)}
    with statements() as seen:
        done = other_browser.post("/login/code", data=form)
    assert done.status_code == 303
    selects = [table for verb, table in seen if verb == "SELECT"]
    assert "account" not in selects, "the account comes with the challenge, and is not read again after the commit"
    assert selects.count("one_time_code") == 1, "the challenge with its account"
    assert [entry for entry in seen if entry[1] == "one_time_code"] == [("SELECT", "one_time_code"), ("UPDATE", "one_time_code"),
                                                                        ("UPDATE", "one_time_code")], "read, try claimed, consumed"
    assert [entry for entry in seen if entry[1] == "usage_budget"] == [("INSERT", "usage_budget"), ("UPDATE", "usage_budget")], \
        "the day's budget spent, then given back with the send limits in one statement"
    assert selects.count("known_device") == 1, seen
    assert ("INSERT", "known_device") in seen


def test_a_login_from_a_known_browser_refreshes_its_last_use(app, client, patients):
    patient = patients.create()
    patients.login(patient)
    clock.advance(timedelta(days=3))
    patients.login(patient)
    db.session.expire_all()
    (device,) = db.session.scalars(select(KnownDevice).where(KnownDevice.account_id == patient.account.id))
    assert device.last_seen_at - device.first_seen_at >= timedelta(days=3)


def test_a_page_behind_the_session_reads_session_and_account_together(client, patients):
    patient = patients.create()
    patients.login(patient)
    clock.advance(timedelta(seconds=5))  # well within the session's touch interval: nothing to write
    with statements() as seen:
        assert client.get("/services").status_code == 200
    assert seen.count(("SELECT", "sso_session")) == 1 and ("SELECT", "account") not in seen, seen
