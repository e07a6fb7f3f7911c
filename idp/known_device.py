"""Browsers a patient has logged in from, so a login from a new one is told to the patient.

Each browser carries a random, long-lived device cookie; only its hash is stored per account.
A login from a browser the account has not seen (while it has seen others) sends a notice on
every registered channel: someone holding the password and one code may not be the patient
(ASVS 5.0 §6.3.5). The first device of an account is not announced: that
is the patient activating or logging in for the first time.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app, g, request
from flask_babel import format_datetime, gettext as _
from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint, bindparam, delete, exists, select, update
from sqlalchemy.orm import Mapped, aliased, mapped_column

from . import account as accounts, audit, clock, messaging
from .extensions import db

COOKIE_NAME = "esante_device"
COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie (RFC 6265bis)


class KnownDevice(db.Model):
    __tablename__ = "known_device"
    __table_args__ = (UniqueConstraint("account_id", "device_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    device_hash: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)
    user_agent: Mapped[str | None] = mapped_column(String(300))


# Built once (a statement built anew costs about as much CPU as running it). One round trip
# answers both questions: is this browser known, and is any?
_THIS_ONE_AND_ANY = select(
    select(KnownDevice.id)
    .where(KnownDevice.account_id == bindparam("account_id"), KnownDevice.device_hash == bindparam("device_hash"))
    .scalar_subquery(),
    exists().where(KnownDevice.account_id == bindparam("account_id")),
)
_SEEN_AGAIN = update(KnownDevice).where(KnownDevice.id == bindparam("device_id")).values(last_seen_at=bindparam("seen_at"))


def _device_id() -> str:
    raw = request.cookies.get(COOKIE_NAME, "")
    if len(raw) != 43 or not raw.replace("-", "").replace("_", "").isalnum():
        raw = secrets.token_urlsafe(32)
        g.device_cookie = raw
    return raw


def recognise(account: accounts.Account) -> bool:
    """Note this browser for ``account`` after a full login; True when it is a new one."""
    device_hash = hashlib.sha256(_device_id().encode()).hexdigest()
    now = clock.now()
    # No autoflush: the login's other rows (session, audit) are written together at its commit,
    # and nothing pending here changes the answer.
    with db.session.no_autoflush:
        known_id, had_others = db.session.execute(_THIS_ONE_AND_ANY, {"account_id": account.id, "device_hash": device_hash}).one()
        if known_id is not None:
            db.session.execute(_SEEN_AGAIN, {"device_id": known_id, "seen_at": now}, execution_options={"synchronize_session": False})
            return False
    user_agent = (request.user_agent.string or "")[:300]
    db.session.add(KnownDevice(account_id=account.id, device_hash=device_hash, first_seen_at=now, last_seen_at=now, user_agent=user_agent))
    if had_others:
        audit.record(audit.Event.NEW_DEVICE_LOGIN, account_id=account.id)
        notice = _(
            "Nouvelle connexion à votre compte eSanté le %(when)s depuis un appareil que nous ne connaissions pas (%(browser)s). "
            "Si ce n'était pas vous, changez votre mot de passe et contactez le helpdesk.",
            when=format_datetime(now, "short"), browser=_browser(user_agent),
        )
        for channel in account.channels():
            messaging.notify(channel, account.destination(channel), notice)
    return had_others


def _browser(user_agent: str) -> str:
    for name in ("Edg", "Firefox", "Chrome", "Safari"):
        if name + "/" in user_agent:
            return {"Edg": "Edge"}.get(name, name)
    return _("navigateur inconnu")


def write_cookie(response):
    """``after_request`` hook: give a browser without a device cookie its own."""
    if raw := g.pop("device_cookie", None):
        response.set_cookie(COOKIE_NAME, raw, max_age=COOKIE_MAX_AGE, secure=current_app.config["SESSION_COOKIE_SECURE"],
                            httponly=True, samesite="Lax", path="/")
    return response


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping: browsers not seen for longer than their device cookie can live cannot come
    back with it. An account's most recent device stays, so that the next login from a new
    browser is still announced (the first device of an account is not)."""
    newer = aliased(KnownDevice)
    deleted = db.session.execute(delete(KnownDevice).where(
        KnownDevice.last_seen_at <= now - timedelta(seconds=COOKIE_MAX_AGE),
        exists().where(newer.account_id == KnownDevice.account_id, newer.last_seen_at > KnownDevice.last_seen_at),
    ), execution_options={"synchronize_session": False}).rowcount
    return {"known_device": deleted or 0}
