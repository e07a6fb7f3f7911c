"""Append-only audit log of security events.

Every security-relevant event goes through :func:`record` with a name from :class:`Event`
(``source:action`` tags, as Warehouse does). Rows are never updated or deleted by the
application: the ORM refuses it, row by row and in bulk statements, and on PostgreSQL a trigger
(migration ``0001``) refuses ``UPDATE`` and ``DELETE`` from any connection, raw SQL included.
The one exception is the retention job (:func:`purge`), which deletes what is past retention.
"""

import csv
import enum
import io
import json
from datetime import datetime, timedelta
from typing import Any

import click
from flask import current_app, has_request_context, request
from flask.cli import AppGroup
from blinker import Namespace
from sqlalchemy import JSON, DateTime, Insert, Integer, String, bindparam, delete, event, insert, select, text
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

from . import clock
from .cli_output import emit
from .database import PreparedStatement
from .extensions import db

# EHDS (EU 2025/327) Art. 9: a patient-visible access log kept at least 3 years; 1096 days
# cover three years whatever the leap days.
RETENTION_MINIMUM_DAYS = 1096
_RETENTION_PURGE = "audit_retention_purge"


class Event(str, enum.Enum):
    LOGIN_PASSWORD_OK = "login:password_ok"
    LOGIN_PASSWORD_FAILED = "login:password_failed"
    LOGIN_LOCKED = "login:locked"
    NEW_DEVICE_LOGIN = "login:new_device"
    LOGIN_SUCCEEDED = "login:succeeded"
    LOGIN_UNKNOWN_MATRICULE = "login:unknown_matricule"
    ONE_TIME_CODE_SENT = "one_time_code:sent"
    ONE_TIME_CODE_SEND_FAILED = "one_time_code:send_failed"
    ONE_TIME_CODE_FAILED = "one_time_code:failed"
    ONE_TIME_CODE_EXHAUSTED = "one_time_code:exhausted"
    SESSION_ENDED = "session:ended"
    LOGOUT = "session:logout"
    BACKCHANNEL_LOGOUT_DELIVERED = "session:backchannel_logout_delivered"
    BACKCHANNEL_LOGOUT_ABANDONED = "session:backchannel_logout_abandoned"
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
    CLIENT_APPROVED = "client:approved"
    INITIAL_ACCESS_TOKEN_ISSUED = "client:initial_access_token_issued"
    PATIENTS_IMPORTED = "registry:patients_imported"
    LETTER_ISSUED = "letter:issued"
    ACTIVATION_CODE_FAILED = "letter:code_failed"
    ACTIVATION_CODE_ACCEPTED = "activation:code_accepted"
    ACTIVATION_PASSWORD_SET = "activation:password_set"
    ACTIVATION_CHANNEL_VERIFIED = "activation:channel_verified"
    ACCOUNT_ACTIVATED = "account:activated"
    ACCOUNT_DISABLED = "account:disabled"
    ACCOUNT_ENABLED = "account:enabled"
    CONTACT_CHANGED = "account:contact_changed"
    CHANNEL_PREFERENCE_CHANGED = "account:channel_preference_changed"
    PASSWORD_CHANGED = "account:password_changed"
    PASSWORD_CREATED = "account:password_created"
    PASSWORD_RECOVERY_STARTED = "account:password_recovery_started"
    PASSWORD_RECOVERY_UNKNOWN = "account:password_recovery_unknown"
    PASSWORD_RESET = "account:password_reset"
    NOTIFICATION_FAILED = "notification:failed"
    HELPDESK_REQUEST_FILED = "helpdesk:request_filed"
    HELPDESK_REQUEST_RESOLVED = "helpdesk:request_resolved"
    ADMIN_LOGIN_SUCCEEDED = "admin:login_succeeded"
    ADMIN_LOGIN_FAILED = "admin:login_failed"
    ADMIN_LOGIN_LOCKED = "admin:login_locked"
    ADMIN_LOGOUT = "admin:logout"
    ADMIN_SESSION_ENDED = "admin:session_ended"
    ADMIN_TOTP_SEED_REWRAPPED = "admin:totp_seed_rewrapped"
    ADMIN_CREATED = "admin:created"
    SIGNING_KEY_CREATED = "signing_key:created"
    SIGNING_KEY_RETIRED = "signing_key:retired"
    DELEGATION_LOOKUP = "delegation:lookup"
    DELEGATION_GRANTED = "delegation:granted"
    DELEGATION_REVOKED = "delegation:revoked"
    DELEGATION_ENDED = "delegation:ended"
    DELEGATED_CONSENT_GRANTED = "delegation:consent_granted"
    DELEGATED_TOKEN_ISSUED = "delegation:token_issued"
    PATIENT_SELECTED = "delegation:patient_selected"
    TRAIL_EXPORTED = "audit:trail_exported"
    AUDIT_PURGED = "audit:purged"
    HOUSEKEEPING_PURGED = "housekeeping:purged"
    FEDERATED_IDENTITY_LINKED = "federation:identity_linked"
    FEDERATED_IDENTITY_UNLINKED = "federation:identity_unlinked"
    FEDERATED_LOGIN_STARTED = "federation:login_started"
    FEDERATED_RESPONSE_REJECTED = "federation:response_rejected"
    FEDERATED_UNKNOWN_IDENTITY = "federation:unknown_identity"
    FEDERATED_UPSTREAM_UNAVAILABLE = "federation:upstream_unavailable"
    FEDERATED_LOGOUT = "federation:logout"
    STEP_UP_REFUSED = "federation:step_up_refused"
    NATIONAL_ID_CONSENT_GIVEN = "national_id_consent:given"
    NATIONAL_ID_CONSENT_REVOKED = "national_id_consent:revoked"
    SIGNING_KEY_REWRAPPED = "signing_key:rewrapped"
    PASSKEY_REGISTERED = "passkey:registered"
    PASSKEY_RENAMED = "passkey:renamed"
    PASSKEY_REMOVED = "passkey:removed"
    PASSKEY_LOGIN_FAILED = "passkey:login_failed"
    PASSKEY_COUNTER_REGRESSION = "passkey:counter_regression"


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
        if state.is_delete and state.execution_options.get(_RETENTION_PURGE):
            return  # :func:`purge`, the retention job, and nothing else
        raise AuditLogIsAppendOnly("audit events are never changed or deleted")


