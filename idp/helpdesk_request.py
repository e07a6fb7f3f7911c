""""Je n'ai pas de code d'activation": requests that reach the helpdesk.

Anyone may file one; the answer never says whether the matricule is known. The helpdesk
resolves a request by issuing a new letter (when the person matches the registry) or by
rejecting it, from the admin UI or with ``idp requests list|resolve``.
"""

import enum
from datetime import date, datetime

import click
from flask.cli import AppGroup
from sqlalchemy import Date, DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from . import account as accounts, activation_letter, audit, clock, matricule as matricule_rules
from .cli_output import emit
from .extensions import db


class RequestStatus(str, enum.Enum):
    OPEN = "open"
    LETTER_ISSUED = "letter_issued"
    REJECTED = "rejected"


class HelpdeskRequest(db.Model):
    __tablename__ = "helpdesk_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    matricule: Mapped[str] = mapped_column(String(13))
    family_name: Mapped[str] = mapped_column(String(200))
    given_name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[date] = mapped_column(Date)
    contact_email: Mapped[str | None] = mapped_column(String(320))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.OPEN.value)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolution_note: Mapped[str | None] = mapped_column(Text)


class RequestNotOpen(Exception):
    pass


class NoMatchingPatient(Exception):
    """The registry has no pending account with this matricule, names and birth date."""


def file(*, matricule: str, family_name: str, given_name: str, birth_date: date, contact_email: str | None,
         contact_phone: str | None, note: str | None) -> HelpdeskRequest:
    request = HelpdeskRequest(
        matricule=matricule_rules.normalize(matricule),
        family_name=family_name.strip(),
        given_name=given_name.strip(),
        birth_date=birth_date,
        contact_email=(contact_email or "").strip() or None,
        contact_phone=(contact_phone or "").strip() or None,
        note=(note or "").strip() or None,
        created_at=clock.now(),
        status=RequestStatus.OPEN.value,
    )
    db.session.add(request)
    db.session.flush()
    audit.record(audit.Event.HELPDESK_REQUEST_FILED, request_id=request.id, matricule=matricule_rules.mask(request.matricule))
    return request


def matching_account(request: HelpdeskRequest) -> accounts.Account | None:
    """The registry entry the request describes: same matricule, birth date and family name."""
    account = accounts.find_by_matricule(request.matricule)
    if account is None or account.birth_date != request.birth_date:
        return None
    if account.family_name.casefold() != request.family_name.casefold():
        return None
    return account


def resolve(request: HelpdeskRequest, *, actor: str, issue_letter: bool, note: str | None = None) -> str | None:
    """Close the request; with ``issue_letter`` a new letter is issued and its code returned (once)."""
    if request.status != RequestStatus.OPEN.value:
        raise RequestNotOpen()
    code = None
    if issue_letter:
        account = matching_account(request)
        if account is None or account.is_active:
            raise NoMatchingPatient()
        _, code = activation_letter.issue(account, actor=actor)
        request.status = RequestStatus.LETTER_ISSUED.value
    else:
        request.status = RequestStatus.REJECTED.value
    request.resolved_at, request.resolved_by, request.resolution_note = clock.now(), actor, note
    audit.record(audit.Event.HELPDESK_REQUEST_RESOLVED, actor=actor, request_id=request.id, status=request.status)
    return code


def get(request_id: int) -> HelpdeskRequest | None:
    return db.session.get(HelpdeskRequest, request_id)


def listing(status: str | None = None) -> list[HelpdeskRequest]:
    query = select(HelpdeskRequest).order_by(HelpdeskRequest.id)
    if status:
        query = query.where(HelpdeskRequest.status == status)
    return list(db.session.scalars(query))


def view(request: HelpdeskRequest) -> dict:
    """The request with what the helpdesk must know to act: whether it matches the registry, the
    state of the account with its matricule (``none`` when there is none), and whether a new
    letter can be issued (only for a matching account still waiting for activation)."""
    matching = matching_account(request)
    account = matching or accounts.find_by_matricule(request.matricule)
    return {
        "id": request.id,
        "matricule": request.matricule,
        "family_name": request.family_name,
        "given_name": request.given_name,
        "birth_date": request.birth_date,
        "contact_email": request.contact_email,
        "contact_phone": request.contact_phone,
        "note": request.note,
        "created_at": request.created_at,
        "status": request.status,
        "resolved_at": request.resolved_at,
        "resolved_by": request.resolved_by,
        "matches_registry": matching is not None,
        "account_state": account.status if account is not None else "none",
        "can_issue_letter": matching is not None and matching.status == accounts.AccountStatus.PENDING.value,
    }


requests_cli = AppGroup("requests", help="\"Je n'ai pas de code d'activation\" requests.")


@requests_cli.command("list")
@click.option("--status", type=click.Choice([s.value for s in RequestStatus]), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def list_command(status: str | None, as_json: bool) -> None:
    """List requests, oldest first."""
    rows = [view(r) for r in listing(status)]
    emit(rows, as_json, lambda items: "\n".join(
        f"#{r['id']} {r['status']} {r['family_name']} {r['given_name']} {r['birth_date']} account {r['account_state']}"
        + ("" if r["can_issue_letter"] or r["status"] != RequestStatus.OPEN.value else " (no letter possible: reject)") for r in items))


@requests_cli.command("resolve")
@click.argument("request_id", type=int)
@click.option("--reject", is_flag=True, help="Close without issuing a letter.")
@click.option("--note", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def resolve_command(request_id: int, reject: bool, note: str | None, as_json: bool) -> None:
    """Resolve a request: issue a new letter (default) or reject it."""
    request = get(request_id)
    if request is None:
        raise click.ClickException(f"no request #{request_id}")
    try:
        code = resolve(request, actor="cli", issue_letter=not reject, note=note)
    except RequestNotOpen:
        raise click.ClickException(f"request #{request_id} is already {request.status}")
    except NoMatchingPatient:
        db.session.rollback()
        raise click.ClickException("no pending patient in the registry matches this request; use --reject")
    db.session.commit()
    emit({"id": request.id, "status": request.status, "activation_code": code, "matricule": request.matricule}, as_json,
         lambda d: f"#{d['id']} {d['status']}" + (f" code {d['activation_code']}" if d["activation_code"] else ""))
