"""The one source of "now", so tests can move time (expiry, majority) without sleeping.

Times are naive UTC datetimes: SQLite and PostgreSQL then store and compare them alike. Dates
that follow a person's calendar (a birthday, the last day of a delegation) are Luxembourg's:
:func:`today` turns at midnight in Europe/Luxembourg, an hour or two before UTC's.
"""

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

LUXEMBOURG = ZoneInfo("Europe/Luxembourg")
_offset = timedelta(0)


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None) + _offset


def today() -> date:
    """Today's date in Luxembourg, where the patients live and their birthdays fall."""
    return (datetime.now(timezone.utc) + _offset).astimezone(LUXEMBOURG).date()


def luxembourg_date(moment: datetime) -> date:
    """The Luxembourg date of a naive UTC time read from the database."""
    return moment.replace(tzinfo=timezone.utc).astimezone(LUXEMBOURG).date()


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
