"""What a patient agreed to share with a relying party; remembered, revocable."""

from datetime import datetime

from authlib.oauth2.rfc6749 import scope_to_list
from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from . import audit, clock
from .extensions import db


class Consent(db.Model):
    __tablename__ = "consent"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


def _current(account_id: int, client_id: str) -> Consent | None:
    return db.session.scalar(
        select(Consent).where(Consent.account_id == account_id, Consent.client_id == client_id, Consent.revoked_at.is_(None))
    )


def covers(account_id: int, client_id: str, scope: str) -> bool:
    found = _current(account_id, client_id)
    return bool(found) and set(scope_to_list(scope)) <= set(scope_to_list(found.scope))


def grant(account_id: int, client_id: str, scope: str) -> Consent:
    found = _current(account_id, client_id)
    now = clock.now()
    if found:
        found.scope = " ".join(sorted(set(scope_to_list(found.scope)) | set(scope_to_list(scope))))
        found.granted_at = now
    else:
        found = Consent(account_id=account_id, client_id=client_id, scope=scope, granted_at=now)
        db.session.add(found)
    audit.record(audit.Event.CONSENT_GRANTED, account_id=account_id, client_id=client_id, scope=scope)
    return found


def revoke(account_id: int, client_id: str) -> bool:
    found = _current(account_id, client_id)
    if not found:
        return False
    found.revoked_at = clock.now()
    audit.record(audit.Event.CONSENT_REVOKED, account_id=account_id, client_id=client_id)
    return True


def active_for(account_id: int) -> list[Consent]:
    return list(db.session.scalars(select(Consent).where(Consent.account_id == account_id, Consent.revoked_at.is_(None))))
