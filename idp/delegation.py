"""Delegations: who may act on a patient's record (the guide's "Assistant DSP").

An assistant has the same rights as the owner (guide, "Assistant DSP d'un enfant mineur").
For a minor's record an assistant may also manage the other assistants; for an adult's record
only the owner does. A delegation on a minor's record ends by itself at the owner's 18th
birthday (from the registry's birth date, DESIGN.md); any delegation may carry an end date
(EHDS Art. 4: proxy access is time-limited). Days are Luxembourg's (:func:`clock.today`): a
delegation ends at midnight in Luxembourg, not at midnight UTC. Ending or revoking a delegation revokes at once
every token issued under it, and token look-ups check the delegation again on every use.
"""

import secrets
from datetime import date, datetime, timedelta

import click
from blinker import Namespace
from flask import current_app
from flask.cli import AppGroup
from flask_babel import force_locale, gettext as _
from sqlalchemy import ColumnElement, Date, DateTime, ForeignKey, String, bindparam, exists, select
from sqlalchemy.orm import Mapped, mapped_column

from . import account as accounts, audit, clock, matricule as matricule_rules, messaging, throttle
from .subject import subject_for, subject_in
from .account import Account
from .cli_output import emit
from .client import Client
from .extensions import db

ASSISTANT_DSP = "assistant_dsp"
TYPES = {ASSISTANT_DSP}
AGE_OF_MAJORITY = 18
ROLE_MAX_LENGTH = 100


class Delegation(db.Model):
    __tablename__ = "delegation"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    assistant_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    role: Mapped[str | None] = mapped_column(String(ROLE_MAX_LENGTH))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    created_via: Mapped[str | None] = mapped_column(String(64))  # client id of the API caller; None for the account pages
    created_at: Mapped[datetime] = mapped_column(DateTime)
    valid_until: Mapped[date | None] = mapped_column(Date)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(64))  # "account:<id>", "expiry" or "majority"

    @property
    def owner(self) -> Account:
        return accounts.get(self.owner_id)

    @property
    def assistant(self) -> Account:
        return accounts.get(self.assistant_id)

    def is_in_force(self, today: date | None = None) -> bool:
        today = today or clock.today()
        return self.revoked_at is None and (self.valid_until is None or today <= self.valid_until)


class DelegationError(Exception):
    """Base of the refusals; ``code`` is the API's error code."""

    code = "invalid_request"


class InvalidDelegation(DelegationError):
    pass


class DelegationExists(DelegationError):
    code = "conflict"


class NotAllowed(DelegationError):
    code = "forbidden"


def masked_name(account: Account) -> str:
    """Initial + family name: enough to recognise the person one looked up, no more (guide)."""
    return f"{account.given_name[:1]}. {account.family_name}"


def majority_date(birth_date: date) -> date:
    """The 18th birthday; someone born on 29 February comes of age on 1 March."""
    try:
        return birth_date.replace(year=birth_date.year + AGE_OF_MAJORITY)
    except ValueError:
        return date(birth_date.year + AGE_OF_MAJORITY, 3, 1)


def is_minor(account: Account, today: date | None = None) -> bool:
    return (today or clock.today()) < majority_date(account.birth_date)


def get(delegation_id: str | None) -> Delegation | None:
    return db.session.get(Delegation, delegation_id) if delegation_id else None


def in_force(delegation_id: str) -> bool:
    """Token look-ups ask this on every use: an end date passes without waiting for the sweep."""
    found = get(delegation_id)
    return found is not None and found.is_in_force()


# --- looking up an assistant -----------------------------------------------------------------


def lookup(matricule: str, *, requested_by: Account, client_id: str | None = None) -> Account | None:
    """The patient with an active account and exactly this matricule, or None. Audited: it tells
    that someone exists. A pending account is not found: it cannot log in to act as an assistant,
    and finding it would tell who has not activated yet.

    Raises :class:`InvalidDelegation` when the text is not a matricule (no partial search) and
    :class:`throttle.Throttled` past the requester's own limit (``RATE_LIMIT_DELEGATION_LOOKUP_PER_ACCOUNT``),
    which holds whatever the addresses the look-ups come from.
    """
    if not matricule_rules.is_valid(matricule or ""):
        raise InvalidDelegation("matricule must be 11 or 13 digits with valid check digits")
    throttle.check("RATE_LIMIT_DELEGATION_LOOKUP_PER_ACCOUNT", "lookup", requested_by.id)
    found = accounts.find_by_matricule(matricule)
    if found is not None and not found.is_active:
        found = None
    audit.record(audit.Event.DELEGATION_LOOKUP, account_id=requested_by.id, client_id=client_id,
                 matricule=matricule_rules.mask(matricule), found=found is not None)
    return found


# --- granting and ending ----------------------------------------------------------------------