# Sent once for every event written, by either way of writing it: the operations counters
# (:mod:`idp.observability`) are derived from here.
recorded = Namespace().signal("audit-recorded")


@event.listens_for(AuditEvent, "after_insert")
def _announce(mapper, connection, entry: AuditEvent) -> None:
    recorded.send(entry.name, details=entry.details)


def record(
    name: Event,
    *,
    account_id: int | None = None,
    client_id: str | None = None,
    actor: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Add an event to the current transaction; it is written with the change it describes."""
    entry = AuditEvent(**_values(name, account_id, client_id, actor, details))
    db.session.add(entry)
    return entry


def _values(name: Event, account_id: int | None, client_id: str | None, actor: str | None, details: dict) -> dict:
    return {"occurred_at": clock.now(), "name": name.value, "account_id": account_id, "client_id": client_id, "actor": actor,
            "ip_address": request.remote_addr if has_request_context() else None, "details": details}


_ENTRY = insert(AuditEvent.__table__).inline().values({column.name: bindparam(f"audit_{column.name}", type_=column.type)
                                              for column in AuditEvent.__table__.columns if column.name != "id"})
_WITH_ENTRY: dict[Insert, PreparedStatement] = {}


def insert_with(change: Insert, parameters: dict, name: Event, *, account_id: int | None = None, client_id: str | None = None,
                actor: str | None = None, **details: Any) -> None:
    """Run ``change`` (an INSERT built once, with bind parameters) and write the event it describes
    in the current transaction, in one statement and one round trip on PostgreSQL (a
    data-modifying ``WITH``, always run to completion, PostgreSQL manual §7.8.4); two statements
    elsewhere. No ORM unit of work: the token endpoints' hot path (issue 15)."""
    values = {f"audit_{key}": value for key, value in _values(name, account_id, client_id, actor, details).items()}
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        statement = _WITH_ENTRY.get(change)
        if statement is None:
            statement = _WITH_ENTRY[change] = PreparedStatement(_ENTRY.add_cte(change.cte("change")))
        statement.execute(connection, {**parameters, **values})
    else:
        connection.execute(change, parameters)
        connection.execute(_ENTRY, values)
    recorded.send(name.value, details=details)


def events_for(account_id: int, limit: int = 200) -> list[AuditEvent]:
    query = (
        select(AuditEvent)
        .where(AuditEvent.account_id == account_id)
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))


