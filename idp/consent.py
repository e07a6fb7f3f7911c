"""What a patient agreed to share with a relying party; remembered, revocable.

A consent keeps the scopes agreed to and every claim agreed to, one by one: a client reaches a
claim through a scope (``profile`` → ``name``…) or by asking for it alone with the ``claims``
parameter (OpenID Connect Core §5.5), and either way the patient must have agreed to that claim.
Consents given before claims were kept count the claims of their scopes.
"""

from collections.abc import Iterable
from datetime import datetime

from authlib.oauth2.rfc6749 import scope_to_list
from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from . import audit, claims as claim_rules, clock
from .extensions import db


class Consent(db.Model):
    __tablename__ = "consent"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The claims agreed to; None for consents older than this column (their scopes' claims).
    claims: Mapped[list | None] = mapped_column(JSON)

    @property
    def agreed_claims(self) -> set[str]:
        if self.claims is not None:
            return set(self.claims)
        return claim_rules.claims_of_scopes(self.scope)

    @property
    def claims_beyond_scopes(self) -> list[str]:
        """The claims agreed to one by one, that no agreed scope names (for "Services autorisés")."""
        return sorted(self.agreed_claims - claim_rules.claims_of_scopes(self.scope))


def _current(account_id: int, client_id: str) -> Consent | None:
    return db.session.scalar(
        select(Consent).where(Consent.account_id == account_id, Consent.client_id == client_id, Consent.revoked_at.is_(None))
    )


def not_yet_agreed(account_id: int, client_id: str, scope: str, claims: Iterable[str]) -> tuple[list[str], list[str]]:
    """The scopes and the claims of a request the patient has not agreed to (both empty: covered)."""
    found = _current(account_id, client_id)
    agreed_scopes = set(scope_to_list(found.scope) or []) if found else set()
    agreed_claims = found.agreed_claims if found else set()
    return ([name for name in scope_to_list(scope) or [] if name not in agreed_scopes],
            [name for name in dict.fromkeys(claims) if name not in agreed_claims])


def covers(account_id: int, client_id: str, scope: str, claims: Iterable[str] = ()) -> bool:
    scopes, names = not_yet_agreed(account_id, client_id, scope, claims)
    return not scopes and not names


def grant(account_id: int, client_id: str, scope: str, claims: Iterable[str] = ()) -> Consent:
    """Record the patient's agreement to ``scope`` and ``claims``, added to what they agreed to before."""
    found = _current(account_id, client_id)
    now = clock.now()
    claims = list(dict.fromkeys(claims))
    if found:
        found.claims = sorted(found.agreed_claims | set(claims))
        found.scope = " ".join(sorted(set(scope_to_list(found.scope)) | set(scope_to_list(scope))))
        found.granted_at = now
    else:
        found = Consent(account_id=account_id, client_id=client_id, scope=scope, claims=sorted(claims), granted_at=now)
        db.session.add(found)
    audit.record(audit.Event.CONSENT_GRANTED, account_id=account_id, client_id=client_id, scope=scope, claims=sorted(claims) or None)
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
