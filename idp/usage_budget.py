"""Budgets of uses per key and time window, spent atomically in the database.

A budget allows ``limit`` uses of a key in a window that opens at the first use and lasts
``window``; the next use after it opens a new one. It bounds what a burst of requests cannot be
allowed to multiply, with the count shared by every instance: the wrong one-time codes of an
account per day, the codes sent to an account per day, and the cooldown between two sends (a
budget of one use per cooldown).

Each use is spent by one ``INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING`` (PostgreSQL
and SQLite alike): the row is created, renewed or counted in one statement, which the
database serializes, so no two requests can spend the same last use. Keys are built by the
caller and stored as their SHA-256 (they name an account id or an HMAC of a matricule, never
the matricule itself).
"""

import hashlib
import math
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Integer, String, case, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from . import clock
from .extensions import db, upsert_for

# No budget window is longer than a day (:mod:`idp.one_time_code`): a row whose window opened this
# long ago counts nothing any more, and its key's next use opens a new window anyway.
KEPT_FOR = timedelta(days=2)


class UsageBudget(db.Model):
    __tablename__ = "usage_budget"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_started_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    used: Mapped[int] = mapped_column(Integer)


class BudgetSpent(Exception):
    """Every use of the window is taken; ``retry_after`` seconds until it renews."""

    def __init__(self, retry_after: int):
        super().__init__(f"renews in {retry_after}s")
        self.retry_after = retry_after


def _stored(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def spend(key: str, limit: int, window: timedelta) -> int:
    """Take one use of ``key``'s budget and return how many are taken; raise :class:`BudgetSpent` when none is left."""
    key, now = _stored(key), clock.now()
    renews = UsageBudget.window_started_at <= now - window
    statement = upsert_for(UsageBudget).values(key=key, window_started_at=now, used=1)
    statement = statement.on_conflict_do_update(
        index_elements=[UsageBudget.key],
        set_={
            "used": case((renews, 1), else_=UsageBudget.used + 1),
            "window_started_at": case((renews, now), else_=UsageBudget.window_started_at),
        },
        where=renews | (UsageBudget.used < limit),
    ).returning(UsageBudget.used)
    used = db.session.execute(statement, execution_options={"synchronize_session": False}).scalar()
    if used is not None:
        return used
    started = db.session.scalar(select(UsageBudget.window_started_at).where(UsageBudget.key == key))
    raise BudgetSpent(max(1, math.ceil((started + window - now).total_seconds())))


def refund(*keys: str) -> None:
    """Give one use of each key back (one statement): what it was spent on turned out not to count
    (a right code, a message not sent)."""
    db.session.execute(
        update(UsageBudget).where(UsageBudget.key.in_([_stored(key) for key in keys]), UsageBudget.used > 0)
        .values(used=UsageBudget.used - 1),
        execution_options={"synchronize_session": False},
    )


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping: budgets whose window opened more than :data:`KEPT_FOR` ago."""
    deleted = db.session.execute(delete(UsageBudget).where(UsageBudget.window_started_at <= now - KEPT_FOR),
                                 execution_options={"synchronize_session": False}).rowcount
    return {"usage_budget": deleted or 0}
