"""Six-digit one-time codes sent by SMS or e-mail.

Each code belongs to one challenge (a login attempt, an activation step), identified by a
random id that only the browser holding that attempt knows. A code is single use, expires
after ``ONE_TIME_CODE_TTL`` seconds (≤ 10 minutes), and dies after
``ONE_TIME_CODE_MAX_ATTEMPTS`` wrong entries; an account gets at most
``ONE_TIME_CODE_DAILY_FAILURES`` wrong entries a day, whatever the resends (NIST SP 800-63B
§5.2.2). Codes are stored as HMAC-SHA256 under the app secret: six digits are too few for a
plain hash.

Every bound is claimed in the database before the code is compared: a conditional UPDATE takes
one of the code's tries, :mod:`idp.usage_budget` one of the account's daily budget, so a burst of
simultaneous entries gets exactly the tries there are (issue 13). Entries are also throttled per
account (:mod:`idp.throttle`). Sends are bounded too, against message flooding: one per
``ONE_TIME_CODE_RESEND_COOLDOWN`` seconds for the same step while its last code is unused, and
``ONE_TIME_CODE_DAILY_SENDS`` unused codes per account and day.

A *decoy* challenge answers exactly like a real one but sends nothing and matches no code: the
forgotten-password step starts one for a matricule without a usable account, so that nothing
(status, message, countdown, lockout, timing) tells which matricules have one.
"""

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext
from sqlalchemy import DateTime, ForeignKey, Integer, String, bindparam, delete, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from . import audit, clock, messaging, throttle, usage_budget
from .account import Account
from .extensions import db

DAY = timedelta(hours=24)
DECOY_CHANNEL = "none"


class OneTimeCode(db.Model):
    __tablename__ = "one_time_code"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    # Whose budgets this challenge spends: "account:<id>", or "matricule:<hmac>" for a decoy.
    subject_key: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(8))
    destination: Mapped[str] = mapped_column(String(320))
    code_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    sends: Mapped[int] = mapped_column(Integer, default=0)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
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


class OneTimeCodeThrottled(OneTimeCodeError):
    """Too many entries for this account in a short time, whatever the addresses (per-account throttle)."""

    def __init__(self, seconds: int):
        super().__init__(f"wait {seconds}s")
        self.seconds = seconds


class ResendTooSoon(OneTimeCodeError):
    """A code for this step went out less than ``ONE_TIME_CODE_RESEND_COOLDOWN`` seconds ago and is unused."""

    def __init__(self, seconds: int):
        super().__init__(f"wait {seconds}s")
        self.seconds = seconds


class SendLimitReached(OneTimeCodeError):
    """``ONE_TIME_CODE_DAILY_SENDS`` codes went to this account today and none came back."""

    def __init__(self, seconds: int):
        super().__init__(f"wait {seconds}s")
        self.seconds = seconds


