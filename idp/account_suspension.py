"""The helpdesk stops an account at once (a stolen letter, a hijacked account) and lets it work again.

Disabling ends every SSO session (relying parties are told by back-channel logout), revokes every
token issued to the patient or to them as an assistant, and refuses logins, refreshes and userinfo
from then on (all check ``Account.is_active``). Enabling never reactivates a password the patient
did not choose: an account that had none goes back to pending, to be activated with a new letter.
"""

import click

from . import account as accounts, audit, backchannel_logout, credential, sso_session, token as tokens
from .cli_output import emit
from .extensions import db


def disable(account: accounts.Account, actor: str, reason: str) -> dict:
    account.status = accounts.AccountStatus.DISABLED.value
    sessions = sso_session.end_all(account.id)
    revoked = tokens.revoke_for_account(account.id)
    audit.record(audit.Event.ACCOUNT_DISABLED, account_id=account.id, actor=actor, reason=reason, sessions_ended=sessions,
                 tokens_revoked=revoked)
    return {"status": account.status, "sessions_ended": sessions, "tokens_revoked": revoked}


def enable(account: accounts.Account, actor: str) -> dict:
    has_password = db.session.get(credential.PasswordCredential, account.id) is not None
    account.status = (accounts.AccountStatus.ACTIVE if has_password else accounts.AccountStatus.PENDING).value
    audit.record(audit.Event.ACCOUNT_ENABLED, account_id=account.id, actor=actor, status=account.status)
    return {"status": account.status}


def _find(matricule: str) -> accounts.Account:
    found = accounts.find_by_matricule(matricule)
    if found is None:
        raise click.ClickException("no account with this matricule")
    return found


@accounts.patients_cli.command("disable")
@click.argument("matricule")
@click.option("--reason", required=True, help="Why (kept in the audit log), e.g. the helpdesk ticket.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def disable_command(matricule: str, reason: str, as_json: bool) -> None:
    """Stop an account at once: sessions ended, tokens revoked, logins refused."""
    result = disable(_find(matricule), actor="cli", reason=reason)
    db.session.commit()
    backchannel_logout.send_queued()
    emit(result, as_json, lambda r: f"disabled: {r['sessions_ended']} session(s) ended, {r['tokens_revoked']} token(s) revoked")


@accounts.patients_cli.command("enable")
@click.argument("matricule")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def enable_command(matricule: str, as_json: bool) -> None:
    """Let a disabled account work again (active with its password, or pending without one)."""
    result = enable(_find(matricule), actor="cli")
    db.session.commit()
    emit(result, as_json, lambda r: f"now {r['status']}")


patients_cli = accounts.patients_cli  # `idp patients`, with disable and enable added above
