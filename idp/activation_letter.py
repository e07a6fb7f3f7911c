"""Activation letters: the code posted to a patient so they can activate their account.

A code has 60 bits of entropy (12 characters of Crockford base32, printed as XXXX-XXXX-XXXX)
and is stored as SHA-256. A new letter voids the previous code.

Wrong codes are counted per matricule typed, whether it has a letter, an account or nothing
(:class:`idp.credential.UnknownLoginThrottle` rows, :mod:`idp.lockout`): after
``ACTIVATION_MAX_FAILURES`` in a row that matricule's activation is locked for
``ACTIVATION_LOCKOUT_SECONDS``, doubling on each further lockout. The letter is *not* voided: a
stranger who knows a matricule could otherwise destroy a pending patient's only credential with
ten guesses. The trade-off: that stranger can delay the activation (by keeping it locked), not
prevent it for good, and 60 bits stay out of reach at ten guesses per doubling lockout. Each
attempt is claimed before the code is compared, so a burst gets no more than ten comparisons.

Every matricule answers alike until a right code is shown: unknown, pending with a wrong code,
already active with a wrong code (same status, message, lockout and one database write each);
only the holder of a right code learns that its letter expired or that the account is already
active (issue 13, medium 5).
"""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import DateTime, ForeignKey, Integer, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from . import account as accounts, audit, clock, credential, lockout, matricule as matricule_rules
from .cgu_acceptance import FONT_DIRECTORY
from .cli_output import emit
from .extensions import db

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
ACTIVATION_MAX_FAILURES = 10


class ActivationLetter(db.Model):
    __tablename__ = "activation_letter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(DateTime)


class ActivationError(Exception):
    pass


class ActivationCodeInvalid(ActivationError):
    """Unknown matricule, wrong code or no letter: one answer for all, so nothing leaks."""


class ActivationCodeExpired(ActivationError):
    pass


class AccountAlreadyActive(ActivationError):
    pass


class ActivationLocked(ActivationError):
    """Too many wrong codes for this matricule: wait until ``until`` (whatever the matricule)."""

    def __init__(self, until: datetime):
        super().__init__(f"locked until {until.isoformat()}")
        self.until = until


class LetterNoLongerValid(ActivationError):
    """The letter a wizard started with was voided by a newer one, or expired, before the wizard ended."""


def _hash(code: str) -> str:
    return hashlib.sha256(normalize_code(code).encode()).hexdigest()


def normalize_code(code: str) -> str:
    cleaned = "".join(ch for ch in (code or "").upper() if ch.isalnum())
    return cleaned.translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))


def format_code(raw: str) -> str:
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def issue(account: accounts.Account, actor: str = "cli") -> tuple[ActivationLetter, str]:
    """Issue a new letter for ``account``, voiding the previous one. Returns the letter and its code."""
    now = clock.now()
    db.session.execute(
        update(ActivationLetter)
        .where(ActivationLetter.account_id == account.id, ActivationLetter.voided_at.is_(None), ActivationLetter.redeemed_at.is_(None))
        .values(voided_at=now)
    )
    code = format_code("".join(secrets.choice(_ALPHABET) for _ in range(12)))
    letter = ActivationLetter(
        account_id=account.id,
        code_hash=_hash(code),
        issued_at=now,
        expires_at=now + timedelta(days=current_app.config["ACTIVATION_CODE_TTL_DAYS"]),
    )
    db.session.add(letter)
    audit.record(audit.Event.LETTER_ISSUED, account_id=account.id, actor=actor)
    return letter, code


def current_letter(account: accounts.Account) -> ActivationLetter | None:
    return db.session.scalar(
        select(ActivationLetter)
        .where(ActivationLetter.account_id == account.id, ActivationLetter.voided_at.is_(None), ActivationLetter.redeemed_at.is_(None))
        .order_by(ActivationLetter.id.desc())
    )


def _matches(letter: ActivationLetter, code: str) -> bool:
    return hmac.compare_digest(letter.code_hash, _hash(code))


def _redeemed_letters(account: accounts.Account) -> list[ActivationLetter]:
    return list(db.session.scalars(select(ActivationLetter).where(ActivationLetter.account_id == account.id,
                                                                  ActivationLetter.redeemed_at.is_not(None))))


