"""Patient accounts and the insured-person registry they come from.

An account exists from the registry import on (``pending``); activation makes it ``active``;
helpdesk may ``disable`` it. ``subject`` is the opaque, stable basis of every ``sub`` claim:
never the matricule (DESIGN.md).
"""

import csv
import enum
import io
import secrets
from dataclasses import dataclass
from datetime import date, datetime

import click
from flask.cli import AppGroup
from sqlalchemy import Boolean, ColumnElement, Date, DateTime, Integer, Row, String, bindparam, func, select
from sqlalchemy.orm import Mapped, mapped_column

from . import audit, clock, matricule as matricule_rules
from .cli_output import emit
from .extensions import db


class AccountStatus(str, enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    DISABLED = "disabled"


class Channel(str, enum.Enum):
    SMS = "sms"
    EMAIL = "email"


class _AccountReading:
    """What reading an account derives from its columns, the same for an entity and a plain row."""

    @property
    def is_active(self) -> bool:
        return self.status == AccountStatus.ACTIVE.value

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


class Account(_AccountReading, db.Model):
    __tablename__ = "account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), unique=True)
    matricule: Mapped[str] = mapped_column(String(13), unique=True)
    family_name: Mapped[str] = mapped_column(String(200))
    given_name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[date] = mapped_column(Date)
    email: Mapped[str | None] = mapped_column(String(320))
    mobile: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default=AccountStatus.PENDING.value)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    mobile_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    preferred_channel: Mapped[str | None] = mapped_column(String(8))
    locale: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime)

    def channels(self) -> list[str]:
        """The one-time-code channels this account can receive on, preferred first."""
        known = [c.value for c in Channel if self.destination(c.value)]
        if self.preferred_channel in known:
            known.remove(self.preferred_channel)
            known.insert(0, self.preferred_channel)
        return known

    def destination(self, channel: str) -> str | None:
        return self.mobile if channel == Channel.SMS.value else self.email

    def age_on(self, day: date) -> int:
        born = self.birth_date
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


@dataclass(frozen=True)
class AccountRow(_AccountReading):
    """An account as the hot token paths read it (userinfo, the refresh grant): a plain row read
    in the same statement as the token, no ORM entity (issue 15). What ``sub`` and the claims need."""

    id: int
    subject: str
    status: str
    matricule: str
    family_name: str
    given_name: str
    birth_date: date
    email: str | None
    mobile: str | None
    email_verified: bool
    mobile_verified: bool
    locale: str | None
    updated_at: datetime


def account_row_columns(prefix: str, of_id: ColumnElement[int] | None = None) -> list[ColumnElement]:
    """The columns of :class:`AccountRow`, labelled ``prefix + name``, for a statement that reads
    them: the account's own columns (the statement joins ``account``), or with ``of_id`` one
    scalar subquery each for the account of that id (SQLite's ``RETURNING`` may not name a
    joined table)."""
    if of_id is None:
        return [getattr(Account, name).label(prefix + name) for name in AccountRow.__dataclass_fields__]
    return [select(getattr(Account, name)).where(Account.id == of_id).scalar_subquery().label(prefix + name)
            for name in AccountRow.__dataclass_fields__]


def account_row(row: Row, prefix: str) -> AccountRow:
    """The :class:`AccountRow` in a result row read with :func:`account_row_columns`."""
    return AccountRow(*(row._mapping[prefix + name] for name in AccountRow.__dataclass_fields__))


def get(account_id: int) -> Account | None:
    return db.session.get(Account, account_id)


# Built once: every password login reads it, and a statement built anew costs about as much
# CPU (construction and cache key) as running it.
_BY_MATRICULE = select(Account).where(Account.matricule == bindparam("matricule"))


def find_by_matricule(text: str) -> Account | None:
    return db.session.scalar(_BY_MATRICULE, {"matricule": matricule_rules.normalize(text)})


def mark_channel_verified(account: Account, channel: str) -> None:
    """A one-time code sent to this channel came back: the address or number works."""
    if channel == Channel.SMS.value:
        account.mobile_verified = True
    else:
        account.email_verified = True


def activate(account: Account) -> None:
    account.status = AccountStatus.ACTIVE.value
    account.activated_at = account.updated_at = clock.now()


# --- registry import -------------------------------------------------------------------------

REGISTRY_HEADER = ["matricule", "family_name", "given_name", "birth_date", "email", "mobile", "address"]
REQUIRED_COLUMNS = REGISTRY_HEADER[:4]
CONTACT_FIELDS = {"email": "email_verified", "mobile": "mobile_verified"}


@dataclass
class ImportProblem:
    line: int
    reason: str


@dataclass
class ImportResult:
    created: int
    updated: int
    unchanged: int


class RegistryImportFailed(Exception):
    def __init__(self, problems: list[ImportProblem]):
        super().__init__(f"{len(problems)} bad row(s)")
        self.problems = problems


