"""Identities at upstream providers (MyGuichet, LuxTrust) linked to eSanté accounts.

An identity is namespaced by ``(upstream, subject)``: the same subject string at two upstreams
names two different people. Each identity belongs to one account; an account has at most one
identity per upstream. Linking and unlinking are audited. Logins through an upstream are kept
with their SSO session (``FederatedLogin``) so that single logout can name the upstream session.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from . import audit, clock
from .extensions import db


class FederatedIdentity(db.Model):
    __tablename__ = "federated_identity"
    __table_args__ = (
        UniqueConstraint("upstream", "subject", name="uq_federated_identity_upstream_subject"),
        UniqueConstraint("account_id", "upstream", name="uq_federated_identity_account_upstream"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upstream: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(256))
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    linked_at: Mapped[datetime] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_acr: Mapped[str | None] = mapped_column(String(128))


class FederatedLogin(db.Model):
    """The upstream session behind one of our SSO sessions (SAML NameID and SessionIndex)."""

    __tablename__ = "federated_login"

    sso_session_id: Mapped[str] = mapped_column(ForeignKey("sso_session.id"), primary_key=True)
    upstream: Mapped[str] = mapped_column(String(32))
    name_id: Mapped[str] = mapped_column(String(256))
    name_id_format: Mapped[str | None] = mapped_column(String(256))
    session_index: Mapped[str | None] = mapped_column(String(256))


class IdentityLinkedElsewhere(Exception):
    """This upstream identity already belongs to another account."""


def find(upstream: str, subject: str) -> FederatedIdentity | None:
    return db.session.scalar(select(FederatedIdentity).where(FederatedIdentity.upstream == upstream, FederatedIdentity.subject == subject))


def of_account(account_id: int, upstream: str | None = None) -> list[FederatedIdentity]:
    query = select(FederatedIdentity).where(FederatedIdentity.account_id == account_id).order_by(FederatedIdentity.upstream)
    if upstream:
        query = query.where(FederatedIdentity.upstream == upstream)
    return list(db.session.scalars(query))


def link(account_id: int, upstream: str, subject: str, acr: str | None = None) -> FederatedIdentity:
    """Link, or keep the existing link; an account's earlier identity at this upstream is replaced.

    Raises :class:`IdentityLinkedElsewhere` when another account holds this identity: moving it
    silently would hand that account's upstream login to someone else.
    """
    existing = find(upstream, subject)
    if existing is not None:
        if existing.account_id != account_id:
            raise IdentityLinkedElsewhere()
        return existing
    for previous in of_account(account_id, upstream):
        unlink(previous, reason="replaced")
    db.session.flush()  # the unit of work would insert before deleting, against the (account, upstream) constraint
    identity = FederatedIdentity(upstream=upstream, subject=subject, account_id=account_id, linked_at=clock.now(), last_acr=acr)
    db.session.add(identity)
    audit.record(audit.Event.FEDERATED_IDENTITY_LINKED, account_id=account_id, upstream=upstream)
    return identity


def unlink(identity: FederatedIdentity, reason: str = "patient") -> None:
    db.session.delete(identity)
    audit.record(audit.Event.FEDERATED_IDENTITY_UNLINKED, account_id=identity.account_id, upstream=identity.upstream, reason=reason)


def unlink_upstream(account_id: int, upstream: str, reason: str = "patient") -> bool:
    identities = of_account(account_id, upstream)
    for identity in identities:
        unlink(identity, reason)
    return bool(identities)


def mark_used(identity: FederatedIdentity, acr: str) -> None:
    identity.last_used_at = clock.now()
    identity.last_acr = acr


def remember_login(sso_session_id: str, upstream: str, name_id: str, name_id_format: str | None, session_index: str | None) -> None:
    db.session.add(FederatedLogin(sso_session_id=sso_session_id, upstream=upstream, name_id=name_id,
                                  name_id_format=name_id_format, session_index=session_index))


def login_of(sso_session_id: str) -> FederatedLogin | None:
    return db.session.get(FederatedLogin, sso_session_id)


def forget_logins(upstream: str, name_id: str) -> list[str]:
    """Drop the records of an upstream session (its IdP logged it out); returns their SSO session ids."""
    rows = list(db.session.scalars(select(FederatedLogin).where(FederatedLogin.upstream == upstream, FederatedLogin.name_id == name_id)))
    if rows:
        db.session.execute(delete(FederatedLogin).where(FederatedLogin.sso_session_id.in_([row.sso_session_id for row in rows])))
    return [row.sso_session_id for row in rows]


class PendingArrival(db.Model):
    """An upstream's checked answer, waiting for the browser to come back with its cookies.

    The SAML POST arrives cross-site, without the browser's SameSite cookies; the answer is kept
    here under a random token (stored hashed), for a few minutes, then taken once by the browser.
    """

    __tablename__ = "federated_arrival"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    upstream: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


ARRIVAL_TTL = timedelta(minutes=15)


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def keep_arrival(upstream: str, details: dict) -> str:
    """Store an answer; returns the token the browser needs to take it."""
    purge_expired(clock.now())
    token = secrets.token_urlsafe(32)
    now = clock.now()
    db.session.add(PendingArrival(id=_token_key(token), upstream=upstream, details=details, created_at=now, expires_at=now + ARRIVAL_TTL))
    return token


def peek_arrival(token: str | None) -> PendingArrival | None:
    arrival = db.session.get(PendingArrival, _token_key(token)) if token else None
    return arrival if arrival is not None and arrival.expires_at > clock.now() else None


def take_arrival(token: str | None) -> PendingArrival | None:
    """Remove and return the answer; of two concurrent takers only one gets it."""
    arrival = peek_arrival(token)
    if arrival is None:
        return None
    taken = db.session.execute(delete(PendingArrival).where(PendingArrival.id == arrival.id)).rowcount
    return arrival if taken == 1 else None


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping: pending arrivals live 15 minutes (their upstream logins go with their SSO
    session, :func:`forget_logins_of_sessions`)."""
    deleted = db.session.execute(delete(PendingArrival).where(PendingArrival.expires_at <= now), execution_options={"synchronize_session": False}).rowcount
    return {"federated_arrival": deleted or 0}


def forget_logins_of_sessions(sso_session_ids) -> int:
    """The upstream logins (MyGuichet, LuxTrust) of SSO sessions that are going away."""
    return db.session.execute(delete(FederatedLogin).where(FederatedLogin.sso_session_id.in_(sso_session_ids)),
                              execution_options={"synchronize_session": False}).rowcount or 0
