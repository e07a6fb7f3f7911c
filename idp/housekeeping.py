"""Housekeeping: delete the short-lived rows that are past use, so those tables do not grow forever.

One job, ``idp housekeeping purge``, run daily (cron, a systemd timer, a Kubernetes CronJob) from
any instance: bulk ``DELETE ... WHERE`` statements in one transaction, the same on SQLite and
PostgreSQL, and one audit event with the counts. Each rule deletes only what no flow, session,
grant or delegation can still use; the windows that are a choice are ``HOUSEKEEPING_*`` settings.

What stays, on purpose: the audit log (its own retention job, ``idp audit purge``), accounts,
credentials, consents, delegations, letters, helpdesk requests, clients and their initial access
tokens (issued by hand, few), signing keys (``idp keys rotate``) and the outbox; and
``unknown_login_throttle`` rows that were never locked: they carry no time, so nothing tells how
old they are.
"""

from datetime import datetime, timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import Delete, delete, exists, or_, select
from sqlalchemy.orm import aliased

from . import audit, clock
from .activation import ActivationWizard
from .admin_session import AdminSession
from .backchannel_logout import LogoutDelivery
from .cli_output import emit
from .credential import UnknownLoginThrottle
from .extensions import db
from .federated_identity import FederatedLogin, PendingArrival
from .known_device import COOKIE_MAX_AGE, KnownDevice
from .one_time_code import OneTimeCode
from .pushed_request import PushedRequest
from .replay_cache import SeenValue
from .sso_session import SsoSession
from .token import AuthorizationCode, Token
from .usage_budget import UsageBudget

# A one-time-code challenge is kept two days after it was created, for troubleshooting; the
# budgets it spent live in ``usage_budget``.
ONE_TIME_CODE_KEPT_FOR = timedelta(days=2)
# No budget window is longer than a day (``idp/one_time_code.py``): a row whose window opened two
# days ago counts nothing any more, and the next use would open a new window anyway.
USAGE_BUDGET_KEPT_FOR = timedelta(days=2)
# An activation wizard past its lifetime still answers "expired" (rather than "unknown") that long.
ACTIVATION_WIZARD_KEPT_FOR = timedelta(days=1)


def _seconds(name: str) -> timedelta:
    return timedelta(seconds=current_app.config[name])


def _count(statement: Delete) -> int:
    return db.session.execute(statement, execution_options={"synchronize_session": False}).rowcount or 0