def trail(account_id: int, *, since: datetime | None = None, before: datetime | None = None,
          assistant_id: int | None = None) -> list[AuditEvent]:
    """One patient's trail ("Traçabilité"), newest first: optionally a period and one assistant's doings."""
    query = select(AuditEvent).where(AuditEvent.account_id == account_id).order_by(AuditEvent.id.desc())
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    if before is not None:
        query = query.where(AuditEvent.occurred_at < before)
    events = db.session.scalars(query)
    if assistant_id is None:
        return list(events)
    return [entry for entry in events if (entry.details or {}).get("assistant_id") == assistant_id]


ADMIN_TRAIL_FIELDS = ["occurred_at", "event", "client_id", "actor", "assistant_id", "ip_address", "details"]


def trail_rows(events: list[AuditEvent], *, with_ip_address: bool) -> list[dict]:
    """The trail as plain rows, the same for the patient's and the admin's CSV and JSON exports."""
    rows = []
    for entry in events:
        details = dict(entry.details or {})
        row = {
            "occurred_at": entry.occurred_at.isoformat(timespec="seconds") + "Z",
            "event": entry.name,
            "client_id": entry.client_id,
            "actor": entry.actor,
            "assistant_id": details.pop("assistant_id", None),
            "details": details,
        }
        if with_ip_address:
            row["ip_address"] = entry.ip_address
        rows.append(row)
    return rows


def serialize_trail(rows: list[dict], kind: str, fields: list[str]) -> tuple[str, str]:
    """``(body, mimetype)`` of a trail export: JSON, or CSV (UTF-8 with a BOM, for spreadsheets)."""
    if kind == "json":
        return json.dumps({"events": rows}, ensure_ascii=False, indent=2), "application/json"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "details": json.dumps(row.get("details") or {}, ensure_ascii=False, sort_keys=True)})
    return "\ufeff" + buffer.getvalue(), "text/csv"


def recent(limit: int = 100, name: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if name:
        query = query.where(AuditEvent.name == name)
    return list(db.session.scalars(query))


class RetentionTooShort(ValueError):
    pass


def purge(retention_days: int) -> int:
    """Delete the events older than ``retention_days``: the only deletion the log allows.

    On PostgreSQL the append-only trigger lets a DELETE through only in a transaction flagged
    ``idp.audit_purge`` and only for rows past the 3-year minimum (migration ``0004``).
    """
    if retention_days < RETENTION_MINIMUM_DAYS:
        raise RetentionTooShort(f"the audit log is kept at least {RETENTION_MINIMUM_DAYS} days (3 years)")
    cutoff = clock.now() - timedelta(days=retention_days)
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT set_config('idp.audit_purge', 'on', true)"))
    deleted = db.session.execute(
        delete(AuditEvent).where(AuditEvent.occurred_at < cutoff), execution_options={_RETENTION_PURGE: True}
    ).rowcount or 0
    record(Event.AUDIT_PURGED, actor="retention", before=cutoff.isoformat(timespec="seconds") + "Z", deleted=deleted,
           retention_days=retention_days)
    return deleted


audit_cli = AppGroup("audit", help="The audit log.")


@audit_cli.command("purge")
@click.option("--retention-days", type=int, default=None, help="Keep this many days (default: AUDIT_RETENTION_DAYS).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def purge_command(retention_days: int | None, as_json: bool) -> None:
    """Delete audit events older than the retention period (at least 3 years). Run daily."""
    try:
        deleted = purge(retention_days if retention_days is not None else current_app.config["AUDIT_RETENTION_DAYS"])
    except RetentionTooShort as error:
        raise click.ClickException(str(error)) from None
    db.session.commit()
    emit({"deleted": deleted}, as_json, lambda result: f"{result['deleted']} audit event(s) deleted")
