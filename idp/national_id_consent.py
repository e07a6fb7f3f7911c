"""The patient's consent that MyGuichet.lu shares their national identifier with the Agence eSanté.

Given on the page the guide shows after arriving from MyGuichet, kept with its time and the
version of the text consented to, and "révocable à tout moment" in the account settings.
Revoking also unlinks the MyGuichet identity: without the consent MyGuichet may no longer tell
us who the patient is, so that login route stops (password login remains).
"""

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from . import audit, clock, federated_identity
from .extensions import db

# Bump when the wording of the consent changes; acceptances keep the version they were given for.
TEXT_VERSION = "2024-1"
UPSTREAM = "myguichet"


class NationalIdConsent(db.Model):
    __tablename__ = "national_id_consent"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    text_version: Mapped[str] = mapped_column(String(32))
    given_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


def current(account_id: int) -> NationalIdConsent | None:
    """The consent in force, if any."""
    return db.session.scalar(
        select(NationalIdConsent)
        .where(NationalIdConsent.account_id == account_id, NationalIdConsent.revoked_at.is_(None))
        .order_by(NationalIdConsent.id.desc())
        .limit(1)
    )


def give(account_id: int) -> NationalIdConsent:
    if (existing := current(account_id)) is not None and existing.text_version == TEXT_VERSION:
        return existing
    if existing is not None:
        existing.revoked_at = clock.now()  # superseded by consent to the current text
    consent = NationalIdConsent(account_id=account_id, text_version=TEXT_VERSION, given_at=clock.now())
    db.session.add(consent)
    audit.record(audit.Event.NATIONAL_ID_CONSENT_GIVEN, account_id=account_id, text_version=TEXT_VERSION)
    return consent


def revoke(account_id: int) -> bool:
    """Withdraw the consent and unlink MyGuichet; False when there was none to withdraw."""
    consent = current(account_id)
    if consent is None:
        return False
    consent.revoked_at = clock.now()
    federated_identity.unlink_upstream(account_id, UPSTREAM, reason="consent_revoked")
    audit.record(audit.Event.NATIONAL_ID_CONSENT_REVOKED, account_id=account_id, text_version=consent.text_version)
    return True
