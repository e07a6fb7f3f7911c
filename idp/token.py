"""Authorization codes, access tokens (RFC 9068 JWTs), refresh tokens and ID tokens.

Every token issued is recorded: the access token by its ``jti``, the refresh token by its
SHA-256. Tokens issued from one authorization form a *family* (``family_id``): a refresh
rotates within the family, and reuse of a rotated refresh token or of an authorization code
revokes the whole family (RFC 9700 §4.14.2, RFC 6749 §4.1.2).
"""

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from authlib.oauth2.rfc6749 import scope_to_list
from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import JSON, DateTime, Integer, Row, String, Text, Update, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from . import audit, client as clients, clock, delegation as delegations, signing_key
from .subject import session_id_for, subject_for, subject_in
from .account import Account, AccountRow, account_row, account_row_columns
from .database import PreparedStatement
from .client import Client
from .extensions import db


@dataclass
class AuthContext:
    """How and when the end-user authenticated (OpenID Connect Core §2)."""

    auth_time: datetime | None = None
    acr: str | None = None
    amr: list[str] = field(default_factory=list)
    sso_session_id: str | None = None


class AuthorizationCode(db.Model):
    __tablename__ = "authorization_code"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(Integer, index=True)
    # Only when the authorization request carried one: /token then demands the same (RFC 6749 §4.1.3).
    redirect_uri: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(255))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(8))
    claims_request: Mapped[dict | None] = mapped_column(JSON)
    auth_time: Mapped[datetime | None] = mapped_column(DateTime)
    acr: Mapped[str | None] = mapped_column(String(128))
    amr: Mapped[list] = mapped_column(JSON, default=list)
    sso_session_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    # An assistant picked this patient under "Accéder aux autres dossiers patient".
    delegation_id: Mapped[str | None] = mapped_column(String(32))
    # RFC 9449 §10: the code is redeemed only with a DPoP proof by the key with this thumbprint
    # (``dpop_jkt`` of the request, or the key of a proof sent with the pushed request, §10.1).
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))

    # Authlib's AuthorizationCodeMixin and the PKCE extension read these.
    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int | None:
        return clock.to_timestamp(self.auth_time) if self.auth_time else None

    def get_acr(self) -> str | None:
        return self.acr

    def get_amr(self) -> list[str] | None:
        return self.amr or None

    @property
    def context(self) -> AuthContext:
        return AuthContext(self.auth_time, self.acr, list(self.amr or []), self.sso_session_id)


def _refresh_expired(refresh_expires_at: datetime | None) -> bool:
    """A refresh token past its idle lifetime (the family's end is checked where it matters)."""
    return bool(refresh_expires_at) and refresh_expires_at <= clock.now()


class _TokenReading:
    """What Authlib's refresh-token grant and the token checks ask of a token's columns, the same
    for a :class:`Token` entity and a plain row (:class:`ClaimedRefreshToken`)."""

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return _refresh_expired(self.refresh_expires_at)

    @property
    def context(self) -> AuthContext:
        return AuthContext(self.auth_time, self.acr, list(self.amr or []), self.sso_session_id)


class Token(_TokenReading, db.Model):
    __tablename__ = "token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[int | None] = mapped_column(Integer, index=True)
    subject: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(Text)
    grant_type: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    access_expires_at: Mapped[datetime] = mapped_column(DateTime)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    family_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    code_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    auth_time: Mapped[datetime | None] = mapped_column(DateTime)
    acr: Mapped[str | None] = mapped_column(String(128))
    amr: Mapped[list] = mapped_column(JSON, default=list)
    sso_session_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Issued to an assistant acting for the patient ``account_id`` (RFC 8693 ``act``): revoked
    # with the delegation, and refused as soon as the delegation is no longer in force.
    delegation_id: Mapped[str | None] = mapped_column(String(32), index=True)
    actor_account_id: Mapped[int | None] = mapped_column(Integer)
    # RFC 9449: the access token (and, for public clients, the refresh token) is bound to this
    # JWK thumbprint; presenting it needs a DPoP proof signed by that key.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    # The resource server (its audience URI) the access token is for; its ``sub`` is chosen for it.
    resource_audience: Mapped[str | None] = mapped_column(String(500))

    def is_revoked(self) -> bool:
        return self.revoked_at is not None


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- authorization codes -------------------------------------------------------------------


