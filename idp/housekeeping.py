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

from datetime import datetime

import click
from flask.cli import AppGroup

from . import (activation, admin_session, audit, backchannel_logout, clock, credential, federated_identity, known_device,
               one_time_code, passkey, pushed_request, replay_cache, sso_session, token, usage_budget)
from .cli_output import emit
from .extensions import db

# Each domain module owns the rule for its rows (``purge_expired(now)``, which says what it keeps
# and why); here they only run in turn, in this order: tokens go before the SSO sessions they name.
PURGES = (
    pushed_request.purge_expired,
    backchannel_logout.purge_expired,
    credential.purge_expired,
    replay_cache.purge_expired,
    federated_identity.purge_expired,
    one_time_code.purge_expired,
    passkey.purge_expired,
    usage_budget.purge_expired,
    activation.purge_expired,
    token.purge_expired,
    sso_session.purge_expired,
    admin_session.purge_expired,
    known_device.purge_expired,
)


def purge_expired(now: datetime | None = None) -> dict[str, int]:
    """Delete what is past use; returns the number of rows deleted per table. The caller commits."""
    now = now or clock.now()
    counts: dict[str, int] = {}
    for purge in PURGES:
        counts.update(purge(now))
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
