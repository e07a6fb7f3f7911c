"""Passkeys: WebAuthn Level 3 credentials of patients and admins, and their ceremonies.

The cryptography of each ceremony (client data type, challenge, origin, RP ID hash, user
presence and verification flags, the public key algorithm, attestation statements, the
assertion signature) is checked by py_webauthn (``webauthn``, Duo Labs), a server-only library
whose two calls map one to one on the RP operations of WebAuthn Level 3 §7.1 and §7.2 and which
reports the backup flags (BE, BS) the ``amr`` needs. What it leaves to the relying party is here:

- challenges are server-side rows (:class:`PasskeyChallenge`): random, bound to one purpose (and
  for a registration to one owner), live ``PASSKEY_CHALLENGE_TTL`` seconds, and are claimed by
  one conditional ``UPDATE … RETURNING`` before anything else is looked at: of two posts of the
  same answer, on any instance, one gets it (§13.4.3);
- the RP ID is the issuer's host or ``PASSKEY_RP_ID`` (a parent domain); only the issuer's origin
  (and ``PASSKEY_EXTRA_ORIGINS``) may answer, compared exactly, port included (§7.1 step 9);
- user verification is required at registration and at every login (§7.1 step 15, §7.2 step 17):
  a passkey is then a whole login, possession plus the device's PIN or biometric;
- the user handle is 32 random bytes per patient or admin (:class:`PasskeyUser`), never the
  matricule (§14.6.1), and the answer's ``userHandle`` must name the credential's owner (§7.2
  step 6); credential ids are unique across every owner (§7.1 step 25);
- the signature counter (§6.1.1): an answer whose counter does not move past the stored one
  (when either is not zero) is refused, the credential suspended, the event audited and the
  owner told: a cloned authenticator is the likely cause. The counter moves by a conditional
  UPDATE, so two answers cannot both pass with the same value;
- a credential whose backup eligibility changes is refused (§6.1.3: BE never changes);
- attestation is ``none`` for patients; admins may be held to an allow-list of AAGUIDs, proven
  by an attestation statement chained to a configured root (``ADMIN_PASSKEY_AAGUIDS``).

``amr`` and ``acr`` of a passkey login (docs/security.md §1.4 maps them to eIDAS and NIST AAL):
``hwk`` for a device-bound credential (BE clear: the key cannot leave the authenticator),
``swk`` for a synced one (BE set: the provider copies the key to the holder's other devices),
always with ``user`` and ``mfa`` (RFC 8176 §2: the device verified its holder, possession plus a
PIN or biometric); ``acr`` substantial in both cases, as password + one-time code: the account's
enrolment (a letter by post) caps the level, and only LuxTrust reaches high.

py_webauthn is imported by the ceremony functions when they run: it loads pyOpenSSL, a third of
a second of CPU that every ``idp`` command and worker start would otherwise pay (issue 14 #14).
"""

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import force_locale, gettext as _
from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Integer, LargeBinary, String, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column
from . import account as accounts, audit, clock, messaging
from .assurance import ACR_SUBSTANTIAL
from .extensions import db, upsert_for

REGISTER = "register"
ACTIVATION_REGISTER = "activation_register"
LOGIN = "login"
ADMIN_REGISTER = "admin_register"
ADMIN_LOGIN = "admin_login"
PURPOSES = (REGISTER, ACTIVATION_REGISTER, LOGIN, ADMIN_REGISTER, ADMIN_LOGIN)
NAME_MAX_LENGTH = 64


