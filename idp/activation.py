"""The activation wizard ("J'active mon compte"), as the patient guide lays it out.

Steps: 1 activation code, 2 password, 3 securing the account (one-time-code channel),
4 other means of authentication (optional LuxTrust), 5 confirmation. The wizard's state lives
in the database under a random id that only the patient's browser holds: it survives a
reload, expires after ``ACTIVATION_WIZARD_TTL``, and a step is reachable only once the
previous ones are done. The letter's code is consumed, and the account activated, only when
the wizard completes, in one transaction that a second submission cannot repeat.
"""

import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, delete, update
from sqlalchemy.orm import Mapped, mapped_column

from . import account as accounts, activation_letter, audit, cgu_acceptance, clock, credential, one_time_code
from .extensions import db

STEP_CODE, STEP_PASSWORD, STEP_CHANNEL, STEP_OTHER_MEANS, STEP_DONE = 1, 2, 3, 4, 5
ACTIVATION_PURPOSE = "activation"


class ActivationWizard(db.Model):
    __tablename__ = "activation_wizard"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cgu_version: Mapped[str] = mapped_column(String(32))
    step: Mapped[int] = mapped_column(Integer, default=STEP_CODE)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    letter_id: Mapped[int | None] = mapped_column(Integer)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    channel: Mapped[str | None] = mapped_column(String(8))
    destination: Mapped[str | None] = mapped_column(String(320))
    challenge_id: Mapped[str | None] = mapped_column(String(64))
    channel_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    return_to: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)


class WizardError(Exception):
    pass


class WizardExpired(WizardError):
    pass


class StepNotReached(WizardError):
    """A later step was posted before the earlier ones were done."""


class InvalidDestination(WizardError):
    pass


class ChannelNotVerified(WizardError):
    pass


def start(return_to: str | None = None) -> ActivationWizard:
    """Begin after the CGU were accepted on the first page."""
    now = clock.now()
    wizard = ActivationWizard(
        id=secrets.token_urlsafe(24),
        cgu_version=cgu_acceptance.current_version(),
        step=STEP_CODE,
        channel_verified=False,
        return_to=return_to,
        created_at=now,
        expires_at=now + timedelta(seconds=current_app.config["ACTIVATION_WIZARD_TTL"]),
    )
    db.session.add(wizard)
    return wizard


def get(wizard_id: str | None) -> ActivationWizard | None:
    """The wizard of this browser if it is still usable; raises :class:`WizardExpired`."""
    wizard = db.session.get(ActivationWizard, wizard_id) if wizard_id else None
    if wizard is None:
        return None
    if wizard.completed_at is None and wizard.expires_at <= clock.now():
        raise WizardExpired()
    return wizard


def require_step(wizard: ActivationWizard, step: int) -> None:
    if wizard.completed_at is not None and step != STEP_DONE:
        raise StepNotReached()
    if step > wizard.step:
        raise StepNotReached()


def go_back(wizard: ActivationWizard, step: int) -> None:
    """"Etape précédente": earlier answers stay, later ones must be given again."""
    require_step(wizard, step)
    wizard.step = step
    if step <= STEP_CHANNEL:
        wizard.channel_verified = False
        wizard.challenge_id = None
    if step <= STEP_PASSWORD:
        wizard.password_hash = None


def submit_code(wizard: ActivationWizard, matricule: str, code: str) -> accounts.Account:
    """Step 1. Raises activation_letter errors; the caller commits either way (failures count)."""
    require_step(wizard, STEP_CODE)
    account, letter = activation_letter.check(matricule, code)
    wizard.account_id, wizard.letter_id = account.id, letter.id
    wizard.step = STEP_PASSWORD
    audit.record(audit.Event.ACTIVATION_CODE_ACCEPTED, account_id=account.id)
    return account


def submit_password(wizard: ActivationWizard, password: str, confirmation: str) -> None:
    """Step 2. Raises :class:`credential.PasswordTooWeak` with every failed rule."""
    require_step(wizard, STEP_PASSWORD)
    account = accounts.get(wizard.account_id)
    failures = credential.new_password_failures(account, password, confirmation)
    if failures:
        raise credential.PasswordTooWeak(failures)
    wizard.password_hash = credential.hash_password(password)
    wizard.step = STEP_CHANNEL
    audit.record(audit.Event.ACTIVATION_PASSWORD_SET, account_id=account.id)