def save_authorization_code(code: str, *, client: Client, account: Account, redirect_uri: str | None, scope: str,
                            nonce: str | None, code_challenge: str | None, code_challenge_method: str | None,
                            claims_request: dict | None, context: AuthContext,
                            delegation_id: str | None = None, dpop_jkt: str | None = None) -> AuthorizationCode:
    now = clock.now()
    row = AuthorizationCode(
        code_hash=digest(code),
        client_id=client.client_id,
        account_id=account.id,
        redirect_uri=redirect_uri,
        scope=scope,
        nonce=nonce,
        code_challenge=code_challenge,
        code_challenge_method=code_challenge_method,
        claims_request=claims_request,
        auth_time=context.auth_time,
        acr=context.acr,
        amr=context.amr,
        sso_session_id=context.sso_session_id,
        delegation_id=delegation_id,
        dpop_jkt=dpop_jkt,
        created_at=now,
        expires_at=now + timedelta(seconds=current_app.config["AUTHORIZATION_CODE_TTL"]),
    )
    db.session.add(row)
    audit.record(audit.Event.AUTHORIZATION_CODE_ISSUED, account_id=account.id, client_id=client.client_id, scope=scope,
                 amr=list(context.amr or []))  # the trail says how the patient logged in to the service
    return row


# One statement on the usual path: claim the code for this client and read it back.
_CLAIM_CODE = (
    update(AuthorizationCode)
    .where(AuthorizationCode.code_hash == bindparam("presented_hash"), AuthorizationCode.client_id == bindparam("claiming_client"),
           AuthorizationCode.used_at.is_(None))
    .values(used_at=bindparam("claimed_at"))
    .returning(AuthorizationCode)
)


def redeem_authorization_code(code: str, client: Client) -> AuthorizationCode | None:
    """Claim a code for ``client`` exactly once. A second use revokes what the first one got.

    The claim is one conditional UPDATE, so of two concurrent redemptions only one wins; a code
    presented by another client is left as it is.
    """
    code_hash = digest(code)
    now = clock.now()
    row = db.session.scalar(_CLAIM_CODE, {"presented_hash": code_hash, "claiming_client": client.client_id, "claimed_at": now},
                            execution_options={"synchronize_session": False, "populate_existing": True})
    if row is None:
        seen = db.session.get(AuthorizationCode, code_hash)
        if seen is not None and seen.client_id == client.client_id:  # used before: a replay
            revoked = _revoke_where(Token.code_hash == code_hash)
            audit.record(audit.Event.AUTHORIZATION_CODE_REUSED, account_id=seen.account_id, client_id=client.client_id, revoked_tokens=revoked)
            db.session.commit()
        return None
    if row.expires_at <= now:
        db.session.commit()
        return None
    return row


_CODE_WITH_NONCE = (
    select(AuthorizationCode.code_hash)
    .where(AuthorizationCode.client_id == bindparam("client_id"), AuthorizationCode.nonce == bindparam("nonce"))
    .limit(1)
)


def nonce_was_used(client_id: str, nonce: str) -> bool:
    """A nonce seen before for this client is a replay (OpenID Connect Core §15.5.2)."""
    return db.session.scalar(_CODE_WITH_NONCE, {"client_id": client_id, "nonce": nonce}) is not None


# --- issuing -------------------------------------------------------------------------------


