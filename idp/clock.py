"""The one source of "now", so tests can move time (expiry, majority) without sleeping.

Times are naive UTC datetimes: SQLite and PostgreSQL then store and compare them alike.
"""

from datetime import datetime, timedelta, timezone

_offset = timedelta(0)


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None) + _offset


def timestamp() -> int:
    """Seconds since the epoch, for JWT ``iat``/``exp``/``auth_time``."""
    return int(now().replace(tzinfo=timezone.utc).timestamp())


def to_timestamp(moment: datetime) -> int:
    return int(moment.replace(tzinfo=timezone.utc).timestamp())


def advance(delta: timedelta) -> None:
    """Move the clock forward (tests only)."""
    global _offset
    _offset += delta


def reset() -> None:
    global _offset
    _offset = timedelta(0)