class PasskeyUser(db.Model):
    """The WebAuthn user handle of one patient or one admin: random, stable, never the matricule."""

    __tablename__ = "passkey_user"
    __table_args__ = (CheckConstraint("(account_id IS NULL) <> (admin_id IS NULL)", name="passkey_user_one_owner"),)

    user_handle: Mapped[str] = mapped_column(String(64), primary_key=True)  # base64url of 32 random bytes
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), unique=True)
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("admin_account.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class PasskeyCredential(db.Model):
    __tablename__ = "passkey_credential"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)  # base64url; at most 1023 bytes (§5.1)
    user_handle: Mapped[str] = mapped_column(ForeignKey("passkey_user.user_handle"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Key
    sign_count: Mapped[int] = mapped_column(BigInteger)  # a 32-bit unsigned counter
    backup_eligible: Mapped[bool] = mapped_column(Boolean)
    backed_up: Mapped[bool] = mapped_column(Boolean)
    aaguid: Mapped[str] = mapped_column(String(36))
    attestation_format: Mapped[str] = mapped_column(String(32))
    transports: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime)  # signature counter went back: possibly cloned

    @property
    def synced(self) -> bool:
        """A multi-device credential (BE set): the passkey provider copies it to its other devices."""
        return self.backup_eligible


class PasskeyChallenge(db.Model):
    __tablename__ = "passkey_challenge"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the challenge
    purpose: Mapped[str] = mapped_column(String(32))
    user_handle: Mapped[str | None] = mapped_column(String(64))  # a registration's owner
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class PasskeyRefused(Exception):
    """A ceremony that does not log in or register; ``reason`` is a short code for the audit trail."""

    reason = "refused"


class ChallengeNotValid(PasskeyRefused):
    """No such challenge for this purpose, already used, or expired: start the ceremony again."""

    reason = "challenge"


class ResponseNotValid(PasskeyRefused):
    """Malformed answer, wrong origin or RP ID, no user verification, bad signature or attestation."""

    reason = "verification"


class CredentialUnknown(PasskeyRefused):
    """No credential with this id (never registered, or deleted since)."""

    reason = "unknown_credential"


class CredentialSuspended(PasskeyRefused):
    """The credential was suspended after its signature counter went back."""

    reason = "suspended"


class CounterWentBack(PasskeyRefused):
    """This answer's signature counter did not move past the stored one: the credential is now suspended."""

    reason = "counter_regression"


class OwnerNotActive(PasskeyRefused):
    reason = "owner_not_active"


class AttestationNotAllowed(PasskeyRefused):
    """An admin's authenticator is not of an allowed model (``ADMIN_PASSKEY_AAGUIDS``)."""

    reason = "attestation"


class TooManyPasskeys(PasskeyRefused):
    reason = "too_many"


class AlreadyRegistered(PasskeyRefused):
    """This authenticator already holds a passkey of this account (or the id is taken)."""

    reason = "already_registered"


@dataclass(frozen=True)
class Owner:
    """Whose passkeys: a patient (``account_id``) or an admin (``admin_id``)."""

    account_id: int | None = None
    admin_id: int | None = None


@dataclass(frozen=True)
class Authenticated:
    """A passkey login that went through: who, with which credential, and how (RFC 8176 ``amr``)."""

    owner: Owner
    credential_id: int
    amr: list[str]
    acr: str


# --- relying party ----------------------------------------------------------------------------


def rp_id() -> str:
    """``PASSKEY_RP_ID``, else the issuer's host (read per request: tests move the issuer)."""
    return (current_app.config.get("PASSKEY_RP_ID") or urlsplit(current_app.config["ISSUER"]).hostname).lower()


def allowed_origins() -> list[str]:
    """The issuer's origin (scheme, host and port, as a browser serialises it) and the extra ones."""
    issuer = urlsplit(current_app.config["ISSUER"])
    return [f"{issuer.scheme}://{issuer.netloc}".lower(), *current_app.config["PASSKEY_EXTRA_ORIGINS"]]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- owners -----------------------------------------------------------------------------------


def _owner_condition(owner: Owner):
    if owner.account_id is not None:
        return PasskeyUser.account_id == owner.account_id
    return PasskeyUser.admin_id == owner.admin_id


def user_handle(owner: Owner) -> str:
    """The owner's user handle, made on first use (32 random bytes, §14.6.1)."""
    found = db.session.scalar(select(PasskeyUser.user_handle).where(_owner_condition(owner)))
    if found is None:  # of two first ceremonies at once (a double click), one inserts; both read its handle
        db.session.execute(upsert_for(PasskeyUser).values(user_handle=_b64(secrets.token_bytes(32)), account_id=owner.account_id,
                                                          admin_id=owner.admin_id, created_at=clock.now()).on_conflict_do_nothing())
        found = db.session.scalar(select(PasskeyUser.user_handle).where(_owner_condition(owner)))
    return found


def existing_user_handle(owner: Owner) -> str | None:
    """The owner's user handle if they ever had a passkey (for the signals of §5.1.10), else None."""
    return db.session.scalar(select(PasskeyUser.user_handle).where(_owner_condition(owner)))


def passkeys_of(owner: Owner) -> list[PasskeyCredential]:
    return list(db.session.scalars(select(PasskeyCredential).join(PasskeyUser).where(_owner_condition(owner))
                                   .order_by(PasskeyCredential.created_at, PasskeyCredential.id)))


def has_passkey(owner: Owner) -> bool:
    return db.session.scalar(select(func.count()).select_from(PasskeyCredential).join(PasskeyUser).where(_owner_condition(owner))) > 0


def get(owner: Owner, passkey_id: int) -> PasskeyCredential | None:
    """One of the owner's passkeys; None for another owner's (the caller answers 404)."""
    return db.session.scalar(select(PasskeyCredential).join(PasskeyUser).where(_owner_condition(owner), PasskeyCredential.id == passkey_id))


def owner_of(credential: PasskeyCredential) -> Owner:
    user = db.session.get(PasskeyUser, credential.user_handle)
    return Owner(account_id=user.account_id, admin_id=user.admin_id)


def _actor_details(owner: Owner) -> dict:
    return {"account_id": owner.account_id} if owner.account_id is not None else {"actor": f"admin_id:{owner.admin_id}"}


# --- challenges -------------------------------------------------------------------------------


def _new_challenge(purpose: str, handle: str | None = None) -> bytes:
    challenge = secrets.token_bytes(32)
    now = clock.now()
    db.session.add(PasskeyChallenge(id=hashlib.sha256(challenge).hexdigest(), purpose=purpose, user_handle=handle, created_at=now,
                                    expires_at=now + timedelta(seconds=current_app.config["PASSKEY_CHALLENGE_TTL"])))
    return challenge


def _claim_challenge(ceremony: str | None, purpose: str) -> tuple[bytes, str | None]:
    """Take the challenge this browser was given, once: ``(challenge, registration owner's handle)``.

    One conditional UPDATE: of simultaneous posts (any instance) one gets the row; the others,
    and any later post, find it used."""
    try:
        challenge = _unb64(ceremony or "")
    except ValueError:
        raise ChallengeNotValid() from None
    now = clock.now()
    claimed = db.session.execute(
        update(PasskeyChallenge)
        .where(PasskeyChallenge.id == hashlib.sha256(challenge).hexdigest(), PasskeyChallenge.purpose == purpose,
               PasskeyChallenge.used_at.is_(None), PasskeyChallenge.expires_at > now)
        .values(used_at=now)
        .returning(PasskeyChallenge.user_handle)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is None or not challenge:
        raise ChallengeNotValid()
    return challenge, claimed.user_handle


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping: challenges past their lifetime can no longer be claimed."""
    deleted = db.session.execute(delete(PasskeyChallenge).where(PasskeyChallenge.expires_at <= now),
                                 execution_options={"synchronize_session": False}).rowcount
    return {"passkey_challenge": deleted or 0}


# --- registration (§7.1) ----------------------------------------------------------------------


def registration_options(owner: Owner, purpose: str, *, user_name: str, display_name: str) -> tuple[str, str]:
    """Options for ``navigator.credentials.create()`` (JSON) and the ceremony id the browser keeps.

    A discoverable credential (resident key required) with user verification required; the
    owner's existing credentials are excluded so one authenticator is not registered twice."""
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers.structs import (AttestationConveyancePreference, AuthenticatorSelectionCriteria, PublicKeyCredentialDescriptor,
                                          ResidentKeyRequirement, UserVerificationRequirement)

    handle = user_handle(owner)
    if len(passkeys_of(owner)) >= current_app.config["PASSKEY_MAX_PER_OWNER"]:
        raise TooManyPasskeys()
    challenge = _new_challenge(purpose, handle)
    attestation = AttestationConveyancePreference.DIRECT if _attestation_required(purpose) else AttestationConveyancePreference.NONE
    options = generate_registration_options(
        rp_id=rp_id(), rp_name=current_app.config["PASSKEY_RP_NAME"], user_id=_unb64(handle), user_name=user_name,
        user_display_name=display_name, challenge=challenge, timeout=current_app.config["PASSKEY_CHALLENGE_TTL"] * 1000,
        attestation=attestation,
        authenticator_selection=AuthenticatorSelectionCriteria(resident_key=ResidentKeyRequirement.REQUIRED,
                                                               user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=_unb64(existing.credential_id)) for existing in passkeys_of(owner)],
    )
    return options_to_json(options), _b64(challenge)


def _attestation_required(purpose: str) -> bool:
    return purpose == ADMIN_REGISTER and bool(current_app.config["ADMIN_PASSKEY_AAGUIDS"])


def finish_registration(owner: Owner, purpose: str, ceremony: str | None, response: str, name: str) -> PasskeyCredential:
    """Check the authenticator's answer to :func:`registration_options` and keep the credential.

    Raises :class:`PasskeyRefused` subclasses; the challenge is spent whatever the outcome (the
    caller commits)."""
    from webauthn import verify_registration_response
    from webauthn.helpers import parse_registration_credential_json
    from webauthn.helpers.exceptions import InvalidJSONStructure, InvalidRegistrationResponse
    from webauthn.helpers.structs import AttestationFormat

    challenge, handle = _claim_challenge(ceremony, purpose)
    if handle is None or handle != user_handle(owner):
        raise ChallengeNotValid()
    try:
        parsed = parse_registration_credential_json(response)
        verified = verify_registration_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=rp_id(), expected_origin=allowed_origins(),
            require_user_verification=True, pem_root_certs_bytes_by_fmt=_attestation_roots() if _attestation_required(purpose) else None,
        )
    except (InvalidRegistrationResponse, InvalidJSONStructure, ValueError, TypeError, KeyError) as error:
        raise ResponseNotValid(str(error)) from None
    if _attestation_required(purpose):
        _check_admin_authenticator(verified)
    if len(passkeys_of(owner)) >= current_app.config["PASSKEY_MAX_PER_OWNER"]:
        raise TooManyPasskeys()
    credential_id = _b64(verified.credential_id)
    if db.session.scalar(select(PasskeyCredential.id).where(PasskeyCredential.credential_id == credential_id)) is not None:
        raise AlreadyRegistered()
    now = clock.now()
    backup_eligible = verified.credential_device_type == "multi_device"
    credential = PasskeyCredential(
        credential_id=credential_id, user_handle=handle, name=clean_name(name), public_key=verified.credential_public_key,
        sign_count=verified.sign_count, backup_eligible=backup_eligible, backed_up=verified.credential_backed_up,
        aaguid=verified.aaguid, attestation_format=AttestationFormat(verified.fmt).value,
        transports=[str(getattr(t, "value", t)) for t in (parsed.response.transports or [])], created_at=now,
    )
    try:
        with db.session.begin_nested():  # the unique credential id: of two owners racing for one id, the second fails here
            db.session.add(credential)
    except IntegrityError:
        raise AlreadyRegistered() from None
    audit.record(audit.Event.PASSKEY_REGISTERED, **_actor_details(owner), passkey_id=credential.id, passkey_name=credential.name, synced=backup_eligible,
                 aaguid=verified.aaguid, purpose=purpose)
    return credential