def issue(client: Client, account: Account | AccountRow | None, scope: str, *, grant_type: str, context: AuthContext | None = None,
          family: "Token | ClaimedRefreshToken | None" = None, code_hash: str | None = None, include_refresh_token: bool = False,
          delegation: "delegations.Delegation | None" = None, audience: str | None = None,
          actors: dict | None = None, dpop_jkt: str | None = None) -> tuple[dict, str]:
    """Issue an access token (and a refresh token when asked) and record them; returns the token
    response and the access token's ``jti``.

    With ``delegation``, ``account`` is its owner and the token says who acts (RFC 8693 §4.1
    ``act``); the patient's own tokens name their assistants in ``may_act`` (§4.4). A caller
    that puts the same claims in an ID token passes them in ``actors`` (:func:`actor_claims`).
    With ``dpop_jkt`` (the thumbprint of the key the request proved) the tokens are bound to that
    key (RFC 9449 §6.1): ``cnf.jkt`` in the access token, token type ``DPoP``.

    An access token for a resource server (:func:`resource_audience_of`) names the patient, and
    in ``act``/``may_act`` the assistants, as that resource server knows them (RFC 9068 §6); the
    ``actors`` given for the ID token then do not apply to it.
    """
    config = current_app.config
    now = clock.now()
    context = context or AuthContext()
    resource_audience = resource_audience_of(client, audience)
    subject = subject_in(account, client, resource_audience) if account else client.client_id
    if actors is not None and resource_audience is None:
        extra_claims = dict(actors)
    else:
        extra_claims = actor_claims(account, client, delegation, resource_audience)
    if dpop_jkt:
        extra_claims["cnf"] = {"jkt": dpop_jkt}  # RFC 9449 §6.1
    jti = secrets.token_urlsafe(24)
    access_ttl = config["ACCESS_TOKEN_TTL"]
    row = {
        "jti": jti,
        "family_id": family.family_id if family else secrets.token_urlsafe(24),
        "client_id": client.client_id,
        "account_id": account.id if account else None,
        "subject": subject,
        "scope": scope,
        "grant_type": grant_type,
        "issued_at": now,
        "access_expires_at": now + timedelta(seconds=access_ttl),
        "refresh_token_hash": None,
        "refresh_expires_at": None,
        "family_expires_at": None,
        "code_hash": code_hash or (family.code_hash if family else None),
        "auth_time": context.auth_time,
        "acr": context.acr,
        "amr": context.amr,
        "sso_session_id": context.sso_session_id,
        "delegation_id": delegation.id if delegation else None,
        "actor_account_id": delegation.assistant_id if delegation else None,
        "dpop_jkt": dpop_jkt,
        "resource_audience": resource_audience,
    }
    response = {
        "access_token": encode_access_token(client, subject, scope, jti, now, access_ttl, context, extra_claims, audience),
        "token_type": "DPoP" if dpop_jkt else "Bearer",
        "expires_in": access_ttl,
    }
    if scope:  # RFC 6749 §3.3: a scope is one or more scope-tokens; none granted, no member
        response["scope"] = scope
    if include_refresh_token and account is not None:
        refresh_token = secrets.token_urlsafe(32)
        family_expires_at = family.family_expires_at if family else now + timedelta(seconds=config["REFRESH_TOKEN_ABSOLUTE_TTL"])
        row["refresh_token_hash"] = digest(refresh_token)
        row["family_expires_at"] = family_expires_at
        row["refresh_expires_at"] = min(now + timedelta(seconds=config["REFRESH_TOKEN_IDLE_TTL"]), family_expires_at)
        response["refresh_token"] = refresh_token
    # The token's row and its audit event in one statement (no ORM unit of work: issue 15).
    if delegation is not None:
        # The owner's trail shows which client got a token for their record, for which assistant, when.
        audit.insert_with(_INSERT_TOKEN, row, audit.Event.DELEGATED_TOKEN_ISSUED, account_id=row["account_id"],
                          client_id=client.client_id, actor=f"account:{delegation.assistant_id}", assistant_id=delegation.assistant_id,
                          delegation_id=delegation.id, grant_type=grant_type, scope=scope, refreshed=family is not None)
    else:
        audit.insert_with(_INSERT_TOKEN, row, audit.Event.TOKEN_REFRESHED if family else audit.Event.TOKEN_ISSUED,
                          account_id=row["account_id"], client_id=client.client_id, grant_type=grant_type, scope=scope)
    return response, jti


_INSERT_TOKEN = insert(Token.__table__).inline().values({column.name: bindparam(column.name, type_=column.type)
                                                for column in Token.__table__.columns if column.name not in ("id", "rotated_at", "revoked_at")})


def actor_claims(account: Account | AccountRow | None, client: Client, delegation: "delegations.Delegation | None",
                 resource_audience: str | None = None) -> dict:
    """``act`` when an assistant acts (RFC 8693 §4.1), else ``may_act`` naming the patient's
    assistants (§4.4); nothing for a client's own token. One query: callers reuse the result.
    Subjects as the resource server of ``resource_audience`` knows them, else as ``client`` does."""
    if delegation is not None:
        return {"act": actor_claim(delegation, client, resource_audience)}
    may_act = delegations.may_act(account, client, resource_audience) if account is not None else None
    return {"may_act": may_act} if may_act else {}


def actor_claim(delegation: "delegations.Delegation", client: Client, resource_audience: str | None = None) -> dict:
    """RFC 8693 §4.1 ``act``: the assistant, with the ``sub`` the token's reader knows them by."""
    return {"sub": subject_in(delegation.assistant, client, resource_audience)}


def access_token_audience(client: Client) -> list[str] | str:
    audiences = [current_app.config["ISSUER"], *(client.extra_metadata or {}).get("access_token_audiences", [])]
    return audiences if len(audiences) > 1 else audiences[0]


def resource_audience_of(client: Client, audience: str | None = None) -> str | None:
    """The resource server (its audience URI) a token ``client`` gets is for: the ``audience``
    asked (RFC 8693 §2.1), else the one registered for the client; None when the token is for
    the provider alone (userinfo). A client addresses at most one resource server."""
    if audience is not None:
        return None if audience == current_app.config["ISSUER"] else audience
    registered = (client.extra_metadata or {}).get("access_token_audiences", [])
    return registered[0] if registered else None