def _digest(challenge_id: str, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{challenge_id}:{code}".encode(), hashlib.sha256).hexdigest()


def account_subject(account_id: int) -> str:
    return f"account:{account_id}"


def matricule_subject(matricule: str) -> str:
    """The subject of a decoy: an HMAC of the matricule typed, never the matricule."""
    digest = hmac.new(current_app.config["SECRET_KEY"].encode(), f"one-time-code|{matricule}".encode(), hashlib.sha256)
    return "matricule:" + digest.hexdigest()[:40]


def start(account_id: int, purpose: str, channel: str, destination: str) -> OneTimeCode:
    """Create a challenge and send its first code.

    Raises :class:`messaging.MessageNotSent`, :class:`ResendTooSoon` or :class:`SendLimitReached`.
    The challenge is added to the session, not committed: on a failed send the caller commits
    the challenge (so a retry can resend) and shows the error. It joins the session once the
    send is over, so the row is written once, with its code, instead of inserted then updated.
    """
    return _start(account_id, account_subject(account_id), purpose, channel, destination)


def start_decoy(subject_key: str, purpose: str) -> OneTimeCode:
    """A challenge for someone without a usable account: it spends the same budgets as a real one
    (cooldown, daily sends, tries, daily failures), sends nothing, and no code ever matches it."""
    return _start(None, subject_key, purpose, DECOY_CHANNEL, "")


def _start(account_id: int | None, subject_key: str, purpose: str, channel: str, destination: str) -> OneTimeCode:
    challenge = OneTimeCode(
        id=secrets.token_urlsafe(24),
        account_id=account_id,
        subject_key=subject_key,
        purpose=purpose,
        channel=channel,
        destination=destination,
        created_at=clock.now(),
        sends=0,
        failed_attempts=0,
    )
    try:
        send(challenge)
    except messaging.MessageNotSent:
        db.session.add(challenge)
        raise
    db.session.add(challenge)
    return challenge


def get(challenge_id: str | None) -> OneTimeCode | None:
    if not challenge_id:
        return None
    return db.session.get(OneTimeCode, challenge_id)


# The login's statement, built once: building a select and its cache key costs about as much
# CPU as running it.
_WITH_ACCOUNT = (
    select(OneTimeCode, Account)
    .join(Account, Account.id == OneTimeCode.account_id)
    .where(OneTimeCode.id == bindparam("challenge_id"), Account.id == bindparam("account_id"))
)


def get_with_account(challenge_id: str | None, account_id: int | None) -> tuple[OneTimeCode, Account] | tuple[None, None]:
    """The challenge and its account in one round trip, when the challenge belongs to ``account_id``."""
    if not challenge_id or account_id is None:
        return None, None
    row = db.session.execute(_WITH_ACCOUNT, {"challenge_id": challenge_id, "account_id": account_id}).first()
    return (row[0], row[1]) if row is not None else (None, None)


def _cooldown_key(challenge: OneTimeCode) -> str:
    return f"send-cooldown|{challenge.subject_key}|{challenge.purpose}"


def _sends_key(challenge: OneTimeCode) -> str:
    return f"sends|{challenge.subject_key}"


def _failures_key(challenge: OneTimeCode) -> str:
    return f"code-failures|{challenge.subject_key}"


def _spend_a_send(challenge: OneTimeCode) -> None:
    """The flooding bounds: the step's cooldown, then the account's daily sends (issue 13, medium 7)."""
    config = current_app.config
    cooldown = config["ONE_TIME_CODE_RESEND_COOLDOWN"]
    if cooldown:
        try:
            usage_budget.spend(_cooldown_key(challenge), 1, timedelta(seconds=cooldown))
        except usage_budget.BudgetSpent as spent:
            raise ResendTooSoon(spent.retry_after) from None
    try:
        usage_budget.spend(_sends_key(challenge), config["ONE_TIME_CODE_DAILY_SENDS"], DAY)
    except usage_budget.BudgetSpent as spent:
        usage_budget.refund(_cooldown_key(challenge))
        raise SendLimitReached(spent.retry_after) from None


def _give_back_a_send(challenge: OneTimeCode, *more_keys: str) -> None:
    """The code did not go out, or came back used: it no longer counts against flooding."""
    usage_budget.refund(_cooldown_key(challenge), _sends_key(challenge), *more_keys)


def send(challenge: OneTimeCode) -> None:
    """Send a fresh code (the previous one stops working); raises like :func:`start`."""
    if challenge.consumed_at:
        raise OneTimeCodeUsed()
    _spend_a_send(challenge)
    now = clock.now()
    config = current_app.config
    if challenge.channel == DECOY_CHANNEL:
        challenge.code_hash = _digest(challenge.id, secrets.token_urlsafe(16))  # not six digits: no entry can match
    else:
        code = f"{secrets.randbelow(10**6):06d}"
        minutes = max(1, config["ONE_TIME_CODE_TTL"] // 60)
        body = gettext("Votre code à usage unique eSanté : %(code)s. Il est valable %(minutes)d minutes. Ne le communiquez à personne.",
                       code=code, minutes=minutes)
        try:
            messaging.send(challenge.channel, challenge.destination, gettext("Votre code à usage unique eSanté"), body)
        except messaging.MessageNotSent:
            _give_back_a_send(challenge)
            audit.record(audit.Event.ONE_TIME_CODE_SEND_FAILED, account_id=challenge.account_id, channel=challenge.channel)
            raise
        challenge.code_hash = _digest(challenge.id, code)
        audit.record(audit.Event.ONE_TIME_CODE_SENT, account_id=challenge.account_id, channel=challenge.channel, purpose=challenge.purpose)
    challenge.expires_at = now + timedelta(seconds=config["ONE_TIME_CODE_TTL"])
    challenge.last_sent_at = now
    challenge.sends += 1
    challenge.failed_attempts = 0


def _refusal(challenge: OneTimeCode, now: datetime) -> OneTimeCodeError:
    """Why an entry could not claim a try, read after the claim failed."""
    db.session.refresh(challenge)
    if challenge.consumed_at:
        return OneTimeCodeUsed()
    if challenge.code_hash is None:
        return OneTimeCodeExpired()
    if challenge.failed_attempts >= current_app.config["ONE_TIME_CODE_MAX_ATTEMPTS"]:
        return OneTimeCodeExhausted()
    return OneTimeCodeExpired()


def _give_back_a_try(challenge: OneTimeCode) -> None:
    db.session.execute(update(OneTimeCode).where(OneTimeCode.id == challenge.id, OneTimeCode.failed_attempts > 0)
                       .values(failed_attempts=OneTimeCode.failed_attempts - 1), execution_options={"synchronize_session": False})


def verify(challenge: OneTimeCode, code: str, *, before_consume: Callable[[], None] | None = None) -> None:
    """Consume the code or raise; the caller commits either way (failures must count).

    A try of the code and one of the account's daily budget are claimed before the code is
    compared; a right code gives both back. ``before_consume`` runs once the code is known to be
    right and may refuse (raise): the code then stays usable, with its try given back. It is how
    a step checks what may be told only to whoever holds the code.
    """
    try:
        throttle.check("RATE_LIMIT_ONE_TIME_CODE_PER_ACCOUNT", challenge.subject_key)
    except throttle.Throttled as throttled:
        raise OneTimeCodeThrottled(throttled.retry_after) from None
    config = current_app.config
    now = clock.now()
    claimed = db.session.execute(
        update(OneTimeCode)
        .where(OneTimeCode.id == challenge.id, OneTimeCode.consumed_at.is_(None), OneTimeCode.code_hash.is_not(None),
               OneTimeCode.expires_at > now, OneTimeCode.failed_attempts < config["ONE_TIME_CODE_MAX_ATTEMPTS"])
        .values(failed_attempts=OneTimeCode.failed_attempts + 1)
        .returning(OneTimeCode.failed_attempts, OneTimeCode.code_hash),
        execution_options={"synchronize_session": False},
    ).first()
    if claimed is None:
        raise _refusal(challenge, now)
    try:
        usage_budget.spend(_failures_key(challenge), config["ONE_TIME_CODE_DAILY_FAILURES"], DAY)
    except usage_budget.BudgetSpent:
        _give_back_a_try(challenge)
        raise OneTimeCodeBlocked() from None
    candidate = "".join(ch for ch in (code or "") if ch.isdigit())
    if not hmac.compare_digest(_digest(challenge.id, candidate), claimed.code_hash):
        left = config["ONE_TIME_CODE_MAX_ATTEMPTS"] - claimed.failed_attempts
        audit.record(audit.Event.ONE_TIME_CODE_FAILED, account_id=challenge.account_id, attempts_left=left)
        if left <= 0:
            audit.record(audit.Event.ONE_TIME_CODE_EXHAUSTED, account_id=challenge.account_id)
            raise OneTimeCodeExhausted()
        raise OneTimeCodeWrong(left)
    if before_consume is not None:
        try:
            before_consume()
        except Exception:
            usage_budget.refund(_failures_key(challenge))
            _give_back_a_try(challenge)
            raise
    consumed = db.session.execute(
        update(OneTimeCode).where(OneTimeCode.id == challenge.id, OneTimeCode.consumed_at.is_(None))
        .values(consumed_at=now, failed_attempts=OneTimeCode.failed_attempts - 1),
        execution_options={"synchronize_session": False},
    ).rowcount
    if not consumed:
        usage_budget.refund(_failures_key(challenge))
        raise OneTimeCodeUsed()
    _give_back_a_send(challenge, _failures_key(challenge))  # a right code: neither a wrong entry nor a flood


# A challenge is kept two days after it was created, for troubleshooting; the budgets it spent live
# in :mod:`idp.usage_budget`.
KEPT_FOR = timedelta(days=2)


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping: challenges past use and older than :data:`KEPT_FOR`."""
    deleted = db.session.execute(delete(OneTimeCode).where(OneTimeCode.created_at <= now - KEPT_FOR,
                                                           or_(OneTimeCode.expires_at.is_(None), OneTimeCode.expires_at <= now)),
                                 execution_options={"synchronize_session": False}).rowcount
    return {"one_time_code": deleted or 0}
