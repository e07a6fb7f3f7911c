"""Server-side admin sessions: the browser holds a random id, the database everything else.

The cookie (``esante_admin``, path ``/admin``, HttpOnly, SameSite=Strict, Secure on an https
issuer, without ``Max-Age``: it ends with the browser) holds 256 random bits; the database keeps
their SHA-256 with the admin and the session's times. A session ends at logout (a copied cookie
stops working at once), after ``ADMIN_SESSION_IDLE_TIMEOUT`` unused, after
``ADMIN_SESSION_ABSOLUTE_TIMEOUT`` in any case, and as soon as its admin is disabled. Unlike a
signed cookie, holding ``SECRET_KEY`` does not mint one (ASVS 5.0 §7.2.1, §7.3, §7.4.1).
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app, g, request
from sqlalchemy import DateTime, ForeignKey, String, delete, or_, update
from sqlalchemy.orm import Mapped, mapped_column

from . import admin_account, audit, clock
from .extensions import db

COOKIE_NAME = "esante_admin"
COOKIE_PATH = "/admin"
_TOUCH_EVERY = timedelta(seconds=60)


class AdminSession(db.Model):
    __tablename__ = "admin_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie value
    admin_id: Mapped[int] = mapped_column(ForeignKey("admin_account.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    def is_live(self, now: datetime) -> bool:
        config = current_app.config
        return (
            self.ended_at is None
            and self.last_seen_at + timedelta(seconds=config["ADMIN_SESSION_IDLE_TIMEOUT"]) > now
            and self.created_at + timedelta(seconds=config["ADMIN_SESSION_ABSOLUTE_TIMEOUT"]) > now
        )


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def start(admin: admin_account.AdminAccount) -> AdminSession:
    """A new session after a full login; this browser's previous one, if any, ends (no fixation)."""
    if previous := current():
        end(previous, reason="replaced")
    raw = secrets.token_urlsafe(32)
    now = clock.now()
    session = AdminSession(id=_digest(raw), admin_id=admin.id, created_at=now, last_seen_at=now, ip_address=request.remote_addr,
                           user_agent=(request.user_agent.string or "")[:300])
    db.session.add(session)
    g.admin_cookie, g.admin_session = raw, session
    return session


def current() -> AdminSession | None:
    """This browser's live session whose admin is still enabled, or None; cached per request.

    A cookie naming an ended, timed-out or unknown session is cleared (``g.admin_session_expired``
    tells the page to say so)."""
    if "admin_session" in g:
        return g.admin_session
    raw = request.cookies.get(COOKIE_NAME)
    found = db.session.get(AdminSession, _digest(raw)) if raw else None
    now = clock.now()
    if found is not None and (not found.is_live(now) or _disabled(found.admin_id)):
        found = None
    if raw and found is None:
        g.admin_cookie, g.admin_session_expired = "", True
    elif found is not None and now - found.last_seen_at > _TOUCH_EVERY:
        found.last_seen_at = now
        db.session.commit()
    g.admin_session = found
    return found


def _disabled(admin_id: int) -> bool:
    admin = admin_account.get(admin_id)
    return admin is None or admin.disabled


def end(session: AdminSession, reason: str = "logout") -> None:
    """Revoke the session: its cookie no longer opens anything, wherever it was copied."""
    db.session.execute(update(AdminSession).where(AdminSession.id == session.id, AdminSession.ended_at.is_(None))
                       .values(ended_at=clock.now()), execution_options={"synchronize_session": False})
    admin = admin_account.get(session.admin_id)
    audit.record(audit.Event.ADMIN_SESSION_ENDED, actor=f"admin:{admin.username}" if admin else None, reason=reason)
    if g.get("admin_session") is session:
        g.admin_session, g.admin_cookie = None, ""


def write_cookie(response):
    """``after_request`` hook of the admin pages: set or clear the cookie when this request changed it."""
    if "admin_cookie" not in g:
        return response
    secure = current_app.config["SESSION_COOKIE_SECURE"]
    if g.admin_cookie:
        response.set_cookie(COOKIE_NAME, g.admin_cookie, secure=secure, httponly=True, samesite="Strict", path=COOKIE_PATH)
    else:
        response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH, secure=secure, httponly=True, samesite="Strict")
    return response


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping: sessions ended or timed out longer than ``HOUSEKEEPING_SSO_SESSION_RETENTION`` ago."""
    config = current_app.config
    cutoff = now - timedelta(seconds=config["HOUSEKEEPING_SSO_SESSION_RETENTION"])
    deleted = db.session.execute(delete(AdminSession).where(or_(
        AdminSession.ended_at <= cutoff,
        AdminSession.last_seen_at <= cutoff - timedelta(seconds=config["ADMIN_SESSION_IDLE_TIMEOUT"]),
        AdminSession.created_at <= cutoff - timedelta(seconds=config["ADMIN_SESSION_ABSOLUTE_TIMEOUT"]),
    )), execution_options={"synchronize_session": False}).rowcount
    return {"admin_session": deleted or 0}
