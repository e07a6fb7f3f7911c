"""OpenID Connect Back-Channel Logout 1.0: tell relying parties that an SSO session ended.

https://openid.net/specs/openid-connect-backchannel-1_0.html

When a session ends (logout, "log out elsewhere", password reset), every client that received
tokens in it and registered a ``backchannel_logout_uri`` gets a logout token. The deliveries are
written in the same transaction that ends the session, so none is lost; they are sent right after
the commit and retried with backoff while the relying party is down (``idp logout deliver``,
``--loop`` for a worker), until ``FEATURES["backchannel_logout"]["retry_for"]`` runs out.
"""

import secrets
import time
from datetime import datetime, timedelta

import click
import requests
from flask import current_app, g
from flask.cli import AppGroup
from joserfc import jwt
from sqlalchemy import DateTime, Integer, String, Text, delete, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from . import account as accounts, audit, client as clients, clock, outbound_address, signing_key, token as tokens
from .cli_output import emit
from .extensions import db
from .subject import session_id_for, subject_for

EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TTL = 120


class LogoutDelivery(db.Model):
    """One logout token on its way to one relying party."""

    __tablename__ = "logout_delivery"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    sso_session_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    abandoned_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


def _options() -> dict:
    """``FEATURES["backchannel_logout"]`` (``config/default.py``)."""
    return current_app.config["FEATURES"]["backchannel_logout"]


def logout_uri(client: clients.Client) -> str | None:
    return (client.extra_metadata or {}).get("backchannel_logout_uri")


def enqueue(session_ids: list[str]) -> None:
    """Queue a delivery per (ended session, client with a back-channel URI that got tokens in it)."""
    if not session_ids or not _options()["enabled"]:
        return
    pairs = tokens.patients_clients_of_sessions(session_ids)
    now = clock.now()
    queued = g.setdefault("logout_deliveries", [])
    for session_id, client_id, account_id in pairs:
        client = clients.get(client_id)
        if client is None or not logout_uri(client):
            continue
        delivery = LogoutDelivery(client_id=client_id, sso_session_id=session_id, account_id=account_id,
                                  created_at=now, next_attempt_at=now, attempts=0)
        db.session.add(delivery)
        queued.append(delivery)


def send_queued() -> None:
    """After the commit that ended the sessions: a first attempt at this request's deliveries."""
    for delivery in g.pop("logout_deliveries", []):
        _attempt(delivery)


def logout_token(client: clients.Client, account: accounts.Account, sso_session_id: str) -> str:
    """A logout token (§2.4): ``typ: logout+jwt``, the ``events`` claim, ``sid`` and ``sub``, never a nonce."""
    alg = (client.extra_metadata or {}).get("id_token_signed_response_alg", "RS256")
    kid, key = signing_key.active_key(alg)
    now = clock.timestamp()
    claims = {
        "iss": current_app.config["ISSUER"],
        "aud": client.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_TTL,
        "jti": secrets.token_urlsafe(16),
        "events": {EVENT: {}},
        "sub": subject_for(account, client),
        "sid": session_id_for(sso_session_id, client),
    }
    return jwt.encode({"typ": "logout+jwt", "alg": alg, "kid": kid}, claims, key)


def _send(delivery: LogoutDelivery) -> str | None:
    """POST the logout token (§2.5); None on success, else what went wrong."""
    client = clients.get(delivery.client_id)
    account = accounts.get(delivery.account_id)
    if client is None or account is None or not logout_uri(client):
        return "the client or account no longer exists, or the client dropped its back-channel URI"
    try:
        # Checked again now, on what the name resolves to today (DNS rebinding), and sent there.
        destination = outbound_address.check(logout_uri(client), client.redirect_uris)
    except outbound_address.AddressNotAllowed as error:
        return f"address not allowed: {error.description}"[:500]
    try:
        # §2.8: the RP answers itself; a redirect is not a delivery (post_form follows none).
        response = outbound_address.post_form(destination, {"logout_token": logout_token(client, account, delivery.sso_session_id)},
                                              timeout=_options()["timeout"])
    except requests.RequestException as error:
        return type(error).__name__
    return None if response.status_code in (200, 204) else f"HTTP {response.status_code}"


def deliver_due(limit: int = 100) -> dict[str, int]:
    """Send every delivery whose time has come; reschedule failures with exponential backoff."""
    now = clock.now()
    due = list(db.session.scalars(
        select(LogoutDelivery)
        .where(LogoutDelivery.delivered_at.is_(None), LogoutDelivery.abandoned_at.is_(None), LogoutDelivery.next_attempt_at <= now)
        .order_by(LogoutDelivery.next_attempt_at)
        .limit(limit)
    ))
    result = {"delivered": 0, "failed": 0, "abandoned": 0}
    for delivery in due:
        result[_attempt(delivery)] += 1
    return result


def _attempt(delivery: LogoutDelivery) -> str:
    """Send one delivery and record the outcome: "delivered", "failed" (retried later) or "abandoned"."""
    error = _send(delivery)
    delivery.attempts += 1
    if error is None:
        delivery.delivered_at = clock.now()
        audit.record(audit.Event.BACKCHANNEL_LOGOUT_DELIVERED, account_id=delivery.account_id, client_id=delivery.client_id)
        outcome = "delivered"
    elif clock.now() - delivery.created_at >= timedelta(seconds=_options()["retry_for"]):
        delivery.abandoned_at, delivery.last_error = clock.now(), error
        audit.record(audit.Event.BACKCHANNEL_LOGOUT_ABANDONED, account_id=delivery.account_id, client_id=delivery.client_id,
                     error=error, attempts=delivery.attempts)
        outcome = "abandoned"
    else:
        backoff = min(_options()["backoff"] * 2 ** (delivery.attempts - 1), 3600)
        delivery.next_attempt_at, delivery.last_error = clock.now() + timedelta(seconds=backoff), error
        outcome = "failed"
    db.session.commit()
    return outcome


logout_cli = AppGroup("logout", help="Back-channel logout deliveries to relying parties.")


@logout_cli.command("deliver")
@click.option("--loop", is_flag=True, help="Keep running, checking for due deliveries every --interval seconds.")
@click.option("--interval", default=15, show_default=True, type=click.IntRange(1, 3600))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document per round.")
def deliver_command(loop: bool, interval: int, as_json: bool) -> None:
    """Send due logout tokens and retry the ones relying parties did not accept."""
    while True:
        emit(deliver_due(), as_json, lambda r: f"delivered {r['delivered']}, failed {r['failed']}, abandoned {r['abandoned']}")
        if not loop:
            return
        time.sleep(interval)


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping: delivered or abandoned deliveries, after ``HOUSEKEEPING_LOGOUT_DELIVERY_RETENTION``
    (a window for troubleshooting a relying party); pending ones are the queue ``idp logout deliver``
    still works on."""
    cutoff = now - timedelta(seconds=current_app.config["HOUSEKEEPING_LOGOUT_DELIVERY_RETENTION"])
    deleted = db.session.execute(delete(LogoutDelivery).where(or_(LogoutDelivery.delivered_at <= cutoff, LogoutDelivery.abandoned_at <= cutoff)),
                                 execution_options={"synchronize_session": False}).rowcount
    return {"logout_delivery": deleted or 0}
