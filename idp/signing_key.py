"""Keys that sign ID tokens, JWT access tokens and logout tokens.

Keys live in the database so every instance signs with and publishes the same set. One active
key per algorithm (RS256 is the OpenID Connect default, ES256 for clients that ask for it);
``idp keys rotate`` creates new keys and retires the active ones. Every worker keeps what it
read of the keys, and the JWKS it served, for SIGNING_KEY_CACHE_SECONDS; so a new key is
published that long before it signs, and the old one signs until then (pre-publication): no
instance ever signs with a key another instance does not publish yet. A retired key no longer
signs, but its public half stays in the JWKS until every token it signed has expired. Private
halves are stored sealed with a key-encryption key (:mod:`idp.key_encryption`); ``idp keys
rewrap`` re-seals them all under the current one.
"""

import json
import time
from datetime import datetime, timedelta
from functools import lru_cache

import click
from flask import current_app
from flask.cli import AppGroup
from joserfc import jwk
from joserfc.errors import InvalidKeyIdError
from sqlalchemy import JSON, DateTime, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from . import admin_account, audit, clock, key_encryption, public_documents
from .cli_output import emit
from .extensions import db


class SigningKey(db.Model):
    __tablename__ = "signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    private_key_sealed: Mapped[str] = mapped_column(Text)
    kek_id: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime)
    unpublish_after: Mapped[datetime | None] = mapped_column(DateTime)


def _generate(alg: str) -> jwk.Key:
    if alg == "RS256":
        return jwk.RSAKey.generate_key(2048, private=True)
    if alg == "ES256":
        return jwk.ECKey.generate_key("P-256", private=True)
    raise ValueError(f"unsupported signing algorithm {alg}")


def create(alg: str) -> SigningKey:
    key = _generate(alg)
    kid = key.thumbprint()
    public = {**key.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}
    row = SigningKey(kid=kid, alg=alg, public_jwk=public, created_at=clock.now())
    row.kek_id, row.private_key_sealed = key_encryption.seal(key.as_pem(private=True), _associated(kid, alg))
    db.session.add(row)
    audit.record(audit.Event.SIGNING_KEY_CREATED, actor="system", kid=kid, alg=alg)
    return row


def ensure_keys() -> None:
    """Create an active key for each configured algorithm that has none (first start).

    Called before every token request: it looks at this worker's cached key list first and
    reads the table only when an algorithm seems to have no key."""
    if all(_signing_candidates(alg) for alg in current_app.config["SIGNING_ALGORITHMS"]):
        return
    active = {row.alg for row in _active_rows()}
    missing = [alg for alg in current_app.config["SIGNING_ALGORITHMS"] if alg not in active]
    for alg in missing:
        create(alg)
    if missing:
        db.session.commit()
        forget_cached_keys()


def _active_rows() -> list[SigningKey]:
    """Keys not retired yet: those of a rotation's last seconds included (``retired_at`` ahead)."""
    condition = SigningKey.retired_at.is_(None) | (SigningKey.retired_at > clock.now())
    return list(db.session.scalars(select(SigningKey).where(condition).order_by(SigningKey.created_at)))


def active_key(alg: str = "RS256") -> tuple[str, jwk.Key]:
    """The (kid, private key) that signs with ``alg`` now (read at most every
    SIGNING_KEY_CACHE_SECONDS: see :func:`_cached`)."""
    rows = _signing_candidates(alg)
    if not rows:
        ensure_keys()
        forget_cached_keys()
        rows = _signing_candidates(alg)
        if not rows:
            raise LookupError(f"no active {alg} signing key")
    # The newest key published for long enough signs; else the oldest (a first key signs at once).
    published_since = clock.now() - timedelta(seconds=current_app.config["SIGNING_KEY_CACHE_SECONDS"])
    kid, alg, kek_id, sealed, _, _ = next((row for row in reversed(rows) if row[4] <= published_since), rows[0])
    return kid, _import_private(kid, alg, kek_id, sealed)