def may_manage(owner: Account, actor: Account) -> bool:
    """The owner always; an assistant only on a minor's record (guide, "Assistant DSP")."""
    if actor.id == owner.id:
        return True
    return is_minor(owner) and any(d.assistant_id == actor.id for d in for_owner(owner))


def grant(owner: Account, assistant: Account, *, created_by: Account, type: str = ASSISTANT_DSP, role: str | None = None,
          valid_until: date | None = None, client_id: str | None = None) -> Delegation:
    """Make ``assistant`` an assistant of ``owner``'s record. On a minor's record it ends at majority."""
    if not may_manage(owner, created_by):
        raise NotAllowed("only the owner, or an assistant of a minor, manages the assistants")
    if type not in TYPES:
        raise InvalidDelegation(f"unknown delegation type {type!r}")
    if assistant.id == owner.id:
        raise InvalidDelegation("a patient cannot be their own assistant")
    role = (role or "").strip() or None
    if role is not None and len(role) > ROLE_MAX_LENGTH:
        raise InvalidDelegation(f"role is at most {ROLE_MAX_LENGTH} characters")
    today = clock.today()
    if valid_until is not None and valid_until < today:
        raise InvalidDelegation("valid_until is in the past")
    if is_minor(owner, today):
        last_day = majority_date(owner.birth_date) - timedelta(days=1)
        valid_until = min(valid_until or last_day, last_day)
    if any(d.assistant_id == assistant.id and d.type == type for d in for_owner(owner)):
        raise DelegationExists("this patient is already an assistant of this record")
    found = Delegation(
        id=secrets.token_hex(16), owner_id=owner.id, assistant_id=assistant.id, type=type, role=role,
        created_by_id=created_by.id, created_via=client_id, created_at=clock.now(), valid_until=valid_until,
    )
    db.session.add(found)
    audit.record(audit.Event.DELEGATION_GRANTED, account_id=owner.id, client_id=client_id, actor=f"account:{created_by.id}",
                 delegation_id=found.id, assistant_id=assistant.id, type=type, role=role,
                 valid_until=valid_until.isoformat() if valid_until else None)
    _tell_owner_of_new_assistant(owner, assistant)
    return found


def _tell_owner_of_new_assistant(owner: Account, assistant: Account) -> None:
    """An assistant reads the whole record: the owner hears of it on every channel, in their own
    language, so that an assistant added from a stolen session does not go unnoticed."""
    with force_locale(owner.locale or current_app.config["LANGUAGES"][0]):
        notice = _("%(name)s est désormais assistant DSP de votre dossier eSanté et peut le consulter comme vous. "
                   "Si vous n'êtes pas à l'origine de cet ajout, retirez cet assistant dans Mon compte, rubrique Assistants, "
                   "et contactez le helpdesk.", name=masked_name(assistant))
        for channel in owner.channels():
            messaging.notify(channel, owner.destination(channel), notice)


# Sent when a delegation ends (revoked, expired, the patient came of age): the token module
# revokes what was issued under it and answers how many, for the audit event. A signal, so that
# this module, which the token module asks whether a delegation is in force, needs none of it.
ended = Namespace().signal("delegation-ended")


def revoke(found: Delegation, *, by: Account, client_id: str | None = None) -> int:
    """End the delegation now; every token issued under it stops working at once."""
    if not may_manage(found.owner, by):
        raise NotAllowed("only the owner, or an assistant of a minor, manages the assistants")
    return _end(found, f"account:{by.id}", audit.Event.DELEGATION_REVOKED, client_id)


def _end(found: Delegation, reason: str, event: audit.Event, client_id: str | None = None) -> int:
    found.revoked_at = clock.now()
    found.revoked_by = reason
    revoked = sum(result for _, result in ended.send(found))
    audit.record(event, account_id=found.owner_id, client_id=client_id, actor=reason, delegation_id=found.id,
                 assistant_id=found.assistant_id, revoked_tokens=revoked)
    return revoked


def end_expired() -> int:
    """Record the end of every delegation past its last day, revoke its tokens, and tell each new adult.

    Token look-ups already refuse such delegations; this makes the end visible (audit, trail,
    message) and is run daily by ``idp delegations end-expired``.
    """
    today = clock.today()
    due = list(db.session.scalars(select(Delegation).where(Delegation.revoked_at.is_(None), Delegation.valid_until < today)))
    came_of_age: dict[int, Account] = {}
    for found in due:
        owner = found.owner
        reached_majority = not is_minor(owner, today) and is_minor(owner, clock.luxembourg_date(found.created_at))
        _end(found, "majority" if reached_majority else "expiry", audit.Event.DELEGATION_ENDED)
        if reached_majority:
            came_of_age[owner.id] = owner
    for owner in came_of_age.values():
        _tell_new_adult(owner)
    return len(due)


