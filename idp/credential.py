"""Patient passwords: argon2id hashes (libpass), rehash on login, throttling per account.

Wrong passwords are counted per account in the database, so every instance sees the same
count. After ``PASSWORD_MAX_FAILURES`` failures in a row the account is locked for
``PASSWORD_LOCKOUT_SECONDS``, doubling with each further lockout (backoff rather than a hard
lock that an attacker could use to keep a patient out, ASVS 6.1.1). Each attempt is claimed
in the database before the hash is compared (:mod:`idp.lockout`), so a burst of simultaneous
attempts gets no more comparisons than the limit, on SQLite as on PostgreSQL.
"""

import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import NoReturn

from flask import current_app
from passlib.hash import argon2
from sqlalchemy import DateTime, ForeignKey, Integer, String, delete, update
from sqlalchemy.orm import Mapped, mapped_column

from . import clock, common_passwords, lockout
from .account import Account
from .extensions import db


class PasswordCredential(db.Model):
    __tablename__ = "password_credential"

    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    changed_at: Mapped[datetime] = mapped_column(DateTime)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)


class UnknownLoginThrottle(db.Model):
    """Wrong secrets counted by matricule rather than by account, locked exactly like an account's
    password: wrong passwords against matricules without a usable account (so that a lockout never
    tells which matricules have one, ASVS 5.0 §6.3.8), and wrong activation codes against any
    matricule (:mod:`idp.activation_letter`). The key is an HMAC of a purpose and the matricule:
    the table does not list the matricules people tried."""

    __tablename__ = "unknown_login_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)


class WrongPassword(Exception):
    """Wrong password, or no password set: callers show one message for both."""


class AccountLocked(Exception):
    def __init__(self, until: datetime, just_locked: bool = False):
        super().__init__(f"locked until {until.isoformat()}")
        self.just_locked = just_locked  # this very failure locked it: the moment to tell the patient
        self.until = until


class PasswordTooWeak(ValueError):
    def __init__(self, rules: list[str]):
        super().__init__(", ".join(rules))
        self.rules = rules


@lru_cache(maxsize=4)
def _hasher(memory_cost: int, time_cost: int, parallelism: int) -> type[argon2]:
    return argon2.using(type="ID", memory_cost=memory_cost, time_cost=time_cost, parallelism=parallelism)


def hasher() -> type[argon2]:
    """argon2id with the configured parameters; ``needs_update`` compares a hash against them."""
    config = current_app.config
    return _hasher(config["ARGON2_MEMORY_COST"], config["ARGON2_TIME_COST"], config["ARGON2_PARALLELISM"])


def hash_password(password: str) -> str:
    return hasher().hash(password)


@lru_cache(maxsize=4)
def _dummy_hash(memory_cost: int, time_cost: int, parallelism: int) -> str:
    return _hasher(memory_cost, time_cost, parallelism).hash("not-a-password")


def burn_equal_time(password: str) -> None:
    """Spend one verification on a fixed hash so unknown matricules answer as slowly as known ones."""
    config = current_app.config
    key = (config["ARGON2_MEMORY_COST"], config["ARGON2_TIME_COST"], config["ARGON2_PARALLELISM"])
    reference = _dummy_hash(*key)  # hash first: libpass loads its argon2 backend on the first hash
    hasher().verify(password, reference)


def password_rule_failures(password: str, forbidden: Sequence[str | None] = ()) -> list[str]:
    """The guide's rule (≥ 8 characters, ≥ 1 letter, ≥ 1 digit) plus a length cap and personal data."""
    failures = []
    if len(password) < 8:
        failures.append("too_short")
    if len(password) > 128:
        failures.append("too_long")
    if not re.search(r"[^\W\d_]", password):
        failures.append("no_letter")
    if not re.search(r"\d", password):
        failures.append("no_digit")
    lowered = password.lower()
    if any(item and len(item) >= 3 and item.lower() in lowered for item in forbidden):
        failures.append("contains_personal_data")
    return failures


def new_password_failures(account: Account, password: str, confirmation: str) -> list[str]:
    """Every rule a new password breaks, the bundled common-password list included (NIST 800-63B §5.1.1.2)."""
    return _failures(password, confirmation, _personal_data(account))


def general_password_failures(password: str, confirmation: str) -> list[str]:
    """The rules that need no account: what a page may tell before it knows who is asking."""
    return _failures(password, confirmation, ())


