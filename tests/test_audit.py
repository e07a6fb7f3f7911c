"""The audit log is append-only: the ORM refuses changes, and PostgreSQL refuses raw SQL too."""

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from idp import audit
from idp.extensions import db
from tests.support import services


def _recorded_event() -> audit.AuditEvent:
    entry = audit.record(audit.Event.CLIENT_CREATED, client_id="dsp-viewer", actor="cli", reason="test")
    db.session.commit()
    return entry


def test_record_writes_an_event_with_its_details(app):
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.7"}):
        entry = audit.record(audit.Event.LOGIN_PASSWORD_FAILED, account_id=42, attempts=2)
        db.session.commit()
    db.session.expire_all()
    stored = db.session.get(audit.AuditEvent, entry.id)
    assert stored.name == "login:password_failed"
    assert (stored.account_id, stored.ip_address, stored.details) == (42, "192.0.2.7", {"attempts": 2})
    assert stored.occurred_at is not None
    assert [event.id for event in audit.events_for(42)] == [entry.id]


def test_orm_refuses_to_change_an_event(app):
    entry = _recorded_event()
    entry.actor = "someone else"
    with pytest.raises(audit.AuditLogIsAppendOnly):
        db.session.commit()
    db.session.rollback()
    assert db.session.get(audit.AuditEvent, entry.id).actor == "cli"


def test_orm_refuses_to_delete_an_event(app):
    entry = _recorded_event()
    db.session.delete(entry)
    with pytest.raises(audit.AuditLogIsAppendOnly):
        db.session.commit()
    db.session.rollback()
    assert db.session.get(audit.AuditEvent, entry.id) is not None


@pytest.mark.parametrize(
    "statement",
    [
        update(audit.AuditEvent).values(actor="someone else"),
        update(audit.AuditEvent.__table__).values(actor="someone else"),
        delete(audit.AuditEvent),
    ],
    ids=["orm-update", "core-update", "orm-delete"],
)
def test_orm_refuses_bulk_statements_on_events(app, statement):
    _recorded_event()
    with pytest.raises(audit.AuditLogIsAppendOnly):
        db.session.execute(statement)
    db.session.rollback()
    assert db.session.scalars(select(audit.AuditEvent.actor)).all() == ["cli"]


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    ["UPDATE audit_event SET actor = 'someone else'", "DELETE FROM audit_event"],
    ids=["update", "delete"],
)
def test_postgresql_trigger_refuses_raw_sql(app, sql):
    """Fails, never skips, without PostgreSQL: ``make test`` always provides one."""
    services.database_url(required=True)
    assert db.engine.dialect.name == "postgresql"
    _recorded_event()
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text(sql))
    db.session.rollback()
    assert db.session.scalars(select(audit.AuditEvent.actor)).all() == ["cli"]
