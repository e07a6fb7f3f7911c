"""Administrator and helpdesk accounts: password (argon2id) plus a TOTP second factor (pyotp).

Wrong logins lock the admin account with the patients' backoff (``PASSWORD_MAX_FAILURES``,
``PASSWORD_LOCKOUT_SECONDS``, :mod:`idp.lockout`), each attempt claimed before anything is
compared; a locked account answers like a wrong password, so the lock tells nobody which names
exist. A TOTP step is accepted once (RFC 6238 §5.2), by a conditional UPDATE: of simultaneous
logins with one code, one wins. The TOTP seed is sealed with the key-encryption keys
(:mod:`idp.key_encryption`), like the private signing keys: a database dump alone does not give
the second factor.
"""

import secrets
from datetime import datetime

import click
import pyotp
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import Boolean, DateTime, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from . import audit, clock, credential, key_encryption, lockout
from .cli_output import emit
from .extensions import db


class AdminAccount(db.Model):
    __tablename__ = "admin_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_seed_sealed: Mapped[str] = mapped_column(Text)
    totp_kek_id: Mapped[str] = mapped_column(String(16))
    last_totp_step: Mapped[int] = mapped_column(Integer, default=0)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class AdminLoginFailed(Exception):
    """Wrong name, password or code, a code already used, or a locked account: one answer for all."""


def _associated(admin_id: int) -> str:
    """Binds a sealed seed to its row: moved to another admin, it does not open."""
    return f"admin_account:{admin_id}:totp"


def seal_totp_seed(admin: AdminAccount, seed: str) -> None:
    admin.totp_kek_id, admin.totp_seed_sealed = key_encryption.seal(seed.encode(), _associated(admin.id))


def totp_seed(admin: AdminAccount) -> str:
    """The base32 TOTP seed, opened with the key-encryption keys."""
    return key_encryption.open_sealed(admin.totp_kek_id, admin.totp_seed_sealed, _associated(admin.id)).decode()


def create(username: str, password: str) -> AdminAccount:
    """A new admin with a random TOTP seed (:func:`totp_seed` opens it, to show it once for enrolment)."""
    failures = credential.password_rule_failures(password, [username])
    if len(password) < 12:
        failures.append("admin_password_under_12_characters")
    if failures:
        raise credential.PasswordTooWeak(failures)
    admin = AdminAccount(
        username=username,
        password_hash=credential.hash_password(password),
        totp_seed_sealed="",
        totp_kek_id="",
        last_totp_step=0,
        failed_attempts=0,
        lockouts=0,
        disabled=False,
        created_at=clock.now(),
    )
    db.session.add(admin)
    db.session.flush()  # the id binds the sealed seed to this row
    seal_totp_seed(admin, pyotp.random_base32())
    audit.record(audit.Event.ADMIN_CREATED, actor="cli", username=username)
    return admin


def authenticate(username: str, password: str, totp_code: str) -> AdminAccount:
    """Check password and TOTP; raise :class:`AdminLoginFailed`. The caller commits either way."""
    admin = db.session.scalar(select(AdminAccount).where(AdminAccount.username == username))
    if admin is None or admin.disabled:
        credential.burn_equal_time(password)
        audit.record(audit.Event.ADMIN_LOGIN_FAILED, actor=username[:64])
        raise AdminLoginFailed()
    key = AdminAccount.id == admin.id
    config = current_app.config
    claim = lockout.claim(AdminAccount, key, max_failures=config["PASSWORD_MAX_FAILURES"], base_seconds=config["PASSWORD_LOCKOUT_SECONDS"])
    if not claim.allowed:
        credential.burn_equal_time(password)
        audit.record(audit.Event.ADMIN_LOGIN_LOCKED, actor=admin.username)
        raise AdminLoginFailed()
    totp = pyotp.TOTP(totp_seed(admin))
    step = clock.timestamp() // totp.interval
    ok_password = credential.hasher().verify(password, admin.password_hash)
    matching = [s for s in (step - 1, step, step + 1) if totp.at(s * totp.interval) == (totp_code or "").strip()]
    first_use = bool(ok_password and matching) and db.session.execute(
        update(AdminAccount).where(key, AdminAccount.last_totp_step < matching[0]).values(last_totp_step=matching[0]),
        execution_options={"synchronize_session": False},
    ).rowcount == 1
    if not first_use:
        audit.record(audit.Event.ADMIN_LOGIN_FAILED, actor=admin.username, locked=claim.just_locked)
        raise AdminLoginFailed()
    lockout.clear(AdminAccount, key)
    audit.record(audit.Event.ADMIN_LOGIN_SUCCEEDED, actor=admin.username)
    return admin


def get(admin_id: int) -> AdminAccount | None:
    return db.session.get(AdminAccount, admin_id)


def rewrap_totp_seeds(actor: str = "cli") -> int:
    """Re-seal every TOTP seed under the current key-encryption key (``idp keys rewrap``)."""
    current = key_encryption.current_kek_id()
    rows = list(db.session.scalars(select(AdminAccount).where(AdminAccount.totp_kek_id != current)))
    for admin in rows:
        seal_totp_seed(admin, totp_seed(admin))
        audit.record(audit.Event.ADMIN_TOTP_SEED_REWRAPPED, actor=actor, username=admin.username, kek_id=admin.totp_kek_id)
    return len(rows)


admins_cli = AppGroup("admins", help="Administrator accounts.")


@admins_cli.command("create")
@click.argument("username")
@click.option("--password", default=None, help="Initial password (prompted when omitted; ≥ 12 characters).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def create_command(username: str, password: str | None, as_json: bool) -> None:
    """Create an administrator and print the TOTP secret to enrol in an authenticator app."""
    password = password or click.prompt("Password", hide_input=True, confirmation_prompt=True) or secrets.token_urlsafe(12)
    try:
        admin = create(username, password)
        seed = totp_seed(admin)
        db.session.commit()
    except credential.PasswordTooWeak as error:
        db.session.rollback()
        raise click.ClickException("password too weak: " + ", ".join(error.rules))
    uri = pyotp.TOTP(seed).provisioning_uri(name=username, issuer_name="eSanté IdP admin")
    emit({"username": username, "totp_secret": seed, "totp_uri": uri}, as_json,
         lambda d: f"created {d['username']}\nTOTP secret: {d['totp_secret']}\n{d['totp_uri']}")
