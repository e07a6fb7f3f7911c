"""Server-side single sign-on sessions.

The browser holds only a random 256-bit id (Secure when the issuer is https, HttpOnly,
SameSite=Lax); the database holds its SHA-256 with the account, ``auth_time``, ``amr`` and
``acr``. Sessions end on logout, after ``SSO_IDLE_TIMEOUT`` without use, and after
``SSO_ABSOLUTE_TIMEOUT`` in any case. Each authentication gets a new id (no fixation). The
cookie is a session cookie, gone when the browser closes (a shared computer), unless the
patient asked the login page to remember the device: then it lasts ``SSO_ABSOLUTE_TIMEOUT``.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app, g, request
from sqlalchemy import JSON, DateTime, ForeignKey, String, bindparam, delete, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from . import account as accounts, audit, backchannel_logout, clock, federated_identity, known_device, token as tokens
from .extensions import db

_TOUCH_EVERY = timedelta(seconds=60)


class SsoSession(db.Model):
    __tablename__ = "sso_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie value
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)
    auth_time: Mapped[datetime] = mapped_column(DateTime)
    amr: Mapped[list] = mapped_column(JSON, default=list)
    acr: Mapped[str] = mapped_column(String(128))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    user_agent: Mapped[str | None] = mapped_column(String(300))
    ip_address: Mapped[str | None] = mapped_column(String(64))

    def is_live(self, now: datetime) -> bool:
        config = current_app.config
        return (
            self.ended_at is None
            and self.last_seen_at + timedelta(seconds=config["SSO_IDLE_TIMEOUT"]) > now
            and self.created_at + timedelta(seconds=config["SSO_ABSOLUTE_TIMEOUT"]) > now
        )


# Built once: read on every request that carries the cookie, and a statement built anew costs
# about as much CPU as running it. The account comes in the same round trip: nearly every
# caller reads it next, and ``account.get`` then finds it in the session.
_WITH_ACCOUNT = (
    select(SsoSession, accounts.Account)
    .join(accounts.Account, accounts.Account.id == SsoSession.account_id)
    .where(SsoSession.id == bindparam("session_id"))
)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def start(account_id: int, amr: list[str], acr: str, remember: bool = False) -> SsoSession:
    """Begin a session after a full authentication; any session of this browser ends first.

    ``remember``: the patient ticked "Se souvenir de cet appareil"; otherwise the cookie has no
    ``Max-Age`` and ends with the browser."""
    if previous := current():
        end(previous, reason="replaced")
    raw = secrets.token_urlsafe(32)
    now = clock.now()
    session = SsoSession(
        id=_digest(raw),
        account_id=account_id,
        created_at=now,
        last_seen_at=now,
        auth_time=now,
        amr=amr,
        acr=acr,
        user_agent=(request.user_agent.string or "")[:300],
        ip_address=request.remote_addr,
    )
    db.session.add(session)
    g.sso_cookie, g.sso_cookie_persistent = raw, remember
    g.sso_session = session
    audit.record(audit.Event.LOGIN_SUCCEEDED, account_id=account_id, amr=amr, acr=acr)
    known_device.recognise(accounts.get(account_id))
    return session


def current() -> SsoSession | None:
    """The live session of this browser, or None. Cached per request."""
    if "sso_session" in g:
        return g.sso_session
    raw = request.cookies.get(current_app.config["SSO_COOKIE_NAME"])
    found = None
    if raw:
        # ``g`` keeps the account referenced: the session holds unchanged rows only weakly.
        row = db.session.execute(_WITH_ACCOUNT, {"session_id": _digest(raw)}).first()
        if row is not None:
            found, g.sso_account = row
    now = clock.now()
    if found and not found.is_live(now):
        found = None
        g.sso_cookie = ""  # tell the browser to drop it
    elif found and now - found.last_seen_at > _TOUCH_EVERY:
        found.last_seen_at = now
        db.session.commit()
    g.sso_session = found
    return found


def get(session_id: str | None) -> SsoSession | None:
    return db.session.get(SsoSession, session_id) if session_id else None


def end(session: SsoSession, reason: str = "logout") -> None:
    session.ended_at = clock.now()
    audit.record(audit.Event.SESSION_ENDED, account_id=session.account_id, reason=reason)
    backchannel_logout.enqueue([session.id])
    if g.get("sso_session") is session:
        g.sso_session = None
        g.sso_cookie = ""


def end_all(account_id: int, except_id: str | None = None) -> int:
    """"Log out elsewhere": end every other live session of the account."""
    condition = (SsoSession.account_id == account_id) & SsoSession.ended_at.is_(None)
    if except_id:
        condition &= SsoSession.id != except_id
    ended = list(db.session.scalars(select(SsoSession.id).where(condition)))
    db.session.execute(update(SsoSession).where(SsoSession.id.in_(ended)).values(ended_at=clock.now()))
    backchannel_logout.enqueue(ended)
    return len(ended)


def live_sessions(account_id: int) -> list[SsoSession]:
    now = clock.now()
    rows = db.session.scalars(select(SsoSession).where(SsoSession.account_id == account_id, SsoSession.ended_at.is_(None)))
    return [row for row in rows if row.is_live(now)]


def write_cookie(response):
    """``after_request`` hook: set or clear the session cookie when this request changed it."""
    if "sso_cookie" not in g:
        return response
    config = current_app.config
    name = config["SSO_COOKIE_NAME"]
    if g.sso_cookie:
        response.set_cookie(
            name,
            g.sso_cookie,
            max_age=config["SSO_ABSOLUTE_TIMEOUT"] if g.get("sso_cookie_persistent") else None,
            secure=config["SESSION_COOKIE_SECURE"],
            httponly=True,
            samesite="Lax",
            path="/",
        )
    else:
        response.delete_cookie(name, path="/", secure=config["SESSION_COOKIE_SECURE"], httponly=True, samesite="Lax")
    return response


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping: sessions ended (or timed out) longer than ``HOUSEKEEPING_SSO_SESSION_RETENTION``
    ago, once no token row names them any more (a password reset still ends a timed-out session
    and tells the clients that got tokens in it); their upstream logins go with them."""
    config = current_app.config
    cutoff = now - timedelta(seconds=config["HOUSEKEEPING_SSO_SESSION_RETENTION"])
    done = (
        or_(
            SsoSession.ended_at <= cutoff,
            SsoSession.last_seen_at <= cutoff - timedelta(seconds=config["SSO_IDLE_TIMEOUT"]),
            SsoSession.created_at <= cutoff - timedelta(seconds=config["SSO_ABSOLUTE_TIMEOUT"]),
        ),
        SsoSession.id.not_in(tokens.sessions_with_tokens()),
    )
    logins = federated_identity.forget_logins_of_sessions(select(SsoSession.id).where(*done))
    deleted = db.session.execute(delete(SsoSession).where(*done), execution_options={"synchronize_session": False}).rowcount
    return {"federated_login": logins, "sso_session": deleted or 0}
