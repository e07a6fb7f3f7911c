"""What a patient changes on their own account, with the proofs each change needs.

- A new e-mail or mobile: the current password, then a code sent to the new value; the old
  value is told of the change (so a hijacked session cannot silently take over the account).
- A new password: the current password and a code on the preferred channel.
- A first password, for an account activated through MyGuichet.lu without one: a code on the
  preferred channel (the channel MyGuichet.lu gave, or one verified since).
- A forgotten password: the matricule and a code on the registered channel; the other
  channel, when there is one, is told. A matricule without an account answers alike.
- A new Assistant DSP (who then reads the whole record): the password, or for an account
  without one (activated through MyGuichet) a code sent now; the owner is told on every channel.
"""

from flask_babel import gettext as _

from . import account as accounts, activation, audit, clock, credential, matricule as matricule_rules, messaging, one_time_code
from . import delegation as delegations, sso_session, throttle

CONTACT_PURPOSE = "contact_change"
PASSWORD_PURPOSE = "password_change"
PASSWORD_CREATION_PURPOSE = "password_creation"
RECOVERY_PURPOSE = "password_recovery"
ASSISTANT_PURPOSE = "assistant_add"


def start_contact_change(account: accounts.Account, channel: str, value: str, current_password: str) -> one_time_code.OneTimeCode:
    """Check the password, then send a code to the new value. Raises credential/activation errors."""
    credential.verify_password(account, current_password)
    destination = activation.normalize_destination(channel, value)
    return one_time_code.start(account.id, CONTACT_PURPOSE, channel, destination)


def finish_contact_change(account: accounts.Account, challenge: one_time_code.OneTimeCode, code: str) -> None:
    one_time_code.verify(challenge, code)
    old = account.destination(challenge.channel)
    if challenge.channel == accounts.Channel.SMS.value:
        account.mobile = challenge.destination
    else:
        account.email = challenge.destination
    accounts.mark_channel_verified(account, challenge.channel)
    account.updated_at = clock.now()
    audit.record(audit.Event.CONTACT_CHANGED, account_id=account.id, channel=challenge.channel)
    if challenge.channel == accounts.Channel.SMS.value:
        notice = _("Le numéro de mobile de votre compte eSanté vient d'être modifié. Si vous n'êtes pas à l'origine de ce changement, contactez immédiatement le helpdesk.")
    else:
        notice = _("L'adresse e-mail de votre compte eSanté vient d'être modifiée. Si vous n'êtes pas à l'origine de ce changement, contactez immédiatement le helpdesk.")
    messaging.notify(challenge.channel, old, notice)


def start_password_change(account: accounts.Account, current_password: str) -> one_time_code.OneTimeCode:
    """Check the current password and send a code; the new password comes with the code."""
    credential.verify_password(account, current_password)
    channel = account.channels()[0]
    return one_time_code.start(account.id, PASSWORD_PURPOSE, channel, account.destination(channel))


def finish_password_change(account: accounts.Account, challenge: one_time_code.OneTimeCode, code: str, password: str,
                           confirmation: str) -> None:
    failures = credential.new_password_failures(account, password, confirmation)
    if failures:
        raise credential.PasswordTooWeak(failures)
    one_time_code.verify(challenge, code)
    credential.set_password(account, password)
    audit.record(audit.Event.PASSWORD_CHANGED, account_id=account.id)


class AccountHasPassword(Exception):
    """A first password is for accounts without one: the others change theirs with the current one."""


class NoChannel(Exception):
    """No e-mail or mobile to send a code to: only the helpdesk can help."""


def start_password_creation(account: accounts.Account) -> one_time_code.OneTimeCode:
    """Send a code to the preferred channel of an account that has no password yet."""
    if credential.has_password(account):
        raise AccountHasPassword()
    if not account.channels():
        raise NoChannel()
    channel = account.channels()[0]
    return one_time_code.start(account.id, PASSWORD_CREATION_PURPOSE, channel, account.destination(channel))


def finish_password_creation(account: accounts.Account, challenge: one_time_code.OneTimeCode, code: str, password: str,
                             confirmation: str) -> None:
    if credential.has_password(account):
        raise AccountHasPassword()
    failures = credential.new_password_failures(account, password, confirmation)
    if failures:
        raise credential.PasswordTooWeak(failures)
    one_time_code.verify(challenge, code)
    credential.set_password(account, password)
    audit.record(audit.Event.PASSWORD_CREATED, account_id=account.id, channel=challenge.channel)


