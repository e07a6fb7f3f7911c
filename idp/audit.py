"""Append-only audit log of security events.

Every security-relevant event goes through :func:`record` with a name from :class:`Event`
(``source:action`` tags, as Warehouse does). Rows are never updated or deleted by the
application: the ORM refuses it, row by row and in bulk statements, and on PostgreSQL a trigger
(migration ``0001``) refuses ``UPDATE`` and ``DELETE`` from any connection, raw SQL included.
"""

import enum
from datetime import datetime
from typing import Any

from flask import has_request_context, request
from sqlalchemy import JSON, DateTime, Integer, String, event, select
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

from . import clock
from .extensions import db


class Event(str, enum.Enum):
    LOGIN_PASSWORD_OK = "login:password_ok"
    LOGIN_PASSWORD_FAILED = "login:password_failed"
    LOGIN_LOCKED = "login:locked"
    LOGIN_SUCCEEDED = "login:succeeded"
    LOGIN_UNKNOWN_MATRICULE = "login:unknown_matricule"
    ONE_TIME_CODE_SENT = "one_time_code:sent"
    ONE_TIME_CODE_SEND_FAILED = "one_time_code:send_failed"
    ONE_TIME_CODE_FAILED = "one_time_code:failed"
    ONE_TIME_CODE_EXHAUSTED = "one_time_code:exhausted"
    SESSION_ENDED = "session:ended"
    LOGOUT = "session:logout"
    CONSENT_GRANTED = "consent:granted"
    CONSENT_REVOKED = "consent:revoked"
    AUTHORIZATION_CODE_ISSUED = "authorization:code_issued"
    AUTHORIZATION_CODE_REUSED = "authorization:code_reused"
    TOKEN_ISSUED = "token:issued"
    TOKEN_REFRESHED = "token:refreshed"
    TOKEN_REVOKED = "token:revoked"
    REFRESH_TOKEN_REUSED = "token:refresh_reused"
    CLIENT_CREATED = "client:created"
    CLIENT_UPDATED = "client:updated"
    CLIENT_DISABLED = "client:disabled"
    CLIENT_DELETED = "client:deleted"
    CLIENT_SECRET_ROTATED = "client:secret_rotated"
    CLIENT_REGISTERED = "client:registered"
    INITIAL_ACCESS_TOKEN_ISSUED = "client:initial_access_token_issued"
    PATIENTS_IMPORTED = "registry:patients_imported"
    LETTER_ISSUED = "letter:issued"
    ACTIVATION_CODE_FAILED = "letter:code_failed"
    ACTIVATION_CODE_ACCEPTED = "activation:code_accepted"
    ACTIVATION_PASSWORD_SET = "activation:password_set"
    ACTIVATION_CHANNEL_VERIFIED = "activation:channel_verified"
    ACCOUNT_ACTIVATED = "account:activated"
    CONTACT_CHANGED = "account:contact_changed"
    CHANNEL_PREFERENCE_CHANGED = "account:channel_preference_changed"
    PASSWORD_CHANGED = "account:password_changed"
    PASSWORD_RECOVERY_STARTED = "account:password_recovery_started"
    PASSWORD_RECOVERY_UNKNOWN = "account:password_recovery_unknown"
    PASSWORD_RESET = "account:password_reset"
    NOTIFICATION_FAILED = "notification:failed"
    HELPDESK_REQUEST_FILED = "helpdesk:request_filed"
    HELPDESK_REQUEST_RESOLVED = "helpdesk:request_resolved"
    ADMIN_LOGIN_SUCCEEDED = "admin:login_succeeded"
    ADMIN_LOGIN_FAILED = "admin:login_failed"
    ADMIN_CREATED = "admin:created"
    SIGNING_KEY_CREATED = "signing_key:created"
    SIGNING_KEY_RETIRED = "signing_key:retired"


class AuditEvent(db.Model):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[int | None] = mapped_column(Integer, index=True)
    client_id: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(128))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict] = mapped_column(JSON, default=dict)


class AuditLogIsAppendOnly(Exception):
    pass


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _refuse_change(mapper, connection, target) -> None:
    raise AuditLogIsAppendOnly("audit events are never changed or deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_change(state: ORMExecuteState) -> None:
    """``update(AuditEvent)`` / ``delete(...)`` statements skip the per-row hooks above."""
    if (state.is_update or state.is_delete) and state.statement.table.name == AuditEvent.__tablename__:
        raise AuditLogIsAppendOnly("audit events are never changed or deleted")


def record(
    name: Event,
    *,
    account_id: int | None = None,
    client_id: str | None = None,
    actor: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Add an event to the current transaction; it is written with the change it describes."""
    entry = AuditEvent(
        occurred_at=clock.now(),
        name=name.value,
        account_id=account_id,
        client_id=client_id,
        actor=actor,
        ip_address=request.remote_addr if has_request_context() else None,
        details=details,
    )
    db.session.add(entry)
    return entry


def events_for(account_id: int, limit: int = 200) -> list[AuditEvent]:
    query = (
        select(AuditEvent)
        .where(AuditEvent.account_id == account_id)
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))


def recent(limit: int = 100, name: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if name:
        query = query.where(AuditEvent.name == name)
    return list(db.session.scalars(query))