def _failures(password: str, confirmation: str, forbidden: Sequence[str | None]) -> list[str]:
    failures = password_rule_failures(password, forbidden)
    if common_passwords.is_common(password):
        failures.append("common_password")
    if password != confirmation:
        failures.append("confirmation_differs")
    return failures


def _personal_data(account: Account) -> list[str | None]:
    return [account.matricule, account.family_name, account.given_name]


def personal_data_failures(account: Account, password: str) -> list[str]:
    """The rule that needs the account (its matricule and names): told only to whoever proved to hold it."""
    return [rule for rule in password_rule_failures(password, _personal_data(account)) if rule == "contains_personal_data"]


def set_password(account: Account, password: str) -> None:
    failures = password_rule_failures(password, [account.matricule, account.family_name, account.given_name])
    if failures:
        raise PasswordTooWeak(failures)
    set_password_hash(account, hash_password(password))


def set_password_hash(account: Account, password_hash: str) -> None:
    """Store a hash made earlier (the activation wizard hashes at step 2, stores at the end); clears any lock."""
    credential = db.session.get(PasswordCredential, account.id)
    if credential is None:
        credential = PasswordCredential(account_id=account.id, failed_attempts=0, lockouts=0)
        db.session.add(credential)
    credential.password_hash = password_hash
    credential.changed_at = clock.now()
    credential.failed_attempts = 0
    credential.lockouts = 0
    credential.locked_until = None


def has_password(account: Account) -> bool:
    """False for an account activated through MyGuichet.lu that never chose a password."""
    return db.session.get(PasswordCredential, account.id) is not None


def matricule_key(purpose: str, matricule: str) -> str:
    """The key of a matricule's row in :class:`UnknownLoginThrottle`: an HMAC, never the matricule."""
    return hmac.new(current_app.config["SECRET_KEY"].encode(), f"{purpose}|{matricule}".encode(), hashlib.sha256).hexdigest()


def _lockout_settings() -> dict:
    config = current_app.config
    return {"max_failures": config["PASSWORD_MAX_FAILURES"], "base_seconds": config["PASSWORD_LOCKOUT_SECONDS"]}


def _refuse(claim: lockout.Claim) -> NoReturn:
    """A wrong password on a claimed attempt: the lockout if this attempt started it."""
    if claim.just_locked:
        raise AccountLocked(claim.locked_until, just_locked=True)
    raise WrongPassword()


def refuse_without_account(matricule: str, password: str) -> NoReturn:
    """A login for a matricule with no usable account: the same answers, timing and lockouts as a
    wrong password for a real one. The caller commits."""
    claim = lockout.claim_keyed(UnknownLoginThrottle, matricule_key("unknown-login", matricule), **_lockout_settings())
    if not claim.allowed:
        raise AccountLocked(claim.locked_until)
    burn_equal_time(password)
    _refuse(claim)


def verify_password(account: Account, password: str) -> None:
    """Check the password; count failures; raise :class:`WrongPassword` or :class:`AccountLocked`.

    The attempt is claimed before the hash is compared. The caller commits: the failure count
    must be written even when the login fails.
    """
    key = PasswordCredential.account_id == account.id
    claim = lockout.claim(PasswordCredential, key, **_lockout_settings(), returning=(PasswordCredential.password_hash,))
    if claim is None:
        burn_equal_time(password)
        raise WrongPassword()
    if not claim.allowed:
        raise AccountLocked(claim.locked_until)
    (stored,) = claim.returned
    current = hasher()
    if not current.verify(password, stored):
        _refuse(claim)
    lockout.clear(PasswordCredential, key)
    if current.needs_update(stored):
        db.session.execute(update(PasswordCredential).where(key).values(password_hash=current.hash(password)),
                           execution_options={"synchronize_session": False})


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping: counters kept by matricule (wrong passwords without an account, wrong activation
    codes), rows whose lockout ended more than ``HOUSEKEEPING_UNKNOWN_LOGIN_RETENTION`` ago. A real
    account keeps its backoff until a right password, so the window is long: the backoff of a
    made-up matricule starting over must not tell it from a dormant real one. Rows never locked
    carry no time and stay."""
    cutoff = now - timedelta(seconds=current_app.config["HOUSEKEEPING_UNKNOWN_LOGIN_RETENTION"])
    deleted = db.session.execute(delete(UnknownLoginThrottle).where(UnknownLoginThrottle.locked_until <= cutoff),
                                 execution_options={"synchronize_session": False}).rowcount
    return {"unknown_login_throttle": deleted or 0}
