"""Six-digit one-time codes sent by SMS or e-mail.

Each code belongs to one challenge (a login attempt, an activation step), identified by a
random id that only the browser holding that attempt knows. A code is single use, expires
after ``ONE_TIME_CODE_TTL`` seconds (≤ 10 minutes), and dies after
``ONE_TIME_CODE_MAX_ATTEMPTS`` wrong entries. Codes are stored as HMAC-SHA256 under the
app secret: six digits are too few for a plain hash.
"""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext
from sqlalchemy import DateTime, ForeignKey, Integer, String, bindparam, delete, func, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from . import audit, clock, messaging
from .account import Account
from .extensions import db


class OneTimeCode(db.Model):
    __tablename__ = "one_time_code"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(8))
    destination: Mapped[str] = mapped_column(String(320))
    code_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    sends: Mapped[int] = mapped_column(Integer, default=0)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Every wrong entry, never reset by a resend: the account's daily budget counts these.
    failures_total: Mapped[int] = mapped_column(Integer, default=0)
    consumed_at: Mapped[datetime | None] = mapped_column(DateTime)


class OneTimeCodeError(Exception):
    pass


class OneTimeCodeExpired(OneTimeCodeError):
    pass


class OneTimeCodeWrong(OneTimeCodeError):
    def __init__(self, attempts_left: int):
        super().__init__(f"{attempts_left} attempts left")
        self.attempts_left = attempts_left


class OneTimeCodeExhausted(OneTimeCodeError):
    """Too many wrong entries: a new code must be sent."""


class OneTimeCodeUsed(OneTimeCodeError):
    pass


class OneTimeCodeBlocked(OneTimeCodeError):
    """The account used up its daily budget of wrong codes: no code is accepted until it renews."""


class ResendTooSoon(OneTimeCodeError):
    def __init__(self, seconds: int):
        super().__init__(f"wait {seconds}s")
        self.seconds = seconds