def purge_expired(now: datetime | None = None) -> dict[str, int]:
    """Delete what is past use; returns the number of rows deleted per table. The caller commits."""
    now = now or clock.now()
    config = current_app.config
    counts: dict[str, int] = {}

    # RFC 9126: a request_uri is taken by a browser before ``expires_at`` and that browser may come
    # back with it for PAR_FLOW_TTL more; once spent (a code was issued) it is refused anyway.
    counts["pushed_request"] = _count(delete(PushedRequest).where(or_(
        PushedRequest.spent_at.is_not(None),
        PushedRequest.expires_at <= now - _seconds("PAR_FLOW_TTL"),
    )))

    # Back-channel logout: delivered or abandoned ones, after a window for troubleshooting a
    # relying party; pending ones (neither) are the queue ``idp logout deliver`` still works on.
    delivery_cutoff = now - _seconds("HOUSEKEEPING_LOGOUT_DELIVERY_RETENTION")
    counts["logout_delivery"] = _count(delete(LogoutDelivery).where(or_(
        LogoutDelivery.delivered_at <= delivery_cutoff,
        LogoutDelivery.abandoned_at <= delivery_cutoff,
    )))

    # Wrong passwords for matricules without an account: rows whose lockout ended more than the
    # window ago. A real account keeps its backoff until a right password, so the window is long:
    # the backoff of a made-up matricule starting over must not tell it from a dormant real one.
    counts["unknown_login_throttle"] = _count(delete(UnknownLoginThrottle).where(
        UnknownLoginThrottle.locked_until <= now - _seconds("HOUSEKEEPING_UNKNOWN_LOGIN_RETENTION"),
    ))

    # Replay caches (DPoP proof, client assertion and SAML assertion ids): ``first_use`` already
    # treats an expired value as unseen. Pending federated arrivals live 15 minutes.
    counts["seen_value"] = _count(delete(SeenValue).where(SeenValue.expires_at <= now))
    counts["federated_arrival"] = _count(delete(PendingArrival).where(PendingArrival.expires_at <= now))

    counts["one_time_code"] = _count(delete(OneTimeCode).where(
        OneTimeCode.created_at <= now - ONE_TIME_CODE_KEPT_FOR,
        or_(OneTimeCode.expires_at.is_(None), OneTimeCode.expires_at <= now),
    ))
    counts["usage_budget"] = _count(delete(UsageBudget).where(UsageBudget.window_started_at <= now - USAGE_BUDGET_KEPT_FOR))
    counts["activation_wizard"] = _count(delete(ActivationWizard).where(
        ActivationWizard.expires_at <= now - ACTIVATION_WIZARD_KEPT_FOR,
    ))

    # Tokens: a row goes only when everything it could still do is over: its access token has
    # expired and so has its refresh-token family (a rotated or revoked refresh token of a live
    # family must still be found, so that its reuse revokes the family, RFC 9700 §4.14.2), plus
    # the retention window. Never sooner than SSO_ABSOLUTE_TIMEOUT: ending a session finds the
    # clients to tell by back-channel logout through these rows.
    token_retention = max(_seconds("HOUSEKEEPING_TOKEN_RETENTION"), _seconds("SSO_ABSOLUTE_TIMEOUT"))
    token_cutoff = now - token_retention
    counts["token"] = _count(delete(Token).where(
        Token.access_expires_at <= token_cutoff,
        or_(Token.family_expires_at.is_(None), Token.family_expires_at <= token_cutoff),
        or_(Token.refresh_expires_at.is_(None), Token.refresh_expires_at <= token_cutoff),
    ))
    # Authorization codes: a second use revokes the tokens the first one got (RFC 6749 §4.1.2),
    # and ``nonce_was_used`` refuses a nonce seen in them; so a code stays as long as a token from
    # it may live: the longest token lifetime after the code expired, plus the window.
    longest_token = timedelta(seconds=max(config["REFRESH_TOKEN_ABSOLUTE_TTL"], config["ACCESS_TOKEN_TTL"]))
    counts["authorization_code"] = _count(delete(AuthorizationCode).where(
        AuthorizationCode.expires_at <= now - longest_token - token_retention,
    ))

    # SSO sessions ended (or timed out) longer than the window ago, once no token row names them
    # any more: a password reset still ends a timed-out session and tells the clients that got
    # tokens in it. Their upstream logins (MyGuichet, LuxTrust) go with them. Admin sessions
    # after the same window.
    session_cutoff = now - _seconds("HOUSEKEEPING_SSO_SESSION_RETENTION")
    session_done = (
        or_(
            SsoSession.ended_at <= session_cutoff,
            SsoSession.last_seen_at <= session_cutoff - _seconds("SSO_IDLE_TIMEOUT"),
            SsoSession.created_at <= session_cutoff - _seconds("SSO_ABSOLUTE_TIMEOUT"),
        ),
        ~exists().where(Token.sso_session_id == SsoSession.id),
    )
    counts["federated_login"] = _count(delete(FederatedLogin).where(
        FederatedLogin.sso_session_id.in_(select(SsoSession.id).where(*session_done)),
    ))
    counts["sso_session"] = _count(delete(SsoSession).where(*session_done))
    counts["admin_session"] = _count(delete(AdminSession).where(or_(
        AdminSession.ended_at <= session_cutoff,
        AdminSession.last_seen_at <= session_cutoff - _seconds("ADMIN_SESSION_IDLE_TIMEOUT"),
        AdminSession.created_at <= session_cutoff - _seconds("ADMIN_SESSION_ABSOLUTE_TIMEOUT"),
    )))

    # Browsers not seen for longer than their device cookie can live cannot come back with it.
    # An account's most recent device stays, so that the next login from a new browser is still
    # announced (the first device of an account is not).
    newer = aliased(KnownDevice)
    counts["known_device"] = _count(delete(KnownDevice).where(
        KnownDevice.last_seen_at <= now - timedelta(seconds=COOKIE_MAX_AGE),
        exists().where(newer.account_id == KnownDevice.account_id, newer.last_seen_at > KnownDevice.last_seen_at),
    ))

    audit.record(audit.Event.HOUSEKEEPING_PURGED, actor="housekeeping", deleted=counts)
    return counts


housekeeping_cli = AppGroup("housekeeping", help="Deleting rows that are past use.")


@housekeeping_cli.command("purge")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def purge_command(as_json: bool) -> None:
    """Delete expired and finished short-lived rows (tokens, sessions, codes, deliveries...). Run daily."""
    counts = purge_expired()
    db.session.commit()
    emit(counts, as_json, lambda result: "\n".join(
        [f"{table}: {count} deleted" for table, count in result.items()] + [f"total: {sum(result.values())} deleted"]
    ))