def _signing_candidates(alg: str) -> list[tuple]:
    now = clock.now()
    return [row for row in _cached("active", _load_active) if row[1] == alg and (row[5] is None or row[5] > now)]


def _load_active() -> tuple[list[tuple], None]:
    rows = _active_rows()
    return [(row.kid, row.alg, row.kek_id, row.private_key_sealed, row.created_at, row.retired_at) for row in rows], None


def _cached(name: str, load):
    """What signing and verification read, kept per app (one per server worker) for
    SIGNING_KEY_CACHE_SECONDS: the rows change only at rotation, and reading them was a fifth to a
    third of the token, refresh and userinfo paths. Safe across instances: an instance that still
    signs with a just-retired key for those seconds signs with a published key (rotation keeps
    them published that much longer), and verification reads again on an unknown kid
    (:class:`_VerificationKeys`). Entries also lapse when a cached key's ``unpublish_after`` passes."""
    seconds = current_app.config["SIGNING_KEY_CACHE_SECONDS"]
    cache = current_app.extensions.setdefault("idp_signing_keys", {})
    entry = cache.get(name)
    if seconds and entry and entry[0] > time.monotonic() and (entry[1] is None or entry[1] > clock.now()):
        return entry[2]
    value, lapses_at = load()
    cache[name] = (time.monotonic() + seconds, lapses_at, value)
    return value


def forget_cached_keys() -> None:
    """After a change made here: this worker reads the keys, and builds its JWKS, again."""
    current_app.extensions.get("idp_signing_keys", {}).clear()
    public_documents.forget_copies(current_app)


def _associated(kid: str, alg: str) -> str:
    return f"{kid}|{alg}"


@lru_cache(maxsize=32)
def _import_private(kid: str, alg: str, kek_id: str, sealed: str) -> jwk.Key:
    pem = key_encryption.open_sealed(kek_id, sealed, _associated(kid, alg))
    return jwk.import_key(pem, "RSA" if alg.startswith("RS") or alg.startswith("PS") else "EC")


def rewrap(actor: str = "cli") -> int:
    """Re-seal every private key under the current key-encryption key (after a KEK rotation)."""
    current = key_encryption.current_kek_id()
    rows = list(db.session.scalars(select(SigningKey).where(SigningKey.kek_id != current)))
    for row in rows:
        plaintext = key_encryption.open_sealed(row.kek_id, row.private_key_sealed, _associated(row.kid, row.alg))
        row.kek_id, row.private_key_sealed = key_encryption.seal(plaintext, _associated(row.kid, row.alg))
        audit.record(audit.Event.SIGNING_KEY_REWRAPPED, actor=actor, kid=row.kid, kek_id=row.kek_id)
    db.session.commit()
    forget_cached_keys()
    return len(rows)


def published_keys_until() -> tuple[list[dict], datetime | None]:
    """Public keys for the JWKS endpoint (active ones and retired ones still needed for
    verification), and when the first of them leaves it.

    One query; keys are created only when an algorithm has no active key yet."""
    rows = _published_rows()
    now = clock.now()
    active = {row.alg for row in rows if row.retired_at is None or row.retired_at > now}
    if any(alg not in active for alg in current_app.config["SIGNING_ALGORITHMS"]):
        ensure_keys()
        rows = _published_rows()
    return [row.public_jwk for row in rows], min((row.unpublish_after for row in rows if row.unpublish_after), default=None)


def _published_rows() -> list[SigningKey]:
    now = clock.now()
    rows = db.session.scalars(select(SigningKey).order_by(SigningKey.created_at.desc()))
    return [row for row in rows if row.unpublish_after is None or row.unpublish_after > now]


def verification_keys() -> jwk.KeySet:
    """The published keys, for checking our own tokens (userinfo, introspection, logout): read at
    most every SIGNING_KEY_CACHE_SECONDS, and each key parsed once per process (a kid never
    changes its key)."""
    return _VerificationKeys(_cached("published", _load_published))


