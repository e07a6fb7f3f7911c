"""One-time values seen before (client assertion ``jti``, SAML assertion ids, request nonces).

Kept in the shared database so every instance refuses a replay seen by any other: the
primary key makes the second insert fail, whichever instance tries it.
"""

import hashlib
from datetime import datetime

from sqlalchemy import DateTime, String, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from . import clock
from .extensions import db


class SeenValue(db.Model):
    __tablename__ = "seen_value"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


def first_use(namespace: str, value: str, expires_at: datetime) -> bool:
    """Record ``value``; True the first time, False on every replay before ``expires_at``."""
    key = hashlib.sha256(f"{namespace}\x00{value}".encode()).hexdigest()
    existing = db.session.get(SeenValue, key)
    if existing is not None:
        if existing.expires_at > clock.now():
            return False
        db.session.delete(existing)
        db.session.flush()
    try:
        with db.session.begin_nested():
            db.session.add(SeenValue(key=key, expires_at=expires_at))
    except IntegrityError:
        return False
    return True


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping: :func:`first_use` already treats an expired value as unseen."""
    deleted = db.session.execute(delete(SeenValue).where(SeenValue.expires_at <= now), execution_options={"synchronize_session": False}).rowcount
    return {"seen_value": deleted or 0}