def start_recovery(matricule: str) -> one_time_code.OneTimeCode:
    """Send a code to the account's preferred channel.

    A matricule without an active account reachable on a channel gets a decoy challenge instead
    (nothing is sent): the same budgets, answers and timing follow, so neither this step nor the
    next tells which matricules have an account (issue 13, medium 5). Raises
    :class:`throttle.Throttled`, :class:`one_time_code.ResendTooSoon`,
    :class:`one_time_code.SendLimitReached` or :class:`messaging.MessageNotSent`.
    """
    normalized = matricule_rules.normalize(matricule)
    throttle.check("RATE_LIMIT_PASSWORD_RESET_PER_ACCOUNT", "recovery", normalized)
    account = accounts.find_by_matricule(normalized)
    if account is None or not account.is_active or not account.channels():
        challenge = one_time_code.start_decoy(one_time_code.matricule_subject(normalized), RECOVERY_PURPOSE)
        audit.record(audit.Event.PASSWORD_RECOVERY_UNKNOWN)
        return challenge
    channel = account.channels()[0]
    challenge = one_time_code.start(account.id, RECOVERY_PURPOSE, channel, account.destination(channel))
    audit.record(audit.Event.PASSWORD_RECOVERY_STARTED, account_id=account.id, channel=channel)
    return challenge


def finish_recovery(challenge: one_time_code.OneTimeCode, code: str, password: str, confirmation: str) -> accounts.Account:
    """Set the new password once the code is right. The rules that name the patient (matricule,
    names) are checked only after the code proved who is asking: before, they would tell anyone
    a matricule's names."""
    failures = credential.general_password_failures(password, confirmation)
    if failures:
        raise credential.PasswordTooWeak(failures)

    def refuse_personal_data() -> None:
        if personal := credential.personal_data_failures(accounts.get(challenge.account_id), password):
            raise credential.PasswordTooWeak(personal)

    one_time_code.verify(challenge, code, before_consume=refuse_personal_data)
    account = accounts.get(challenge.account_id)
    credential.set_password(account, password)
    ended = sso_session.end_all(account.id)
    audit.record(audit.Event.PASSWORD_RESET, account_id=account.id, sessions_ended=ended)
    notice = _("Le mot de passe de votre compte eSanté vient d'être réinitialisé. Si vous n'êtes pas à l'origine de ce changement, contactez immédiatement le helpdesk.")
    for channel in account.channels():
        if channel != challenge.channel:
            messaging.notify(channel, account.destination(channel), notice)
    return account


def start_assistant_confirmation(account: accounts.Account) -> one_time_code.OneTimeCode:
    """For an account without a password: a code on the preferred channel, to confirm adding an assistant."""
    channel = account.channels()[0]
    return one_time_code.start(account.id, ASSISTANT_PURPOSE, channel, account.destination(channel))


def add_assistant(owner: accounts.Account, assistant: accounts.Account, *, password: str | None = None,
                  challenge: one_time_code.OneTimeCode | None = None, code: str | None = None, **details) -> delegations.Delegation:
    """Make ``assistant`` an Assistant DSP of ``owner``'s record once the owner proved it is them
    (closes gap 12 of docs/security.md). ``details`` go to :func:`delegation.grant`, which tells the owner.

    Raises credential errors (a wrong password counts towards the lockout), one_time_code errors,
    and delegation errors; the caller commits on credential and code errors (they count).
    """
    if credential.has_password(owner):
        credential.verify_password(owner, password or "")
    elif challenge is None or challenge.account_id != owner.id or challenge.purpose != ASSISTANT_PURPOSE:
        raise one_time_code.OneTimeCodeExpired()
    else:
        one_time_code.verify(challenge, code or "")
    return delegations.grant(owner, assistant, created_by=owner, **details)


def set_preferred_channel(account: accounts.Account, channel: str) -> None:
    if channel not in account.channels():
        raise ValueError(channel)
    account.preferred_channel = channel
    account.updated_at = clock.now()
    audit.record(audit.Event.CHANNEL_PREFERENCE_CHANGED, account_id=account.id, channel=channel)

