"""Keys that sign ID tokens, JWT access tokens and logout tokens.

Keys live in the database so every instance signs with and publishes the same set. One active
key per algorithm (RS256 is the OpenID Connect default, ES256 for clients that ask for it);
``idp keys rotate`` retires the active keys and creates new ones. A retired key no longer
signs, but its public half stays in the JWKS until every token it signed has expired.
"""

import json
from datetime import datetime, timedelta
from functools import lru_cache

import click
from flask import current_app
from flask.cli import AppGroup
from joserfc import jwk
from sqlalchemy import JSON, DateTime, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from . import audit, clock
from .cli_output import emit
from .extensions import db


class SigningKey(db.Model):
    __tablename__ = "signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    private_pem: Mapped[str] = mapped_column(Text)
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
    row = SigningKey(kid=kid, alg=alg, private_pem=key.as_pem(private=True).decode(), public_jwk=public, created_at=clock.now())
    db.session.add(row)
    audit.record(audit.Event.SIGNING_KEY_CREATED, actor="system", kid=kid, alg=alg)
    return row


def ensure_keys() -> None:
    """Create an active key for each configured algorithm that has none (first start)."""
    active = {row.alg for row in _active_rows()}
    missing = [alg for alg in current_app.config["SIGNING_ALGORITHMS"] if alg not in active]
    for alg in missing:
        create(alg)
    if missing:
        db.session.commit()


def _active_rows() -> list[SigningKey]:
    return list(db.session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None)).order_by(SigningKey.created_at)))


def active_key(alg: str = "RS256") -> tuple[str, jwk.Key]:
    """The (kid, private key) that signs with ``alg`` now."""
    rows = [row for row in _active_rows() if row.alg == alg]
    if not rows:
        ensure_keys()
        rows = [row for row in _active_rows() if row.alg == alg]
        if not rows:
            raise LookupError(f"no active {alg} signing key")
    row = rows[-1]
    return row.kid, _import_private(row.kid, row.private_pem, row.alg)


@lru_cache(maxsize=32)
def _import_private(kid: str, pem: str, alg: str) -> jwk.Key:
    return jwk.import_key(pem.encode(), "RSA" if alg.startswith("RS") or alg.startswith("PS") else "EC")


def published_keys() -> list[dict]:
    """Public keys for the JWKS endpoint: active ones and retired ones still needed for verification."""
    ensure_keys()
    return [row.public_jwk for row in _published_rows()]


def _published_rows() -> list[SigningKey]:
    now = clock.now()
    rows = db.session.scalars(select(SigningKey).order_by(SigningKey.created_at.desc()))
    return [row for row in rows if row.unpublish_after is None or row.unpublish_after > now]


def verification_keys() -> jwk.KeySet:
    """The published keys, for checking our own tokens (userinfo, introspection, logout): one query,
    and each key parsed once per process (a kid never changes its key)."""
    return jwk.KeySet([_import_public(row.kid, json.dumps(row.public_jwk, sort_keys=True)) for row in _published_rows()])


@lru_cache(maxsize=32)
def _import_public(kid: str, public_jwk: str) -> jwk.Key:
    return jwk.import_key(json.loads(public_jwk))


def rotate(actor: str = "cli") -> list[SigningKey]:
    """Retire every active key and create new ones. Old public keys stay published long enough."""
    config = current_app.config
    longest = max(config["ACCESS_TOKEN_TTL"], config["ID_TOKEN_TTL"], config["SIGNING_KEY_RETENTION"])
    now = clock.now()
    for row in _active_rows():
        row.retired_at = now
        row.unpublish_after = now + timedelta(seconds=longest)
        audit.record(audit.Event.SIGNING_KEY_RETIRED, actor=actor, kid=row.kid)
    created = [create(alg) for alg in config["SIGNING_ALGORITHMS"]]
    db.session.commit()
    return created


keys_cli = AppGroup("keys", help="Token signing keys.")


@keys_cli.command("rotate")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def rotate_command(as_json: bool) -> None:
    """Publish new signing keys; old public keys remain until their tokens expire."""
    created = rotate()
    emit([{"kid": row.kid, "alg": row.alg} for row in created], as_json, lambda rows: "\n".join(f"{r['alg']} {r['kid']}" for r in rows))


@keys_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def list_command(as_json: bool) -> None:
    """List signing keys with their state."""
    rows = db.session.scalars(select(SigningKey).order_by(SigningKey.created_at))
    items = [
        {"kid": r.kid, "alg": r.alg, "created_at": r.created_at, "retired_at": r.retired_at, "unpublish_after": r.unpublish_after}
        for r in rows
    ]
    emit(items, as_json, lambda rows: "\n".join(f"{r['alg']} {r['kid']} {'retired' if r['retired_at'] else 'active'}" for r in rows))