def _attestation_roots() -> dict:
    from webauthn.helpers.structs import AttestationFormat

    pem = current_app.config["ADMIN_PASSKEY_ATTESTATION_ROOTS"] or ""
    roots = [("-----BEGIN CERTIFICATE-----" + part).encode() for part in pem.split("-----BEGIN CERTIFICATE-----")[1:]]
    return {fmt: roots for fmt in AttestationFormat if fmt != AttestationFormat.NONE}


def _check_admin_authenticator(verified) -> None:
    """An allowed model, proven: a real attestation statement (not ``none``, not self-attestation)
    chained by py_webauthn to a configured root, naming an allowed AAGUID."""
    from webauthn.helpers.structs import AttestationFormat

    allowed = {value.lower() for value in current_app.config["ADMIN_PASSKEY_AAGUIDS"]}
    statement = _attestation_statement(verified.attestation_object)
    if verified.fmt == AttestationFormat.NONE or not statement.get("x5c") or verified.aaguid.lower() not in allowed:
        raise AttestationNotAllowed(verified.aaguid)


def _attestation_statement(attestation_object: bytes) -> dict:
    from webauthn.helpers import parse_cbor

    return parse_cbor(attestation_object).get("attStmt") or {}


def clean_name(name: str) -> str:
    """The patient's name for a passkey ("iPhone de Rita"): trimmed, one line, at most 64 characters."""
    return " ".join((name or "").split())[:NAME_MAX_LENGTH]