def encode_access_token(client: Client, subject: str, scope: str, jti: str, now: datetime, ttl: int, context: AuthContext,
                        extra_claims: dict | None = None, audience: str | None = None) -> str:
    """An RFC 9068 access token: ``typ: at+jwt``, signed with the server's RS256 key, or the
    algorithm of the client's ``access_token_signed_response_alg`` (this server's metadata name)."""
    alg = (client.extra_metadata or {}).get("access_token_signed_response_alg", "RS256")
    kid, key = signing_key.active_key(alg)
    issued = clock.to_timestamp(now)
    claims = {
        "iss": current_app.config["ISSUER"],
        "sub": subject,
        "aud": audience or access_token_audience(client),
        "client_id": client.client_id,
        "iat": issued,
        "exp": issued + ttl,
        "jti": jti,
    }
    if scope:  # RFC 9068 §2.2.3 refers to RFC 8693 §4.2: one or more scope-tokens, else no claim
        claims["scope"] = scope
    if context.auth_time:
        claims["auth_time"] = clock.to_timestamp(context.auth_time)
    if context.acr:
        claims["acr"] = context.acr
    if context.amr:
        claims["amr"] = context.amr
    claims.update(extra_claims or {})
    return jwt.encode({"typ": "at+jwt", "alg": alg, "kid": kid}, claims, key)


def encode_id_token(client: Client, account: Account | AccountRow, claims: dict, *, nonce: str | None, context: AuthContext,
                    access_token: str | None) -> str:
    """An ID token (OpenID Connect Core §2) signed with the client's chosen algorithm."""
    alg = (client.extra_metadata or {}).get("id_token_signed_response_alg", "RS256")
    kid, key = signing_key.active_key(alg)
    now = clock.timestamp()
    payload = {
        "iss": current_app.config["ISSUER"],
        "sub": subject_for(account, client),
        "aud": client.client_id,
        "azp": client.client_id,
        "iat": now,
        "exp": now + current_app.config["ID_TOKEN_TTL"],
    }
    if context.auth_time:
        payload["auth_time"] = clock.to_timestamp(context.auth_time)
    if context.acr:
        payload["acr"] = context.acr
    if context.amr:
        payload["amr"] = context.amr
    if context.sso_session_id:
        payload["sid"] = session_id_for(context.sso_session_id, client)
    if nonce:
        payload["nonce"] = nonce
    if access_token:
        payload["at_hash"] = half_hash(access_token, alg)
    payload.update({k: v for k, v in claims.items() if k not in payload})
    return jwt.encode({"typ": "JWT", "alg": alg, "kid": kid}, payload, key)