def _tell_new_adult(owner: Account) -> None:
    """The guide's promise: at 18 the assistants lose access and the patient may choose new ones."""
    channels = owner.channels()
    if not channels:
        return
    channel = channels[0]
    with force_locale(owner.locale or current_app.config["LANGUAGES"][0]):
        subject = _("Votre compte eSanté : vous êtes majeur")
        body = _("Vous avez 18 ans : les assistants DSP de votre dossier n'y ont plus accès. "
                 "Vous pouvez désigner de nouveaux assistants dans Mon compte, rubrique Assistants.")
    try:
        messaging.send(channel, owner.destination(channel), subject, body)
    except messaging.MessageNotSent as error:
        audit.record(audit.Event.NOTIFICATION_FAILED, account_id=owner.id, channel=channel, reason=str(error))


# --- reading ----------------------------------------------------------------------------------


_NOT_REVOKED_BY_OWNER = (  # built once: read for every token a patient gets (``may_act``)
    select(Delegation).where(Delegation.owner_id == bindparam("owner_id"), Delegation.revoked_at.is_(None)).order_by(Delegation.created_at)
)


def may_have_assistants(owner_id: ColumnElement[int]) -> ColumnElement[bool]:
    """True when the account ``owner_id`` (a column) has a delegation not revoked: a statement
    that reads a patient asks it alongside, and :func:`may_act` is read only when it is true
    (whether the delegation is still in force, by its end date, :func:`for_owner` decides)."""
    return exists().where(Delegation.owner_id == owner_id, Delegation.revoked_at.is_(None))


def for_owner(owner: Account | accounts.AccountRow) -> list[Delegation]:
    """The delegations in force on ``owner``'s record, oldest first."""
    return [d for d in db.session.scalars(_NOT_REVOKED_BY_OWNER, {"owner_id": owner.id}) if d.is_in_force()]


def for_assistant(assistant: Account | accounts.AccountRow) -> list[Delegation]:
    """The delegations in force that let ``assistant`` act for someone, oldest first."""
    query = select(Delegation).where(Delegation.assistant_id == assistant.id, Delegation.revoked_at.is_(None)).order_by(Delegation.created_at)
    return [d for d in db.session.scalars(query) if d.is_in_force() and d.owner.is_active]


def ever_on_record(owner: Account) -> list[Delegation]:
    """Every delegation the record ever had, ended ones included (the trail's assistant filter)."""
    return list(db.session.scalars(select(Delegation).where(Delegation.owner_id == owner.id).order_by(Delegation.created_at)))


def find_for_subject(assistant: Account, client: Client, requested_subject: str) -> Delegation | None:
    """The delegation in force letting ``assistant`` act for the patient ``client`` knows as ``requested_subject``."""
    for found in for_assistant(assistant):
        if subject_for(found.owner, client) == requested_subject:
            return found
    return None


def assisted_patients(assistant: Account | accounts.AccountRow, client: Client) -> list[dict]:
    """The ``assisted_patients`` claim: each patient's ``sub`` as ``client`` sees it, and their name."""
    return [{"sub": subject_for(d.owner, client), "name": d.owner.display_name} for d in for_assistant(assistant)]


def may_act(owner: Account | accounts.AccountRow, client: Client, resource_audience: str | None = None) -> dict | list[dict] | None:
    """The ``may_act`` claim (RFC 8693 §4.4) of the owner's own tokens: who may act for this subject.

    One assistant: the RFC's object ``{"sub": ...}``. Several: a list of such objects, since
    the RFC's single object cannot name more than one party. ``sub`` is as the token's reader
    knows them: the resource server of ``resource_audience``, else ``client``.
    """
    parties = [{"sub": subject_in(d.assistant, client, resource_audience)} for d in for_owner(owner)]
    if not parties:
        return None
    return parties[0] if len(parties) == 1 else parties


def view(found: Delegation, client: Client) -> dict:
    """The API's Delegation object: subjects as ``client`` sees them, names masked."""
    owner, assistant = found.owner, found.assistant
    return {
        "id": found.id,
        "type": found.type,
        "role": found.role,
        "owner": {"sub": subject_for(owner, client), "display_name": masked_name(owner)},
        "assistant": {"sub": subject_for(assistant, client), "display_name": masked_name(assistant)},
        "created_at": found.created_at.replace(microsecond=0).isoformat() + "Z",
        "valid_until": found.valid_until.isoformat() if found.valid_until else None,
    }


# --- command line -----------------------------------------------------------------------------

delegations_cli = AppGroup("delegations", help="Assistants DSP (delegations).")


@delegations_cli.command("end-expired")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def end_expired_command(as_json: bool) -> None:
    """End delegations past their last day (majority included) and tell the new adults. Run daily."""
    ended = end_expired()
    db.session.commit()
    emit({"ended": ended}, as_json, lambda result: f"{result['ended']} delegation(s) ended")