def check(matricule: str, code: str) -> tuple[accounts.Account, ActivationLetter]:
    """Check a matricule + code without consuming it. The caller commits (failures count).

    Raises :class:`ActivationLocked`, :class:`ActivationCodeInvalid` (one answer for an unknown
    matricule, a wrong code and no letter), and only for a right code :class:`ActivationCodeExpired`
    or :class:`AccountAlreadyActive`.
    """
    normalized = matricule_rules.normalize(matricule)
    config = current_app.config
    throttle_key = credential.matricule_key("activation", normalized)
    claim = lockout.claim_keyed(credential.UnknownLoginThrottle, throttle_key, max_failures=ACTIVATION_MAX_FAILURES,
                                base_seconds=config["ACTIVATION_LOCKOUT_SECONDS"])
    if not claim.allowed:
        raise ActivationLocked(claim.locked_until)
    account = accounts.find_by_matricule(normalized) if matricule_rules.is_valid(normalized) else None
    pending = account is not None and account.status == accounts.AccountStatus.PENDING.value
    letter = current_letter(account) if pending else None
    if letter is not None and _matches(letter, code):
        lockout.clear(credential.UnknownLoginThrottle, credential.UnknownLoginThrottle.key == throttle_key)
        if letter.expires_at <= clock.now():
            raise ActivationCodeExpired()
        return account, letter
    if account is not None and account.is_active and any(_matches(old, code) for old in _redeemed_letters(account)):
        lockout.clear(credential.UnknownLoginThrottle, credential.UnknownLoginThrottle.key == throttle_key)
        raise AccountAlreadyActive()
    audit.record(audit.Event.ACTIVATION_CODE_FAILED, account_id=account.id if pending else None, locked=claim.just_locked)
    if claim.just_locked:
        raise ActivationLocked(claim.locked_until)
    raise ActivationCodeInvalid()


def redeem(letter_id: int) -> None:
    """Consume the letter, if it is still the patient's valid one: one conditional UPDATE.

    Raises :class:`AccountAlreadyActive` when it was redeemed meanwhile (a double submission won
    elsewhere) and :class:`LetterNoLongerValid` when it was voided or expired.
    """
    now = clock.now()
    consumed = db.session.execute(
        update(ActivationLetter)
        .where(ActivationLetter.id == letter_id, ActivationLetter.redeemed_at.is_(None), ActivationLetter.voided_at.is_(None),
               ActivationLetter.expires_at > now)
        .values(redeemed_at=now),
        execution_options={"synchronize_session": False},
    ).rowcount
    if consumed:
        return
    redeemed = db.session.scalar(select(ActivationLetter.redeemed_at).where(ActivationLetter.id == letter_id))
    if redeemed is not None:
        raise AccountAlreadyActive()
    raise LetterNoLongerValid()


letters_cli = AppGroup("letters", help="Activation letters.")