def _load_published() -> tuple[list[jwk.Key], datetime | None]:
    rows = _published_rows()
    ends = [row.unpublish_after for row in rows if row.unpublish_after is not None]
    return [_import_public(row.kid, json.dumps(row.public_jwk, sort_keys=True)) for row in rows], min(ends, default=None)


class _VerificationKeys(jwk.KeySet):
    """A kid the cached set does not know may be a key another instance created since: read again."""

    def get_by_kid(self, kid=None, parameters=None):
        try:
            return super().get_by_kid(kid, parameters)
        except InvalidKeyIdError:
            current_app.extensions.get("idp_signing_keys", {}).pop("published", None)
            return jwk.KeySet(_cached("published", _load_published)).get_by_kid(kid, parameters)


@lru_cache(maxsize=32)
def _import_public(kid: str, public_jwk: str) -> jwk.Key:
    return jwk.import_key(json.loads(public_jwk))


def rotate(actor: str = "cli") -> list[SigningKey]:
    """Create new keys and retire the active ones once the new ones are published everywhere.

    The old keys sign for SIGNING_KEY_CACHE_SECONDS more (every worker's JWKS then has the new
    keys) and stay published until the last token they signed has expired, plus those seconds
    again: a worker that read the keys just before the rotation signs with the old key that long."""
    config = current_app.config
    overlap = config["SIGNING_KEY_CACHE_SECONDS"]
    longest = max(config["ACCESS_TOKEN_TTL"], config["ID_TOKEN_TTL"], config["SIGNING_KEY_RETENTION"]) + overlap
    now = clock.now()
    for row in _active_rows():
        row.retired_at = min(row.retired_at or now + timedelta(seconds=overlap), now + timedelta(seconds=overlap))
        row.unpublish_after = row.retired_at + timedelta(seconds=longest)
        audit.record(audit.Event.SIGNING_KEY_RETIRED, actor=actor, kid=row.kid)
    created = [create(alg) for alg in config["SIGNING_ALGORITHMS"]]
    db.session.commit()
    forget_cached_keys()
    return created


keys_cli = AppGroup("keys", help="Token signing keys.")


@keys_cli.command("rotate")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def rotate_command(as_json: bool) -> None:
    """Publish new signing keys; old public keys remain until their tokens expire."""
    created = rotate()
    emit([{"kid": row.kid, "alg": row.alg} for row in created], as_json, lambda rows: "\n".join(f"{r['alg']} {r['kid']}" for r in rows))


@keys_cli.command("rewrap")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def rewrap_command(as_json: bool) -> None:
    """Re-seal the private keys and the admins' TOTP seeds under the first KEY_ENCRYPTION_KEYS secret (KEK rotation)."""
    try:
        count = rewrap()
        seeds = admin_account.rewrap_totp_seeds()
        db.session.commit()
    except key_encryption.KeyEncryptionError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    emit({"rewrapped": count, "totp_seeds_rewrapped": seeds, "kek_id": key_encryption.current_kek_id()}, as_json,
         lambda result: f"{result['rewrapped']} key(s) and {result['totp_seeds_rewrapped']} admin TOTP seed(s) now sealed with {result['kek_id']}")


@keys_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def list_command(as_json: bool) -> None:
    """List signing keys with their state."""
    rows = db.session.scalars(select(SigningKey).order_by(SigningKey.created_at))
    items = [
        {"kid": r.kid, "alg": r.alg, "kek_id": r.kek_id, "created_at": r.created_at, "retired_at": r.retired_at,
         "unpublish_after": r.unpublish_after}
        for r in rows
    ]
    now = clock.now()
    emit(items, as_json, lambda rows: "\n".join(f"{r['alg']} {r['kid']} {'retired' if r['retired_at'] and r['retired_at'] <= now else 'active'}" for r in rows))
