"""What a patient changes on their own account, with the proofs each change needs.

- A new e-mail or mobile: the current password, then a code sent to the new value; the old
  value is told of the change (so a hijacked session cannot silently take over the account).
- A new password: the current password and a code on the preferred channel.
- A first password, for an account activated through MyGuichet.lu without one: a code on the
  preferred channel (the channel MyGuichet.lu gave, or one verified since).
- A forgotten password: the matricule and a code on the registered channel; the other
  channel, when there is one, is told.
"""

from flask_babel import gettext as _

from . import account as accounts, activation, audit, clock, credential, messaging, one_time_code, sso_session

CONTACT_PURPOSE = "contact_change"
PASSWORD_PURPOSE = "password_change"
PASSWORD_CREATION_PURPOSE = "password_creation"
RECOVERY_PURPOSE = "password_recovery"


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


def start_recovery(matricule: str) -> one_time_code.OneTimeCode | None:
    """Send a code to the account's preferred channel; None (and nothing sent) for unknown or inactive accounts."""
    account = accounts.find_by_matricule(matricule)
    if account is None or not account.is_active or not account.channels():
        audit.record(audit.Event.PASSWORD_RECOVERY_UNKNOWN)
        return None
    channel = account.channels()[0]
    challenge = one_time_code.start(account.id, RECOVERY_PURPOSE, channel, account.destination(channel))
    audit.record(audit.Event.PASSWORD_RECOVERY_STARTED, account_id=account.id, channel=channel)
    return challenge


def finish_recovery(challenge: one_time_code.OneTimeCode, code: str, password: str, confirmation: str) -> accounts.Account:
    account = accounts.get(challenge.account_id)
    failures = credential.new_password_failures(account, password, confirmation)
    if failures:
        raise credential.PasswordTooWeak(failures)
    one_time_code.verify(challenge, code)
    credential.set_password(account, password)
    ended = sso_session.end_all(account.id)
    audit.record(audit.Event.PASSWORD_RESET, account_id=account.id, sessions_ended=ended)
    notice = _("Le mot de passe de votre compte eSanté vient d'être réinitialisé. Si vous n'êtes pas à l'origine de ce changement, contactez immédiatement le helpdesk.")
    for channel in account.channels():
        if channel != challenge.channel:
            messaging.notify(channel, account.destination(channel), notice)
    return account


def set_preferred_channel(account: accounts.Account, channel: str) -> None:
    if channel not in account.channels():
        raise ValueError(channel)
    account.preferred_channel = channel
    account.updated_at = clock.now()
    audit.record(audit.Event.CHANNEL_PREFERENCE_CHANGED, account_id=account.id, channel=channel)

