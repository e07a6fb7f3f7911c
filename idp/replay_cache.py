"""One-time values seen before (client assertion ``jti``, SAML assertion ids, request nonces).

Kept in the shared database so every instance refuses a replay seen by any other: the
primary key makes the second insert fail, whichever instance tries it.
"""

import hashlib
from datetime import datetime

from sqlalchemy import DateTime, String, bindparam, delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from . import clock
from .extensions import db


class SeenValue(db.Model):
    __tablename__ = "seen_value"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


def first_use(namespace: str, value: str, expires_at: datetime) -> bool:
    """Record ``value``; True the first time, False on every replay before ``expires_at``.

    One statement, whatever the transaction mode: an insert that replaces only an expired value,
    so of two concurrent first uses exactly one counts (the primary key decides)."""
    key = hashlib.sha256(f"{namespace}\x00{value}".encode()).hexdigest()
    dialect = db.session.get_bind().dialect.name
    statement = _FIRST_USE.get(dialect)
    if statement is None:
        upsert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        table = SeenValue.__table__
        fresh = upsert(table).values(key=bindparam("key"), expires_at=bindparam("expires_at"))
        statement = _FIRST_USE[dialect] = fresh.on_conflict_do_update(
            index_elements=[table.c.key], set_={"expires_at": fresh.excluded.expires_at},
            where=table.c.expires_at <= bindparam("now")).returning(table.c.key)
    written = db.session.connection().execute(statement, {"key": key, "expires_at": expires_at, "now": clock.now()})
    return written.first() is not None  # a row written: new, or in place of an expired one


_FIRST_USE: dict = {}


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping: :func:`first_use` already treats an expired value as unseen."""
    deleted = db.session.execute(delete(SeenValue).where(SeenValue.expires_at <= now), execution_options={"synchronize_session": False}).rowcount
    return {"seen_value": deleted or 0}
