"""Pushed authorization requests (RFC 9126): parameters a client sent directly, redeemed by reference.

https://www.rfc-editor.org/rfc/rfc9126

The client gets a ``request_uri`` (``urn:ietf:params:oauth:request_uri:`` + 32 random bytes, only
its hash stored) valid for ``FEATURES["par"]["ttl"]`` seconds until the browser brings it to /authorize. That
first use binds it to the browser's flow cookie: the same browser may come back with it (after
the login page, the one-time code, the consent page) for ``FEATURES["par"]["flow_ttl"]`` seconds, nobody else
may (§4: one-time use, reloads allowed). Issuing the code spends it.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import JSON, DateTime, Integer, String, delete, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from . import clock
from .extensions import db

URN_PREFIX = "urn:ietf:params:oauth:request_uri:"


class PushedRequest(db.Model):
    __tablename__ = "pushed_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    first_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    binding: Mapped[str | None] = mapped_column(String(64))
    spent_at: Mapped[datetime | None] = mapped_column(DateTime)


class UnusableReference(ValueError):
    """The ``request_uri`` is unknown, expired, spent, for another client or another browser."""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def is_reference(value: str | None) -> bool:
    return bool(value) and value.startswith(URN_PREFIX)


def push(client_id: str, parameters: dict) -> tuple[str, int]:
    """Store a validated request; returns the ``request_uri`` and its lifetime in seconds."""
    ttl = current_app.config["FEATURES"]["par"]["ttl"]
    reference = URN_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    db.session.add(PushedRequest(reference_hash=_digest(reference), client_id=client_id, parameters=dict(parameters),
                                 created_at=now, expires_at=now + timedelta(seconds=ttl)))
    return reference, ttl


def redeem(reference: str, client_id: str | None, binding: str) -> dict:
    """The pushed parameters for ``reference`` used by ``client_id`` in the browser flow ``binding``."""
    found = db.session.scalar(select(PushedRequest).where(PushedRequest.reference_hash == _digest(reference)))
    now = clock.now()
    if found is None or found.spent_at is not None or found.client_id != client_id:
        raise UnusableReference("request_uri is unknown, already used, or was pushed by another client.")
    if found.first_used_at is None:
        if found.expires_at <= now:
            raise UnusableReference("request_uri has expired.")
        found.first_used_at, found.binding = now, _digest(binding)
    elif found.binding != _digest(binding) or found.first_used_at + timedelta(seconds=current_app.config["FEATURES"]["par"]["flow_ttl"]) <= now:
        raise UnusableReference("request_uri was already used.")
    return dict(found.parameters)


def spend(reference: str) -> None:
    found = db.session.scalar(select(PushedRequest).where(PushedRequest.reference_hash == _digest(reference)))
    if found is not None:
        found.spent_at = clock.now()


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping (RFC 9126): a request_uri is taken by a browser before ``expires_at``, which may
    come back with it for ``FEATURES["par"]["flow_ttl"]`` more; once spent (a code was issued) it
    is refused anyway."""
    flow = timedelta(seconds=current_app.config["FEATURES"]["par"]["flow_ttl"])
    deleted = db.session.execute(delete(PushedRequest).where(or_(PushedRequest.spent_at.is_not(None), PushedRequest.expires_at <= now - flow)),
                                 execution_options={"synchronize_session": False}).rowcount
    return {"pushed_request": deleted or 0}