def normalize_destination(channel: str, value: str) -> str:
    value = (value or "").strip()
    if channel == accounts.Channel.EMAIL.value:
        local, _, domain = value.partition("@")
        if not local or "." not in domain or " " in value or len(value) > 320:
            raise InvalidDestination()
        return value
    if channel == accounts.Channel.SMS.value:
        number = accounts.normalize_phone(value)
        if number.startswith("6") and len(number) == 9:
            number = "+352" + number  # a Luxembourg mobile typed without the country code
        if not number.startswith("+") or not 8 <= len(number) - 1 <= 15:
            raise InvalidDestination()
        return number
    raise InvalidDestination()


def send_channel_code(wizard: ActivationWizard, channel: str, destination: str) -> None:
    """Step 3: send a code to the number or address the patient gave (proves it works)."""
    require_step(wizard, STEP_CHANNEL)
    value = normalize_destination(channel, destination)
    wizard.channel, wizard.destination, wizard.channel_verified = channel, value, False
    challenge = one_time_code.start(wizard.account_id, ACTIVATION_PURPOSE, channel, value)
    wizard.challenge_id = challenge.id


def resend_channel_code(wizard: ActivationWizard) -> None:
    require_step(wizard, STEP_CHANNEL)
    challenge = one_time_code.get(wizard.challenge_id)
    if challenge is None:
        raise StepNotReached()
    one_time_code.send(challenge)


def verify_channel_code(wizard: ActivationWizard, code: str) -> None:
    """Step 3, second half. Raises one_time_code errors; the caller commits either way."""
    require_step(wizard, STEP_CHANNEL)
    challenge = one_time_code.get(wizard.challenge_id)
    if challenge is None or challenge.account_id != wizard.account_id:
        raise StepNotReached()
    one_time_code.verify(challenge, code)
    wizard.channel_verified = True
    wizard.step = STEP_OTHER_MEANS
    audit.record(audit.Event.ACTIVATION_CHANNEL_VERIFIED, account_id=wizard.account_id, channel=wizard.channel)


def complete(wizard: ActivationWizard) -> accounts.Account:
    """Step 4 → 5: activate the account, consume the letter, record the CGU acceptance.

    The letter is checked again and consumed first (:func:`activation_letter.redeem`): one voided
    by a newer letter, expired or already used since step 1 raises
    :class:`activation_letter.LetterNoLongerValid` and nothing is written. The account then leaves
    ``pending`` through one conditional UPDATE: of two submissions (double click, two tabs) only
    one activates; the other gets :class:`activation_letter.AccountAlreadyActive`.
    """
    require_step(wizard, STEP_OTHER_MEANS)
    if not wizard.channel_verified or not wizard.password_hash:
        raise ChannelNotVerified()
    activation_letter.redeem(wizard.letter_id)
    now = clock.now()
    activated = db.session.execute(
        update(accounts.Account)
        .where(accounts.Account.id == wizard.account_id, accounts.Account.status == accounts.AccountStatus.PENDING.value)
        .values(status=accounts.AccountStatus.ACTIVE.value, activated_at=now, updated_at=now)
    ).rowcount
    if not activated:
        raise activation_letter.AccountAlreadyActive()
    account = accounts.get(wizard.account_id)
    db.session.refresh(account)
    if wizard.channel == accounts.Channel.SMS.value:
        account.mobile = wizard.destination
    else:
        account.email = wizard.destination
    accounts.mark_channel_verified(account, wizard.channel)
    account.preferred_channel = wizard.channel
    credential.set_password_hash(account, wizard.password_hash)
    cgu_acceptance.record(account.id, wizard.cgu_version, "activation")
    wizard.password_hash = None
    wizard.step = STEP_DONE
    wizard.completed_at = now
    audit.record(audit.Event.ACCOUNT_ACTIVATED, account_id=account.id, via="letter", cgu_version=wizard.cgu_version)
    return account


# A wizard past its lifetime still answers "expired" (rather than "unknown") that long.
WIZARD_KEPT_FOR = timedelta(days=1)


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping: wizards expired longer than :data:`WIZARD_KEPT_FOR` ago."""
    deleted = db.session.execute(delete(ActivationWizard).where(ActivationWizard.expires_at <= now - WIZARD_KEPT_FOR),
                                 execution_options={"synchronize_session": False}).rowcount
    return {"activation_wizard": deleted or 0}