def half_hash(value: str, alg: str) -> str:
    """``at_hash``: left half of the SHA-256 of the token, base64url (Core §3.1.3.6)."""
    digest_bytes = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest_bytes[: len(digest_bytes) // 2]).rstrip(b"=").decode()


# --- reading and revoking ------------------------------------------------------------------


class _ExpiredAllowed(jwt.JWTClaimsRegistry):
    def validate_exp(self, value: int) -> None:
        """An ``id_token_hint`` may have expired (OpenID Connect Core §3.1.2.1)."""


def _decode_own(value: str, allow_expired: bool) -> "jwt.Token | None":
    try:
        decoded = jwt.decode(value, signing_key.verification_keys(), algorithms=["RS256", "ES256"])
        registry = _ExpiredAllowed if allow_expired else jwt.JWTClaimsRegistry
        registry(now=clock.timestamp(), leeway=0, iss={"essential": True, "value": current_app.config["ISSUER"]}).validate(decoded.claims)
    except (JoseError, ValueError, TypeError):
        return None
    return decoded


def decode_own_jwt(value: str, allow_expired: bool = False) -> dict | None:
    """Claims of a JWT this server signed (signature, issuer and, unless allowed, expiry checked)."""
    decoded = _decode_own(value, allow_expired)
    return decoded.claims if decoded is not None else None


def decode_id_token_hint(value: str) -> dict | None:
    """Claims of an ID token this server issued, expired or not (Core §3.1.2.1, RP-Initiated Logout
    §2); None for anything else it signed: an access token (``typ`` at+jwt, RFC 9068 §2.1, whose
    ``aud`` may be a list) or a logout token (``typ`` logout+jwt)."""
    decoded = _decode_own(value, allow_expired=True)
    if decoded is None or decoded.header.get("typ") != "JWT":
        return None
    claims = decoded.claims
    return claims if isinstance(claims.get("aud"), str) and isinstance(claims.get("sub"), str) else None


# The hot paths' statements, built once: building a select and its cache key on every request
# cost as much as running it.
_TOKEN_BY_JTI = select(Token).where(Token.jti == bindparam("jti"))
_TOKEN_BY_REFRESH_HASH = select(Token).where(Token.refresh_token_hash == bindparam("refresh_token_hash"))


def find_access_token(value: str) -> Token | None:
    """The record of a valid, unrevoked access token (signature, expiry and revocation checked)."""
    jti = _access_token_jti(value)
    row = db.session.scalar(_TOKEN_BY_JTI, {"jti": jti}) if jti else None
    return row if row is not None and _in_force(row) else None


@dataclass
class AccessTokenUse:
    """A valid access token's columns with what a protected resource needs beside it, as plain
    rows read in one statement (no ORM entity: issue 15)."""

    token: Row  # the columns of ``_TOKEN_USE_BY_JTI``: scope, dpop_jkt, auth_time, actor_account_id...
    account: AccountRow | None  # None: a client's own token, or the account is gone
    client: Client | None  # None: the client was disabled or removed since
    claims_request: dict | None  # the ``claims`` parameter of the authorization (Core §5.5)


_TOKEN_USE_BY_JTI = PreparedStatement(
    select(Token.scope, Token.dpop_jkt, Token.client_id, Token.auth_time, Token.actor_account_id, Token.revoked_at,
           Token.access_expires_at, Token.delegation_id, *account_row_columns("patient_"), AuthorizationCode.claims_request)
    .outerjoin(Account, Account.id == Token.account_id)
    .outerjoin(AuthorizationCode, AuthorizationCode.code_hash == Token.code_hash)
    .where(Token.jti == bindparam("jti"))
)


def use_access_token(value: str) -> AccessTokenUse | None:
    """:func:`find_access_token` with the account and the claims request read in the same
    statement, the client from this worker's cache (``client.get_for_protocol``): userinfo and
    the JSON API answer after one round trip and no ORM load."""
    jti = _access_token_jti(value)
    if jti is None:
        return None
    row = _TOKEN_USE_BY_JTI.first({"jti": jti})
    if row is None or not _in_force(row):
        return None
    account = account_row(row, "patient_") if row.patient_id is not None else None
    return AccessTokenUse(row, account, clients.get_for_protocol(row.client_id), row.claims_request)


def _access_token_jti(value: str) -> str | None:
    if not value or value.count(".") != 2:
        return None
    claims = decode_own_jwt(value)
    return claims.get("jti") if claims else None


def _in_force(row: Row | Token) -> bool:
    """Unrevoked, unexpired, and for an assistant's token its delegation still in force."""
    live = row.revoked_at is None and row.access_expires_at > clock.now()
    return live and (row.delegation_id is None or delegations.in_force(row.delegation_id))


def find_refresh_token(value: str) -> Token | None:
    if not value:
        return None
    return db.session.scalar(_TOKEN_BY_REFRESH_HASH, {"refresh_token_hash": digest(value)})


@dataclass(frozen=True)
class ClaimedRefreshToken(_TokenReading):
    """A refresh token taken for this request (rotated or kept), read back by the claiming
    statement itself with its patient, and whether they have assistants (``may_act`` is read
    only then): a plain row, no ORM entity (issue 15)."""

    family_id: str
    client_id: str
    account_id: int
    scope: str
    code_hash: str | None
    refresh_expires_at: datetime | None
    family_expires_at: datetime | None
    auth_time: datetime | None
    acr: str | None
    amr: list | None
    sso_session_id: str | None
    delegation_id: str | None
    dpop_jkt: str | None
    account: AccountRow | None  # None: the account row is gone
    may_have_assistants: bool


_CLAIMED_COLUMNS = [getattr(Token, name) for name in ClaimedRefreshToken.__dataclass_fields__
                    if name not in ("account", "may_have_assistants")]


def _with_patient(change: Update) -> dict[str, PreparedStatement]:
    """``change`` (an UPDATE of one refresh token) returning the token's columns, its patient's
    (:class:`AccountRow`) and whether they may have assistants, in the same statement: on
    PostgreSQL joined (``UPDATE … FROM account``), elsewhere as scalar subqueries (SQLite's
    ``RETURNING`` may not name a joined table, and its statements cost no round trip anyway)."""
    assistants = delegations.may_have_assistants(Token.account_id).label("may_have_assistants")
    return {
        "postgresql": PreparedStatement(change.where(Account.id == Token.account_id)
                                        .returning(*_CLAIMED_COLUMNS, *account_row_columns("patient_"), assistants)),
        "other": PreparedStatement(change.returning(*_CLAIMED_COLUMNS, *account_row_columns("patient_", of_id=Token.account_id),
                                                    assistants)),
    }


def _claimed(statements: dict[str, PreparedStatement], parameters: dict) -> ClaimedRefreshToken | None:
    statement = statements.get(db.session.get_bind().dialect.name, statements["other"])
    row = statement.first(parameters)
    if row is None:
        return None
    values = {name: row._mapping[name] for name in ClaimedRefreshToken.__dataclass_fields__ if name != "account"}
    return ClaimedRefreshToken(**values, account=account_row(row, "patient_") if row.patient_id is not None else None)


# One statement on the usual path: claim the token for this rotation and read it back with its patient.
_CLAIM_REFRESH_TOKEN = _with_patient(
    update(Token)
    .where(Token.refresh_token_hash == bindparam("presented_hash"), Token.rotated_at.is_(None), Token.revoked_at.is_(None))
    .values(rotated_at=bindparam("claimed_at"))
)


def claim_refresh_token(value: str) -> ClaimedRefreshToken | None:
    """Take a refresh token for one rotation. Reuse of a rotated token revokes its family.

    The claim is one conditional UPDATE, so of two concurrent refreshes only one wins."""
    if not value:
        return None
    now = clock.now()
    row = _claimed(_CLAIM_REFRESH_TOKEN, {"presented_hash": digest(value), "claimed_at": now})
    if row is None:
        seen = find_refresh_token(value)
        if seen is not None and seen.revoked_at is None and seen.rotated_at is not None:
            revoked = revoke_family(seen.family_id)
            audit.record(audit.Event.REFRESH_TOKEN_REUSED, account_id=seen.account_id, client_id=seen.client_id, revoked_tokens=revoked)
            db.session.commit()
        return None
    if row.is_expired() or (row.family_expires_at and row.family_expires_at <= now):
        db.session.commit()
        return None
    return row


_KEEP_REFRESH_TOKEN = _with_patient(
    update(Token)
    .where(Token.refresh_token_hash == bindparam("presented_hash"), Token.rotated_at.is_(None), Token.revoked_at.is_(None),
           Token.refresh_expires_at > bindparam("now", type_=DateTime()),
           or_(Token.family_expires_at.is_(None), Token.family_expires_at > bindparam("now", type_=DateTime())))
    .values(refresh_expires_at=case((Token.family_expires_at < bindparam("idle_end", type_=DateTime()), Token.family_expires_at),
                                    else_=bindparam("idle_end", type_=DateTime())))
)


def reuse_refresh_token(value: str) -> ClaimedRefreshToken | None:
    """A refresh token used again as it is, for a client that does not rotate them (FAPI 2.0
    §5.3.2.1): live, unrotated and unexpired, its idle lifetime counted again from now, never
    past the family's end. One conditional UPDATE, like :func:`claim_refresh_token`."""
    if not value:
        return None
    now = clock.now()
    idle_end = now + timedelta(seconds=current_app.config["REFRESH_TOKEN_IDLE_TTL"])
    return _claimed(_KEEP_REFRESH_TOKEN, {"presented_hash": digest(value), "now": now, "idle_end": idle_end})


# --- what the patient sees of their tokens --------------------------------------------------


@dataclass
class ConnectedApplication:
    """One refresh-token family the patient can still be reached through: an app on a phone, a
    service that works "hors connexion". Rotation replaces the token, never the family."""

    family_id: str
    client_id: str
    name: str
    connected_at: datetime  # the family's first token: when the patient logged in to the app
    last_used_at: datetime  # the family's last token: the last refresh (rotated or not), or the login itself
    for_patient: str | None  # an assistant's token for another patient's record: that patient


def _held_by(account_id: int):
    """Refresh tokens the patient holds: their own, and those they hold as an assistant for
    someone else's record (the owner withdraws the latter by removing the assistant)."""
    own = (Token.account_id == account_id) & Token.delegation_id.is_(None)
    as_assistant = (Token.actor_account_id == account_id) & Token.delegation_id.is_not(None)
    return or_(own, as_assistant)


def connected_applications(account_id: int) -> list[ConnectedApplication]:
    """The patient's live refresh tokens, one per family, most recently used first (ASVS 5.0 §10.4.9)."""
    now = clock.now()
    live = list(db.session.scalars(select(Token).where(
        _held_by(account_id), Token.refresh_token_hash.is_not(None), Token.rotated_at.is_(None), Token.revoked_at.is_(None),
        Token.refresh_expires_at > now, or_(Token.family_expires_at.is_(None), Token.family_expires_at > now),
    )))
    if not live:
        return []
    issued = {family_id: (first, last) for family_id, first, last in db.session.execute(
        select(Token.family_id, func.min(Token.issued_at), func.max(Token.issued_at))
        .where(Token.family_id.in_({row.family_id for row in live})).group_by(Token.family_id)
    ).all()}
    names = dict(db.session.execute(select(Client.client_id, Client.name).where(Client.client_id.in_({row.client_id for row in live}))).all())
    found: dict[str, ConnectedApplication] = {}
    for row in live:
        owner = db.session.get(Account, row.account_id) if row.delegation_id and row.account_id != account_id else None
        item = ConnectedApplication(
            family_id=row.family_id, client_id=row.client_id, name=names.get(row.client_id, row.client_id),
            connected_at=issued[row.family_id][0], last_used_at=issued[row.family_id][1],
            for_patient=delegations.masked_name(owner) if owner else None,
        )
        if row.family_id not in found or found[row.family_id].last_used_at < item.last_used_at:
            found[row.family_id] = item
    return sorted(found.values(), key=lambda item: item.last_used_at, reverse=True)


def patients_clients_of_sessions(sso_session_ids: list[str]) -> list[tuple[str, str, int]]:
    """(session, client, patient) for each client that got a patient's token in these sessions:
    whom to tell when they end (OpenID Connect Back-Channel Logout §2.7)."""
    return [tuple(row) for row in db.session.execute(
        select(Token.sso_session_id, Token.client_id, Token.account_id)
        .where(Token.sso_session_id.in_(sso_session_ids), Token.account_id.is_not(None))
        .distinct()
    ).all()]


def client_of_family_held_by(family_id: str, account_id: int) -> str | None:
    """The client of a token family the patient holds (:func:`connected_applications`), else None."""
    return db.session.scalar(select(Token.client_id).where(Token.family_id == family_id, _held_by(account_id)).limit(1))


def _revoke_where(condition) -> int:
    return db.session.execute(update(Token).where(condition, Token.revoked_at.is_(None)).values(revoked_at=clock.now())).rowcount or 0


def revoke_family(family_id: str) -> int:
    """Every token of one authorization (RFC 7009 §2.1, RFC 9700 §4.14.2)."""
    return _revoke_where(Token.family_id == family_id)


def revoke_for_client(account_id: int, client_id: str) -> int:
    """Consent withdrawn: every token the client holds for the patient stops working."""
    return _revoke_where((Token.account_id == account_id) & (Token.client_id == client_id))


def revoke_access_tokens_of_session(sso_session_id: str) -> int:
    """Logout (RP-Initiated Logout §2): the session's access tokens end; refresh tokens, given
    for access "hors connexion" (``offline_access``), outlive it."""
    return _revoke_where((Token.sso_session_id == sso_session_id) & Token.refresh_token_hash.is_(None))


def revoke_for_account(account_id: int) -> int:
    """A suspended account: its own tokens, and those it holds as an assistant for others."""
    return _revoke_where((Token.account_id == account_id) | (Token.actor_account_id == account_id))


@delegations.ended.connect
def revoke_for_delegation(delegation: "delegations.Delegation") -> int:
    """A delegation ended: every token and refresh token issued under it stops working now."""
    return _revoke_where(Token.delegation_id == delegation.id)


def introspect(value: str, hint: str | None = None) -> dict:
    """RFC 7662 §2.2: what a resource server may know of ``value``; ``{"active": false}`` unless it is live.

    The hint only orders the search (§2.1). A refresh token answers with its own expiry and no
    ``token_type``: it is not a bearer token a resource server may accept.
    """
    if hint == "refresh_token":
        lookups = (_introspect_refresh_token, _introspect_access_token)
    else:
        lookups = (_introspect_access_token, _introspect_refresh_token)
    for lookup in lookups:
        if (payload := lookup(value)) is not None:
            return payload
    return {"active": False}


# What an introspection response says of a token, read as a plain row (no ORM entity: issue 15).
_INTROSPECTED = (Token.jti, Token.client_id, Token.subject, Token.scope, Token.issued_at, Token.access_expires_at,
                 Token.refresh_expires_at, Token.rotated_at, Token.revoked_at, Token.auth_time, Token.acr, Token.resource_audience,
                 Token.delegation_id, Token.dpop_jkt)
_INTROSPECTED_BY_JTI = PreparedStatement(select(*_INTROSPECTED).where(Token.jti == bindparam("jti")))
_INTROSPECTED_BY_REFRESH_HASH = PreparedStatement(select(*_INTROSPECTED).where(Token.refresh_token_hash == bindparam("refresh_token_hash")))


def _introspect_access_token(value: str) -> dict | None:
    jti = _access_token_jti(value)
    row = _INTROSPECTED_BY_JTI.first({"jti": jti}) if jti else None
    if row is None or not _in_force(row):
        return None
    bound = {"token_type": "DPoP", "cnf": {"jkt": row.dpop_jkt}} if row.dpop_jkt else {"token_type": "Bearer"}
    return {**_introspection(row, row.access_expires_at), **bound, "jti": row.jti}


def _introspect_refresh_token(value: str) -> dict | None:
    row = _INTROSPECTED_BY_REFRESH_HASH.first({"refresh_token_hash": digest(value)}) if value else None
    if row is None or row.revoked_at is not None or row.rotated_at is not None or _refresh_expired(row.refresh_expires_at):
        return None
    if row.delegation_id and not delegations.in_force(row.delegation_id):
        return None
    return _introspection(row, row.refresh_expires_at)


def _introspection(row: Row, expires_at: datetime) -> dict:
    payload = {
        "active": True,
        "iss": current_app.config["ISSUER"],
        "client_id": row.client_id,
        "sub": row.subject,
        "iat": clock.to_timestamp(row.issued_at),
        "exp": clock.to_timestamp(expires_at),
    }
    if row.scope:  # RFC 7662 §2.2, RFC 6749 §3.3: no empty scope
        payload["scope"] = row.scope
    if row.auth_time:
        payload["auth_time"] = clock.to_timestamp(row.auth_time)
    if row.acr:
        payload["acr"] = row.acr
    if row.resource_audience:
        payload["aud"] = row.resource_audience
    if row.delegation_id:
        client = db.session.scalar(select(Client).where(Client.client_id == row.client_id))
        payload["act"] = actor_claim(delegations.get(row.delegation_id), client, row.resource_audience)
    return payload


def scopes(row: Token) -> list[str]:
    return scope_to_list(row.scope) or []


def presented_token(value: str | None) -> tuple[str, str | None]:
    """(scheme, token) of an ``Authorization: Bearer`` or ``DPoP`` header (RFC 6750 §2.1, RFC 9449 §7.1)."""
    kind, _, token_value = (value or "").partition(" ")
    kind = kind.lower()
    return (kind, token_value.strip() or None) if kind in ("bearer", "dpop") else ("", None)


def bearer_token(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 §2.1), or None."""
    if not value:
        return None
    kind, _, token_value = value.partition(" ")
    return token_value.strip() or None if kind.lower() == "bearer" else None


def sessions_with_tokens():
    """The SSO sessions some token row still names (a subquery): ending such a session must
    still find the clients to tell by back-channel logout."""
    return select(Token.sso_session_id).where(Token.sso_session_id.is_not(None))


def purge_expired(now: datetime) -> dict[str, int]:
    """Housekeeping. A token row goes only when everything it could still do is over: its access
    token has expired and so has its refresh-token family (a rotated or revoked refresh token of a
    live family must still be found, so that its reuse revokes the family, RFC 9700 §4.14.2), plus
    ``HOUSEKEEPING_TOKEN_RETENTION``; never sooner than ``SSO_ABSOLUTE_TIMEOUT`` (ending a session
    finds the clients to tell through these rows). A code stays as long as a token from it may
    live, since its second use revokes them (RFC 6749 §4.1.2) and ``nonce_was_used`` reads it."""
    config = current_app.config
    retention = timedelta(seconds=max(config["HOUSEKEEPING_TOKEN_RETENTION"], config["SSO_ABSOLUTE_TIMEOUT"]))
    cutoff = now - retention
    options = {"synchronize_session": False}
    tokens_deleted = db.session.execute(delete(Token).where(
        Token.access_expires_at <= cutoff,
        or_(Token.family_expires_at.is_(None), Token.family_expires_at <= cutoff),
        or_(Token.refresh_expires_at.is_(None), Token.refresh_expires_at <= cutoff),
    ), execution_options=options).rowcount
    longest_token = timedelta(seconds=max(config["REFRESH_TOKEN_ABSOLUTE_TTL"], config["ACCESS_TOKEN_TTL"]))
    codes_deleted = db.session.execute(delete(AuthorizationCode).where(AuthorizationCode.expires_at <= now - longest_token - retention),
                                       execution_options=options).rowcount
    return {"token": tokens_deleted or 0, "authorization_code": codes_deleted or 0}
