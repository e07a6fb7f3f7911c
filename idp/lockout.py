"""Failure counters with a backoff lockout, each attempt claimed in the database before its secret is compared.

Patients' passwords, admins' logins and activation codes count wrong secrets alike: after
``max_failures`` in a row the subject is locked for ``base_seconds``, doubled at each further
lockout (at most 64 times), and a right secret clears the count. Backoff rather than a hard
lock: a guesser is slowed down, nobody can shut the owner out for good (ASVS 5.0 §6.1.1, NIST
SP 800-63B §5.2.2).

An attempt is claimed *before* the secret is compared, by one conditional
``UPDATE … RETURNING`` that counts it and, on the attempt that reaches the limit, sets the
lock: the database serializes the row, so a burst of simultaneous attempts cannot all read the
same count (SQLite ignores ``FOR UPDATE``; PostgreSQL re-checks the ``WHERE`` on the row it
waited for). The attempt that reaches the limit locks pessimistically: if its secret turns out
right, :func:`clear` lifts the lock again.

A model taking part has the columns ``failed_attempts``, ``lockouts`` and ``locked_until``.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, or_, select, update

from . import clock
from .extensions import db, upsert_for

MAX_DOUBLINGS = 6  # 64 × the base: 5 h 20 min for a 300-second base


@dataclass(frozen=True)
class Claim:
    """What the claim of one attempt gave."""

    allowed: bool  # False: the subject was locked; nothing may be compared
    locked_until: datetime | None  # the lock in force (refused) or the one this attempt set
    just_locked: bool  # this attempt reached the limit: if its secret is wrong, the lockout starts now
    returned: tuple = ()  # the ``returning`` columns of the row, read by the same statement (allowed claims)


def claim(model: Any, key: ColumnElement[bool], *, max_failures: int, base_seconds: int, returning: tuple = ()) -> Claim | None:
    """Count one attempt on the row of ``model`` matching ``key``; None when there is no such row.

    ``returning`` columns (the stored secret) come back with an allowed claim, read in the same statement."""
    now = clock.now()
    reaches = model.failed_attempts + 1 >= max_failures
    lock_end = case(
        *((model.lockouts == doublings, now + timedelta(seconds=base_seconds * 2**doublings)) for doublings in range(MAX_DOUBLINGS)),
        else_=now + timedelta(seconds=base_seconds * 2**MAX_DOUBLINGS),
    )
    statement = (
        update(model)
        .where(key, or_(model.locked_until.is_(None), model.locked_until <= now))
        .values(
            failed_attempts=case((reaches, 0), else_=model.failed_attempts + 1),
            lockouts=case((reaches, model.lockouts + 1), else_=model.lockouts),
            locked_until=case((reaches, lock_end), else_=model.locked_until),
        )
        .returning(model.failed_attempts, model.locked_until, *returning)
        .execution_options(synchronize_session=False)
    )
    claimed = db.session.execute(statement).first()
    if claimed is not None:
        just_locked = claimed.failed_attempts == 0 and claimed.locked_until is not None and claimed.locked_until > now
        return Claim(True, claimed.locked_until if just_locked else None, just_locked, tuple(claimed[2:]))
    existing = db.session.execute(select(model.locked_until).where(key)).first()
    if existing is None:
        return None
    return Claim(False, existing.locked_until, False)


def claim_keyed(model: Any, key: str, *, max_failures: int, base_seconds: int) -> Claim:
    """:func:`claim` on a table keyed by a string ``key`` column, creating the row on first use."""
    while True:  # again only if housekeeping deleted a long-unlocked row in between
        db.session.execute(upsert_for(model).values(key=key, failed_attempts=0, lockouts=0).on_conflict_do_nothing())
        found = claim(model, model.key == key, max_failures=max_failures, base_seconds=base_seconds)
        if found is not None:
            return found


def clear(model: Any, key: ColumnElement[bool]) -> None:
    """A right secret: the count, the backoff and any lock start over."""
    db.session.execute(
        update(model).where(key).values(failed_attempts=0, lockouts=0, locked_until=None).execution_options(synchronize_session=False)
    )