# --- authentication (§7.2) --------------------------------------------------------------------


def authentication_options(purpose: str) -> tuple[str, str]:
    """Options for ``navigator.credentials.get()`` without ``allowCredentials`` (discoverable
    credentials: the authenticator offers its passkeys for this RP, also in the autofill)."""
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers.structs import UserVerificationRequirement

    challenge = _new_challenge(purpose)
    options = generate_authentication_options(rp_id=rp_id(), challenge=challenge, timeout=current_app.config["PASSKEY_CHALLENGE_TTL"] * 1000,
                                              user_verification=UserVerificationRequirement.REQUIRED)
    return options_to_json(options), _b64(challenge)


def credential_in_answer(response: str) -> tuple[str | None, str | None]:
    """``(credential id, user handle)`` an answer names, unchecked: what a throttle may count on."""
    try:
        parsed = json.loads(response)
        return str(parsed.get("id") or "")[:1400] or None, str((parsed.get("response") or {}).get("userHandle") or "")[:100] or None
    except (ValueError, AttributeError):
        return None, None


def authenticate(purpose: str, ceremony: str | None, response: str) -> Authenticated:
    """Check an assertion against the challenge this browser was given; raise :class:`PasskeyRefused`.

    The challenge is claimed first, so it is spent whatever the outcome; the caller commits
    either way (a refusal's audit event and a suspension must stay)."""
    from webauthn import verify_authentication_response
    from webauthn.helpers import parse_authentication_credential_json
    from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidJSONStructure

    challenge, _ = _claim_challenge(ceremony, purpose)
    try:
        parsed = parse_authentication_credential_json(response)
    except (InvalidJSONStructure, InvalidAuthenticationResponse, ValueError, TypeError, KeyError) as error:
        raise ResponseNotValid(str(error)) from None
    credential = db.session.scalar(select(PasskeyCredential).where(PasskeyCredential.credential_id == _b64(parsed.raw_id))
                                   .execution_options(populate_existing=True))  # its counter and suspension as stored now
    if credential is None:
        audit.record(audit.Event.PASSKEY_LOGIN_FAILED, reason=CredentialUnknown.reason, purpose=purpose)
        raise CredentialUnknown()
    owner = owner_of(credential)
    if (owner.admin_id is not None) != purpose.startswith("admin"):
        audit.record(audit.Event.PASSKEY_LOGIN_FAILED, reason=CredentialUnknown.reason, purpose=purpose)
        raise CredentialUnknown()  # a patient's passkey does not open the admin pages, nor the reverse
    if parsed.response.user_handle is None or _b64(parsed.response.user_handle) != credential.user_handle:
        raise _refuse(owner, credential, ResponseNotValid("userHandle does not name the credential's owner"), purpose)
    if credential.suspended_at is not None:
        raise _refuse(owner, credential, CredentialSuspended(), purpose)
    try:
        verified = verify_authentication_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=rp_id(), expected_origin=allowed_origins(),
            credential_public_key=credential.public_key, credential_current_sign_count=0,  # the counter rule is ours, below
            require_user_verification=True,
        )
    except (InvalidAuthenticationResponse, ValueError, TypeError, KeyError) as error:
        raise _refuse(owner, credential, ResponseNotValid(str(error)), purpose) from None
    if (verified.credential_device_type == "multi_device") != credential.backup_eligible:
        raise _refuse(owner, credential, ResponseNotValid("backup eligibility changed"), purpose)
    _move_counter(owner, credential, verified.new_sign_count, verified.credential_backed_up, purpose)
    amr = ["swk" if credential.backup_eligible else "hwk", "user", "mfa"]
    return Authenticated(owner=owner, credential_id=credential.id, amr=amr, acr=ACR_SUBSTANTIAL)