@letters_cli.command("issue")
@click.argument("matricules", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def issue_command(matricules: tuple[str, ...], as_json: bool) -> None:
    """Issue an activation code for each patient (each code is shown once)."""
    issued, problems = [], []
    for value in matricules:
        account = accounts.find_by_matricule(value)
        if account is None:
            problems.append(f"{matricule_rules.mask(value)}: unknown matricule")
            continue
        if account.is_active:
            problems.append(f"{matricule_rules.mask(value)}: account already active")
            continue
        letter, code = issue(account)
        issued.append({"matricule": account.matricule, "activation_code": code, "expires_at": letter.expires_at})
    if problems:
        db.session.rollback()
        for problem in problems:
            click.echo(problem, err=True)
        raise SystemExit(1)
    db.session.commit()
    emit(issued, as_json, lambda rows: "\n".join(f"{r['matricule']} {r['activation_code']} (expires {r['expires_at']:%Y-%m-%d})" for r in rows))


def _pending_accounts(matricules: tuple[str, ...]) -> tuple[list[accounts.Account], list[str]]:
    """The pending accounts of ``matricules``, and one problem line per unknown or active one."""
    found, problems = [], []
    for value in matricules:
        account = accounts.find_by_matricule(value)
        if account is None:
            problems.append(f"{matricule_rules.mask(value)}: unknown matricule")
        elif account.is_active:
            problems.append(f"{matricule_rules.mask(value)}: account already active")
        else:
            found.append(account)
    return found, problems


# In the wizard's order and words (idp/templates/flows/activation/): the CGU first, then its five steps.
LETTER_STEPS = [
    "Rendez-vous sur {portal}, cliquez sur « J'active mon compte », acceptez les Conditions Générales d'Utilisation "
    "et cliquez sur « Activer mon compte ».",
    "Etape 1 – Code d'activation : saisissez votre matricule, répondez « Oui » et entrez le code d'activation ci-dessus, "
    "puis cliquez sur « Etape suivante ».",
    "Etape 2 – Mot de passe : définissez un mot de passe personnel (au minimum 8 caractères, dont au moins un caractère "
    "alphabétique et un caractère numérique), confirmez-le et cliquez sur « Etape suivante ».",
    "Etape 3 – Sécurisation de votre compte : choisissez Mobile ou E-mail pour recevoir votre code à usage unique, "
    "cliquez sur « Valider », rentrez le code reçu et validez.",
    "Etape 4 – Autres moyens d'authentification : si vous le souhaitez (pas obligatoire), associez un produit LuxTrust ; "
    "sinon cliquez sur « Etape suivante ».",
    "Etape 5 – Confirmation : votre activation est terminée ; cliquez sur « Connectez-vous ».",
]


def letters_pdf(letters: list[tuple[accounts.Account, "ActivationLetter", str]]) -> bytes:
    """One A4 page per patient: address block, code in large type, expiry, steps and helpdesk contacts."""
    from fpdf import FPDF  # here, not at the top: fpdf and fontTools take half a second to import

    config = current_app.config
    portal = config["ISSUER"].rstrip("/") + "/activation"
    document = FPDF(format="A4")
    document.set_title("Courriers d'activation eSanté")
    document.set_auto_page_break(False)
    document.add_font("DejaVu", "", str(FONT_DIRECTORY / "DejaVuSans.ttf"))
    document.add_font("DejaVu", "B", str(FONT_DIRECTORY / "DejaVuSans-Bold.ttf"))
    document.add_font("DejaVuMono", "B", str(FONT_DIRECTORY / "DejaVuSansMono-Bold.ttf"))
    for account, letter, code in letters:
        document.add_page()
        document.set_font("DejaVu", "B", 12)
        document.cell(0, 6, "Plateforme eSanté Luxembourg", new_x="LMARGIN", new_y="NEXT")
        # Recipient block where a windowed envelope shows it (right-hand side, about 5 cm from the top).
        document.set_xy(110, 50)
        document.set_font("DejaVu", "", 11)
        recipient = "\n".join([account.display_name, *[line.strip() for line in (account.address or "").replace(",", "\n").splitlines() if line.strip()]])
        document.multi_cell(85, 5.5, recipient, new_x="LMARGIN", new_y="NEXT")
        document.set_y(100)
        document.set_font("DejaVu", "B", 14)
        document.cell(0, 8, "Votre code d'activation", new_x="LMARGIN", new_y="NEXT")
        document.set_font("DejaVu", "", 10)
        # Masked: a misdelivered letter must not carry both halves of the activation (matricule + code).
        document.cell(0, 6, f"Matricule : {matricule_rules.mask(account.matricule)}", new_x="LMARGIN", new_y="NEXT")
        document.ln(4)
        document.set_font("DejaVuMono", "B", 28)
        document.cell(0, 16, code, border=1, align="C", new_x="LMARGIN", new_y="NEXT")
        document.ln(2)
        document.set_font("DejaVu", "", 11)
        document.multi_cell(0, 6, f"Ce code est valable jusqu'au {letter.expires_at:%d/%m/%Y}. Il annule tout code reçu précédemment.",
                            new_x="LMARGIN", new_y="NEXT")
        document.ln(6)
        document.set_font("DejaVu", "B", 12)
        document.cell(0, 7, "J'active mon compte", new_x="LMARGIN", new_y="NEXT")
        document.set_font("DejaVu", "", 11)
        for number, step in enumerate(LETTER_STEPS, start=1):
            document.multi_cell(0, 6, f"{number}. {step.format(portal=portal)}", new_x="LMARGIN", new_y="NEXT")
        document.ln(6)
        document.set_font("DejaVu", "B", 12)
        document.cell(0, 7, "Besoin d'aide ?", new_x="LMARGIN", new_y="NEXT")
        document.set_font("DejaVu", "", 11)
        document.multi_cell(0, 6, f"Helpdesk eSanté : {config['HELPDESK_PHONE']} – {config['HELPDESK_EMAIL']}\n"
                                  "Ne communiquez jamais ce code par téléphone ou par e-mail, même au helpdesk.",
                            new_x="LMARGIN", new_y="NEXT")
    return bytes(document.output())


@letters_cli.command("render")
@click.argument("matricules", nargs=-1, required=True)
@click.option("--output", "output", required=True, type=click.Path(dir_okay=False, writable=True), help="PDF file to write.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def render_command(matricules: tuple[str, ...], output: str, as_json: bool) -> None:
    """Issue a new letter for each pending patient and write them all, ready to print, to one PDF.

    Each new code voids the patient's previous one. If any matricule is unknown or already
    active, nothing is issued and no file is written.
    """
    found, problems = _pending_accounts(matricules)
    if problems:
        db.session.rollback()
        for problem in problems:
            click.echo(problem, err=True)
        raise SystemExit(1)
    letters = [(account, *issue(account)) for account in found]
    try:
        document = letters_pdf(letters)
        with open(output, "wb") as target:
            target.write(document)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    rows = [{"matricule": account.matricule, "activation_code": code, "expires_at": letter.expires_at, "page": page}
            for page, (account, letter, code) in enumerate(letters, start=1)]
    emit(rows, as_json, lambda items: f"{output}: {len(items)} page(s)\n"
         + "\n".join(f"p.{r['page']} {r['matricule']} {r['activation_code']} (expires {r['expires_at']:%Y-%m-%d})" for r in items))