def import_registry(text: str) -> ImportResult:
    """Import a registry extract (CSV). All rows or none: one bad row rejects the file.

    The columns after ``birth_date`` are optional. Re-importing the same file changes nothing
    (idempotent). A changed row updates the registry fields of the existing account and keeps
    its state and credentials; an e-mail or mobile the patient has confirmed with a one-time
    code wins over the registry's (it is where their codes go).
    """
    reader = csv.DictReader(io.StringIO(text))
    reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
    header_problem = _header_problem(reader.fieldnames)
    if header_problem:
        raise RegistryImportFailed([ImportProblem(1, header_problem)])
    rows, problems, seen = [], [], set()
    for row in reader:
        line = reader.line_num
        try:
            parsed = _parse_registry_row(row)
        except ValueError as error:
            problems.append(ImportProblem(line, str(error)))
            continue
        if parsed["matricule"] in seen:
            problems.append(ImportProblem(line, "duplicate_matricule"))
            continue
        seen.add(parsed["matricule"])
        rows.append(parsed)
    if problems:
        raise RegistryImportFailed(problems)
    created = updated = unchanged = 0
    now = clock.now()
    for parsed in rows:
        existing = find_by_matricule(parsed["matricule"])
        if existing is None:
            db.session.add(Account(subject=secrets.token_urlsafe(24), created_at=now, updated_at=now, **parsed))
            created += 1
        elif _update_from_registry(existing, parsed):
            existing.updated_at = now
            updated += 1
        else:
            unchanged += 1
    audit.record(audit.Event.PATIENTS_IMPORTED, actor="cli", created=created, updated=updated)
    db.session.commit()
    return ImportResult(created, updated, unchanged)


def _header_problem(columns: list[str]) -> str | None:
    if missing := [name for name in REQUIRED_COLUMNS if name not in columns]:
        return "missing_columns:" + ",".join(missing)
    if unknown := [name for name in columns if name not in REGISTRY_HEADER]:
        return "unknown_columns:" + ",".join(unknown)
    if len(set(columns)) != len(columns):
        return "duplicate_columns"
    return None


def _update_from_registry(account: Account, parsed: dict) -> bool:
    """Apply a registry row to an existing account; return whether anything changed."""
    changed = False
    for key, value in parsed.items():
        if value is None or getattr(account, key) == value:
            continue
        if key in CONTACT_FIELDS and getattr(account, CONTACT_FIELDS[key]):
            continue
        setattr(account, key, value)
        changed = True
    return changed


def _parse_registry_row(row: dict) -> dict:
    if row.get(None):
        raise ValueError("too_many_fields")

    def field(name: str) -> str | None:
        value = (row.get(name) or "").strip()
        return value or None

    try:
        value = matricule_rules.validate(field("matricule") or "")
    except matricule_rules.InvalidMatricule as error:
        raise ValueError(f"invalid_matricule:{error.reason}") from None
    family_name, given_name = field("family_name"), field("given_name")
    if not family_name or not given_name:
        raise ValueError("missing_name")
    try:
        birth_date = date.fromisoformat(field("birth_date") or "")
    except ValueError:
        raise ValueError("invalid_birth_date") from None
    if not _birth_date_matches(birth_date, value[:8]):
        raise ValueError("birth_date_does_not_match_matricule")
    email, mobile = field("email"), field("mobile")
    if email and ("@" not in email or " " in email):
        raise ValueError("invalid_email")
    if mobile and not _looks_like_phone(mobile):
        raise ValueError("invalid_mobile")
    return {
        "matricule": value,
        "family_name": family_name,
        "given_name": given_name,
        "birth_date": birth_date,
        "email": email,
        "mobile": normalize_phone(mobile) if mobile else None,
        "address": field("address"),
    }


def _birth_date_matches(birth_date: date, yyyymmdd: str) -> bool:
    """The matricule starts with the birth date; its ``00`` month or day matches any."""
    written = birth_date.strftime("%Y%m%d")
    return all(part == "00" or part == actual for part, actual in (
        (yyyymmdd[:4], written[:4]), (yyyymmdd[4:6], written[4:6]), (yyyymmdd[6:8], written[6:8])
    ))


def normalize_phone(text: str) -> str:
    digits = "".join(ch for ch in text if ch.isdigit() or ch == "+")
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    return digits


def _looks_like_phone(text: str) -> bool:
    digits = normalize_phone(text)
    return 8 <= len(digits.lstrip("+")) <= 15 and "+" not in digits[1:]


patients_cli = AppGroup("patients", help="The insured-person registry.")


@patients_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def import_command(path: str, as_json: bool) -> None:
    """Import a registry extract (CSV with header matricule,family_name,given_name,birth_date[,email,mobile,address])."""
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        result = import_registry(_decode(raw))
    except RegistryImportFailed as error:
        db.session.rollback()
        report = {"imported": False, "problems": [p.__dict__ for p in error.problems]}
        emit(report, as_json, lambda r: "\n".join(f"line {p['line']}: {p['reason']}" for p in r["problems"]))
        raise SystemExit(1)
    report = {"imported": True, "created": result.created, "updated": result.updated, "unchanged": result.unchanged}
    emit(report, as_json, lambda r: f"created {r['created']}, updated {r['updated']}, unchanged {r['unchanged']}")


@patients_cli.command("check-matricules")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def check_matricules_command(as_json: bool) -> None:
    """List stored matricules that today's rules refuse (exit 1 if any).

    Run after an upgrade that changes the rules: until 2026-12 rows 4 and 5 of the Verhoeff table
    were mistyped, so a number stored before then may carry a check digit only the old table accepted.
    """
    refused = []
    for value in db.session.scalars(select(Account.matricule).order_by(Account.matricule)):
        try:
            matricule_rules.validate(value)
        except matricule_rules.InvalidMatricule as error:
            refused.append({"matricule": value, "reason": error.reason})
    report = {"checked": db.session.scalar(select(func.count()).select_from(Account)), "refused": refused}
    emit(report, as_json, lambda r: "\n".join(
        [f"{item['matricule']}: {item['reason']}" for item in r["refused"]] + [f"checked {r['checked']}, refused {len(r['refused'])}"]
    ))
    if refused:
        raise SystemExit(1)


def _decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM); anything else is reported on the line it breaks."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RegistryImportFailed([ImportProblem(raw[: error.start].count(b"\n") + 1, "not_utf8")]) from None