def _refuse(owner: Owner, credential: PasskeyCredential, error: PasskeyRefused, purpose: str) -> PasskeyRefused:
    audit.record(audit.Event.PASSKEY_LOGIN_FAILED, **_actor_details(owner), passkey_id=credential.id, reason=error.reason, purpose=purpose)
    return error


def _move_counter(owner: Owner, credential: PasskeyCredential, new_count: int, backed_up: bool, purpose: str) -> None:
    """§6.1.1: the stored counter moves only forward, by one conditional UPDATE; an answer that
    does not move it (both zero excepted: authenticators without a counter) suspends the credential."""
    now = clock.now()
    moved = db.session.execute(
        update(PasskeyCredential)
        .where(PasskeyCredential.id == credential.id, PasskeyCredential.suspended_at.is_(None),
               or_(PasskeyCredential.sign_count < new_count, (PasskeyCredential.sign_count == 0) & (new_count == 0)))
        .values(sign_count=new_count, backed_up=backed_up, last_used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved:
        return
    db.session.execute(update(PasskeyCredential).where(PasskeyCredential.id == credential.id).values(suspended_at=now)
                       .execution_options(synchronize_session=False))
    audit.record(audit.Event.PASSKEY_COUNTER_REGRESSION, **_actor_details(owner), passkey_id=credential.id,
                 stored=credential.sign_count, received=new_count, purpose=purpose)
    if owner.account_id is not None and (account := accounts.get(owner.account_id)) is not None:
        with force_locale(account.locale or current_app.config["LANGUAGES"][0]):
            notice = _("Par sécurité, votre clé d'accès eSanté « %(name)s » est suspendue : elle semble avoir été copiée. Supprimez-la "
                       "dans Mon compte, rubrique Mes clés d'accès, et contactez le helpdesk si vous ne l'avez pas partagée.",
                       name=credential.name)
            for channel in account.channels():
                messaging.notify(channel, account.destination(channel), notice)
    raise CounterWentBack()


# --- managing ---------------------------------------------------------------------------------


def rename(owner: Owner, credential: PasskeyCredential, name: str) -> None:
    credential.name = clean_name(name)
    audit.record(audit.Event.PASSKEY_RENAMED, **_actor_details(owner), passkey_id=credential.id, passkey_name=credential.name)


def remove(owner: Owner, credential: PasskeyCredential, *, actor: str | None = None) -> None:
    """Delete a passkey: it no longer opens anything (its authenticator may still offer it)."""
    details = {**_actor_details(owner), **({"actor": actor} if actor else {})}
    audit.record(audit.Event.PASSKEY_REMOVED, **details, passkey_id=credential.id, passkey_name=credential.name)
    db.session.delete(credential)


def remove_all(owner: Owner, *, actor: str) -> int:
    """The helpdesk's removal of every passkey of a patient (a lost or stolen device); audited, one event each."""
    found = passkeys_of(owner)
    for credential in found:
        remove(owner, credential, actor=actor)
    return len(found)


def tell_patient(account: accounts.Account, name: str, *, added: bool) -> None:
    """A passkey opens the account alone: the patient hears of each one added or removed, on every
    channel and in their language, so that one added from a stolen session does not go unnoticed."""
    with force_locale(account.locale or current_app.config["LANGUAGES"][0]):
        if added:
            notice = _("Une clé d'accès « %(name)s » a été ajoutée à votre compte eSanté : elle permet de vous connecter sans mot de "
                       "passe. Si vous n'êtes pas à l'origine de cet ajout, supprimez-la dans Mon compte, rubrique Mes clés d'accès, "
                       "et contactez le helpdesk.", name=name)
        else:
            notice = _("La clé d'accès « %(name)s » a été retirée de votre compte eSanté. Si vous n'êtes pas à l'origine de ce "
                       "retrait, contactez le helpdesk.", name=name)
        for channel in account.channels():
            messaging.notify(channel, account.destination(channel), notice)
