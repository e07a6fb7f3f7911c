"""Administrator and helpdesk accounts: password (argon2id) plus a TOTP second factor (pyotp)."""

import secrets
from datetime import datetime

import click
import pyotp
from flask.cli import AppGroup
from sqlalchemy import Boolean, DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from . import audit, clock, credential
from .cli_output import emit
from .extensions import db


class AdminAccount(db.Model):
    __tablename__ = "admin_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret: Mapped[str] = mapped_column(String(64))
    last_totp_step: Mapped[int] = mapped_column(Integer, default=0)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class AdminLoginFailed(Exception):
    pass


def create(username: str, password: str) -> AdminAccount:
    failures = credential.password_rule_failures(password, [username])
    if len(password) < 12:
        failures.append("admin_password_under_12_characters")
    if failures:
        raise credential.PasswordTooWeak(failures)
    admin = AdminAccount(
        username=username,
        password_hash=credential.hash_password(password),
        totp_secret=pyotp.random_base32(),
        last_totp_step=0,
        disabled=False,
        created_at=clock.now(),
    )
    db.session.add(admin)
    audit.record(audit.Event.ADMIN_CREATED, actor="cli", username=username)
    return admin


def authenticate(username: str, password: str, totp_code: str) -> AdminAccount:
    """Check password and TOTP; a TOTP step is accepted once (no replay within its window)."""
    admin = db.session.scalar(select(AdminAccount).where(AdminAccount.username == username))
    if admin is None or admin.disabled:
        credential.burn_equal_time(password)
        audit.record(audit.Event.ADMIN_LOGIN_FAILED, actor=username[:64])
        raise AdminLoginFailed()
    totp = pyotp.TOTP(admin.totp_secret)
    now = clock.now()
    step = int(now.timestamp()) // totp.interval
    ok_password = credential.hasher().verify(password, admin.password_hash)
    matching = [s for s in (step - 1, step, step + 1) if totp.at(s * totp.interval) == (totp_code or "").strip()]
    if not ok_password or not matching or matching[0] <= admin.last_totp_step:
        audit.record(audit.Event.ADMIN_LOGIN_FAILED, actor=admin.username)
        raise AdminLoginFailed()
    admin.last_totp_step = matching[0]
    audit.record(audit.Event.ADMIN_LOGIN_SUCCEEDED, actor=admin.username)
    return admin


def get(admin_id: int) -> AdminAccount | None:
    return db.session.get(AdminAccount, admin_id)


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
        db.session.commit()
    except credential.PasswordTooWeak as error:
        db.session.rollback()
        raise click.ClickException("password too weak: " + ", ".join(error.rules))
    uri = pyotp.TOTP(admin.totp_secret).provisioning_uri(name=username, issuer_name="eSanté IdP admin")
    emit({"username": username, "totp_secret": admin.totp_secret, "totp_uri": uri}, as_json,
         lambda d: f"created {d['username']}\nTOTP secret: {d['totp_secret']}\n{d['totp_uri']}")