def _digest(challenge_id: str, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{challenge_id}:{code}".encode(), hashlib.sha256).hexdigest()


def start(account_id: int | None, purpose: str, channel: str, destination: str) -> OneTimeCode:
    """Create a challenge and send its first code. Raises :class:`messaging.MessageNotSent`.

    The challenge is added to the session, not committed: on a failed send the caller commits
    the challenge (so a retry can resend) and shows the error. It joins the session once the
    send is over, so the row is written once, with its code, instead of inserted then updated.
    """
    challenge = OneTimeCode(
        id=secrets.token_urlsafe(24),
        account_id=account_id,
        purpose=purpose,
        channel=channel,
        destination=destination,
        created_at=clock.now(),
        sends=0,
        failures_total=0,
        failed_attempts=0,
    )
    try:
        send(challenge)
    finally:
        db.session.add(challenge)
    return challenge


def get(challenge_id: str | None) -> OneTimeCode | None:
    if not challenge_id:
        return None
    return db.session.get(OneTimeCode, challenge_id)


# The login's statements, built once: building a select and its cache key costs about as much
# CPU as running it.
_WITH_ACCOUNT = (
    select(OneTimeCode, Account)
    .join(Account, Account.id == OneTimeCode.account_id)
    .where(OneTimeCode.id == bindparam("challenge_id"), Account.id == bindparam("account_id"))
)
_FAILURES_SINCE = select(func.coalesce(func.sum(OneTimeCode.failures_total), 0)).where(
    OneTimeCode.account_id == bindparam("account_id"), OneTimeCode.created_at > bindparam("since")
)


def get_with_account(challenge_id: str | None, account_id: int | None) -> tuple[OneTimeCode, Account] | tuple[None, None]:
    """The challenge and its account in one round trip, when the challenge belongs to ``account_id``."""
    if not challenge_id or account_id is None:
        return None, None
    row = db.session.execute(_WITH_ACCOUNT, {"challenge_id": challenge_id, "account_id": account_id}).first()
    return (row[0], row[1]) if row is not None else (None, None)


def send(challenge: OneTimeCode, *, respect_cooldown: bool = False) -> None:
    """Send a fresh code (the previous one stops working)."""
    now = clock.now()
    config = current_app.config
    if respect_cooldown and challenge.last_sent_at:
        ready_at = challenge.last_sent_at + timedelta(seconds=config["ONE_TIME_CODE_RESEND_COOLDOWN"])
        if ready_at > now:
            raise ResendTooSoon(int((ready_at - now).total_seconds()) + 1)
    if challenge.consumed_at:
        raise OneTimeCodeUsed()
    code = f"{secrets.randbelow(10**6):06d}"
    minutes = max(1, config["ONE_TIME_CODE_TTL"] // 60)
    body = gettext("Votre code à usage unique eSanté : %(code)s. Il est valable %(minutes)d minutes. Ne le communiquez à personne.", code=code, minutes=minutes)
    try:
        messaging.send(challenge.channel, challenge.destination, gettext("Votre code à usage unique eSanté"), body)
    except messaging.MessageNotSent:
        audit.record(audit.Event.ONE_TIME_CODE_SEND_FAILED, account_id=challenge.account_id, channel=challenge.channel)
        raise
    challenge.code_hash = _digest(challenge.id, code)
    challenge.expires_at = now + timedelta(seconds=config["ONE_TIME_CODE_TTL"])
    challenge.last_sent_at = now
    challenge.sends += 1
    challenge.failed_attempts = 0
    audit.record(audit.Event.ONE_TIME_CODE_SENT, account_id=challenge.account_id, channel=challenge.channel, purpose=challenge.purpose)


def _failures_today(account_id: int) -> int:
    """Wrong codes entered for the account in the last 24 hours, over all its challenges.

    Per challenge, a resend gives five fresh tries; this bounds the guesses per account
    whatever the number of resends or restarted logins (NIST SP 800-63B §5.2.2).
    """
    since = clock.now() - timedelta(hours=24)
    return int(db.session.scalar(_FAILURES_SINCE, {"account_id": account_id, "since": since}))


def verify(challenge: OneTimeCode, code: str) -> None:
    """Consume the code or raise; the caller commits either way (failures must count)."""
    if challenge.consumed_at:
        raise OneTimeCodeUsed()
    if challenge.code_hash is None:
        raise OneTimeCodeExpired()
    if challenge.failed_attempts >= current_app.config["ONE_TIME_CODE_MAX_ATTEMPTS"]:
        raise OneTimeCodeExhausted()
    if challenge.expires_at is None or challenge.expires_at <= clock.now():
        raise OneTimeCodeExpired()
    if challenge.account_id is not None and _failures_today(challenge.account_id) >= current_app.config["ONE_TIME_CODE_DAILY_FAILURES"]:
        raise OneTimeCodeBlocked()
    candidate = "".join(ch for ch in (code or "") if ch.isdigit())
    if not hmac.compare_digest(_digest(challenge.id, candidate), challenge.code_hash):
        challenge.failed_attempts += 1
        challenge.failures_total += 1
        left = current_app.config["ONE_TIME_CODE_MAX_ATTEMPTS"] - challenge.failed_attempts
        audit.record(audit.Event.ONE_TIME_CODE_FAILED, account_id=challenge.account_id, attempts_left=left)
        if left <= 0:
            audit.record(audit.Event.ONE_TIME_CODE_EXHAUSTED, account_id=challenge.account_id)
            raise OneTimeCodeExhausted()
        raise OneTimeCodeWrong(left)
    challenge.consumed_at = clock.now()


# A patient's wrong codes are counted over the last 24 hours, all challenges together (NIST SP
# 800-63B §5.2.2): a challenge is kept twice that long so the budget holds.
KEPT_FOR = timedelta(days=2)


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping: challenges past use and older than :data:`KEPT_FOR`."""
    deleted = db.session.execute(delete(OneTimeCode).where(OneTimeCode.created_at <= now - KEPT_FOR,
                                                           or_(OneTimeCode.expires_at.is_(None), OneTimeCode.expires_at <= now)),
                                 execution_options={"synchronize_session": False}).rowcount
    return {"one_time_code": deleted or 0}
