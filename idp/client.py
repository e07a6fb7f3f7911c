"""The client registry: relying parties and machine clients allowed to use the provider.

Secrets are 256-bit random strings stored as SHA-256 (shown once). Redirect URIs match
exactly (RFC 9700 §2.1), with one exception required by RFC 8252 §7.3: a native client's
loopback IP redirect may use any port.

A client may be registered by an admin as the **resource server** of one audience URI (the
``aud`` its access tokens carry, RFC 9068 §3): that is how the provider knows who may introspect
a token (RFC 7662 §4) and which resource a token's ``sub`` is chosen for. Self-registered clients
(RFC 7591 with an initial access token) that ask for anything reserved (the scopes and grants
that reach records or act for others, a public ``sub``, a name passing for the agency's own
services) are held until an admin approves them.
"""

import hashlib
import hmac
import ipaddress
import re
import secrets
import time
import unicodedata
from copy import deepcopy
from datetime import datetime
from typing import Callable
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin, list_to_scope, scope_to_list
from flask import current_app, has_app_context
from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, event, inspect as sa_inspect, select
from sqlalchemy.orm import Mapped, make_transient_to_detached, mapped_column

from . import audit, clock
from .extensions import db

# ``delegations``: manage the assistants of the record through /api/v1/delegations;
# ``assisted_patients``: the claim listing the patients one may act for.
SUPPORTED_SCOPES = ["openid", "profile", "email", "phone", "offline_access", "matricule", "delegations", "assisted_patients"]
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693, only for clients that list it
SUPPORTED_GRANT_TYPES = ["authorization_code", "refresh_token", "client_credentials", TOKEN_EXCHANGE]
SUPPORTED_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
LOOPBACK_HOSTS = {"127.0.0.1", "[::1]", "localhost"}
# What a self-registered client gets only with an admin's approval: the matricule and the
# delegation scopes (records of others), tokens for other patients or without a patient, and a
# ``sub`` shared with every other public client.
RESERVED_SCOPES = ("matricule", "delegations", "assisted_patients")
RESERVED_GRANT_TYPES = (TOKEN_EXCHANGE, "client_credentials")
# Security profiles a client may be registered with, as its ``security_profile`` metadata (this
# server's own name: no registered client metadata names a profile). Each profile's rules live
# in the protocol package, which registers here, by name, the check a client's metadata must
# pass; the check returns the metadata the profile implies, stored with the client
# (:mod:`idp.oauth.fapi2_profile`). A name nobody registered is refused.
SECURITY_PROFILES: dict[str, Callable[[dict], dict]] = {}


class InvalidClientMetadata(ValueError):
    """Maps to RFC 7591 ``invalid_client_metadata`` / ``invalid_redirect_uri``."""

    def __init__(self, description: str, error: str = "invalid_client_metadata"):
        super().__init__(description)
        self.error = error
        self.description = description


class Client(db.Model, ClientMixin):
    __tablename__ = "client"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_secret_hash: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    grant_types: Mapped[list] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(Text, default="openid")
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    jwks: Mapped[dict | None] = mapped_column(JSON)
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    subject_type: Mapped[str] = mapped_column(String(16), default="pairwise")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    extra_metadata: Mapped[dict] = mapped_column(JSON, default=dict)
    registration_access_token_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    # The audience URI this client serves as a resource server (admins only; one client each).
    resource_audience: Mapped[str | None] = mapped_column(String(500), unique=True)
    # A self-registration's reserved asks an admin has not approved yet (the client is held
    # while any is left), and those approved so far (RFC 7592 updates keep them).
    pending_approval: Mapped[list | None] = mapped_column(JSON, default=list)
    approved_reservations: Mapped[list | None] = mapped_column(JSON, default=list)

    # --- Authlib's ClientMixin ---------------------------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OAuth 2.0 lets a client with one redirect URI omit it; OpenID Connect does not
        # (Core §3.1.2.1), and the OpenID grant re-checks that.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(scope_to_list(self.scope))
        return list_to_scope([s for s in scope_to_list(scope) if s in allowed])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return any(redirect_uri_matches(registered, redirect_uri, self.is_public) for registered in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.client_secret_hash:
            return False
        return hmac.compare_digest(self.client_secret_hash, _hash(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    @property
    def client_metadata(self) -> dict:
        """The RFC 7591 view of this client."""
        metadata = {
            "client_name": self.name,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "grant_types": list(self.grant_types),
            "response_types": ["code"] if "authorization_code" in self.grant_types else [],
            "scope": self.scope,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "subject_type": self.subject_type,
            "application_type": "native" if self.is_public else "web",
        }
        if self.jwks:
            metadata["jwks"] = self.jwks
        metadata.update(self.extra_metadata or {})
        return metadata

    # --- ours --------------------------------------------------------------------------------
    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def security_profile(self) -> str | None:
        """The profile the client is held to (``SECURITY_PROFILES``), e.g. ``fapi2``; None for none."""
        return (self.extra_metadata or {}).get("security_profile")

    def allows_scope(self, scope: str) -> bool:
        return scope in scope_to_list(self.scope)

    @property
    def is_held(self) -> bool:
        """A self-registration waiting for an admin's approval: not usable for the protocol."""
        return bool(self.pending_approval)

    @property
    def sector_identifier(self) -> str:
        """Host of the redirect URIs: the pairwise sector (OpenID Connect Core §8.1)."""
        if sector := (self.extra_metadata or {}).get("sector_identifier"):
            return sector
        hosts = sorted({urlsplit(uri).hostname or uri for uri in self.redirect_uris})
        return hosts[0] if len(hosts) == 1 else self.client_id


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def redirect_uri_matches(registered: str, requested: str, native: bool) -> bool:
    if registered == requested:
        return True
    if not native:
        return False
    try:
        reg, req = urlsplit(registered), urlsplit(requested)
        port = req.port
    except ValueError:
        return False  # not a URI at all (port out of range, broken IPv6 host)
    if reg.scheme != "http" or req.scheme != "http" or not _is_loopback_ip(reg.hostname):
        return False
    if "@" in req.netloc or "#" in requested:
        return False  # only the port may vary: no userinfo, no fragment (RFC 6749 §3.1.2)
    return (reg.hostname, reg.path, reg.query) == (req.hostname, req.path, req.query) and port is not None and port > 0


def _is_loopback_ip(host: str | None) -> bool:
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def validate_redirect_uri(uri: str, native: bool) -> None:
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        raise InvalidClientMetadata(f"redirect URI must not have a fragment: {uri}", "invalid_redirect_uri")
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and (_is_loopback_ip(parts.hostname) or parts.hostname == "localhost"):
        return
    if native and "." in parts.scheme and parts.scheme not in ("http", "https") and not parts.netloc:
        return  # private-use URI scheme, reverse domain name (RFC 8252 §7.1)
    raise InvalidClientMetadata(f"redirect URI must be https (http only for loopback): {uri}", "invalid_redirect_uri")


def reservations(*, name: str, scope: str, grant_types: list[str], subject_type: str) -> list[str]:
    """What in this metadata only an admin may give (``scope:…``, ``grant_type:…``,
    ``subject_type:public``, ``client_name:…``), in a stable order."""
    found = [f"scope:{item}" for item in RESERVED_SCOPES if item in (scope_to_list(scope) or [])]
    found += [f"grant_type:{item}" for item in RESERVED_GRANT_TYPES if item in grant_types]
    if subject_type == "public":
        found.append("subject_type:public")
    if is_protected_name(name):
        found.append(f"client_name:{name}")
    return found


def _words(text: str) -> list[str]:
    """Lower-case words without accents or punctuation: "Agence e-Santé" → agence, e, sante."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()
    return re.findall(r"[^\W_]+", plain)


def _has_non_latin_letters(text: str) -> bool:
    """Letters of another script (a Cyrillic "е" looks like a Latin "e"): not compared, so reserved."""
    return any(char.isalpha() and not unicodedata.name(char, "").startswith("LATIN") for char in unicodedata.normalize("NFKD", text))


def is_protected_name(name: str) -> bool:
    """Whether ``name`` passes for one of ``PROTECTED_CLIENT_NAMES``: some run of its words, joined,
    spells a protected name joined ("Agence e-Sante" is "Agence eSanté"; "Pharmacie Santé" is not),
    or it has letters of another script than Latin, which could imitate one."""
    if _has_non_latin_letters(name):
        return True
    words = _words(name)
    runs = {"".join(words[start:end]) for start in range(len(words)) for end in range(start + 1, len(words) + 1)}
    return any("".join(_words(protected)) in runs for protected in current_app.config["PROTECTED_CLIENT_NAMES"])


def validate_audiences(resource_audience: str | None, extra_metadata: dict | None) -> None:
    """A resource server's audience is an absolute https URI (http on loopback) without fragment;
    a client's tokens name at most one resource server, so that their ``sub`` has one owner."""
    if resource_audience is not None:
        parts = urlsplit(resource_audience)
        if parts.fragment or "#" in resource_audience or not parts.hostname or not (
                parts.scheme == "https" or (parts.scheme == "http" and (_is_loopback_ip(parts.hostname) or parts.hostname == "localhost"))):
            raise InvalidClientMetadata(f"the resource server audience must be an https URI without fragment: {resource_audience}")
    audiences = (extra_metadata or {}).get("access_token_audiences", [])
    if not isinstance(audiences, list) or len(audiences) > 1 or not all(isinstance(item, str) and item for item in audiences):
        raise InvalidClientMetadata("access_token_audiences names at most one resource server")


def validate_metadata(
    *,
    name: str,
    redirect_uris: list[str],
    post_logout_redirect_uris: list[str],
    grant_types: list[str],
    scope: str,
    auth_method: str,
    subject_type: str,
    jwks: dict | None,
    security_profile: str | None = None,
    extra_metadata: dict | None = None,
) -> dict:
    """Check a registration as a whole; returns the metadata its security profile implies."""
    if not name or len(name) > 200:
        raise InvalidClientMetadata("client_name is required (at most 200 characters)")
    if auth_method not in SUPPORTED_AUTH_METHODS:
        raise InvalidClientMetadata(f"unsupported token_endpoint_auth_method {auth_method!r}")
    unknown = [g for g in grant_types if g not in SUPPORTED_GRANT_TYPES]
    if unknown or not grant_types:
        raise InvalidClientMetadata(f"unsupported grant_types: {unknown or 'none given'}")
    unknown_scopes = [s for s in scope_to_list(scope) if s not in SUPPORTED_SCOPES]
    if unknown_scopes:
        raise InvalidClientMetadata(f"unsupported scope: {' '.join(unknown_scopes)}")
    if subject_type not in ("public", "pairwise"):
        raise InvalidClientMetadata("subject_type must be public or pairwise")
    if auth_method == "none" and "client_credentials" in grant_types:
        raise InvalidClientMetadata("a public client cannot use client_credentials")
    if auth_method == "private_key_jwt" and not (jwks and jwks.get("keys")):
        raise InvalidClientMetadata("private_key_jwt needs jwks with at least one key")
    if "authorization_code" in grant_types and not redirect_uris:
        raise InvalidClientMetadata("redirect_uris are required for authorization_code", "invalid_redirect_uri")
    for uri in redirect_uris:
        validate_redirect_uri(uri, native=auth_method == "none")
    for uri in post_logout_redirect_uris:
        validate_redirect_uri(uri, native=auth_method == "none")
    if security_profile is None:
        return {}
    if security_profile not in SECURITY_PROFILES:
        raise InvalidClientMetadata(f"unsupported security_profile {security_profile!r} (supported: {', '.join(SECURITY_PROFILES)})")
    return SECURITY_PROFILES[security_profile]({
        "redirect_uris": redirect_uris, "post_logout_redirect_uris": post_logout_redirect_uris, "grant_types": grant_types,
        "scope": scope, "auth_method": auth_method, "jwks": jwks, "extra_metadata": dict(extra_metadata or {}),
    })


def _with_profile(extra_metadata: dict | None, security_profile: str | None, implied: dict) -> dict:
    """``extra_metadata`` naming ``security_profile`` (or none) with what that profile implies."""
    kept = {key: value for key, value in (extra_metadata or {}).items() if key != "security_profile"}
    return {**kept, **implied, "security_profile": security_profile} if security_profile else kept


def create(
    *,
    name: str,
    redirect_uris: list[str] = (),
    post_logout_redirect_uris: list[str] = (),
    grant_types: list[str] = ("authorization_code", "refresh_token"),
    scope: str = "openid profile email phone offline_access",
    auth_method: str = "client_secret_basic",
    first_party: bool = False,
    subject_type: str | None = None,
    jwks: dict | None = None,
    extra_metadata: dict | None = None,
    security_profile: str | None = None,
    actor: str = "cli",
    client_id: str | None = None,
    resource_audience: str | None = None,
    self_registered: bool = False,
) -> tuple[Client, str | None]:
    """Register a client. Returns it with its secret (None for public and private_key_jwt clients).

    ``self_registered``: through RFC 7591; anything reserved it asks for holds the client until
    an admin approves it (:func:`approve`)."""
    subject_type = subject_type or ("public" if first_party else "pairwise")
    implied = validate_metadata(
        name=name,
        redirect_uris=list(redirect_uris),
        post_logout_redirect_uris=list(post_logout_redirect_uris),
        grant_types=list(grant_types),
        scope=scope,
        auth_method=auth_method,
        subject_type=subject_type,
        jwks=jwks,
        security_profile=security_profile,
        extra_metadata=extra_metadata,
    )
    validate_audiences(resource_audience, extra_metadata)
    _check_audience_is_free(resource_audience, None)
    pending = reservations(name=name, scope=scope, grant_types=list(grant_types), subject_type=subject_type) if self_registered else []
    now = clock.now()
    secret = secrets.token_urlsafe(32) if auth_method in ("client_secret_basic", "client_secret_post") else None
    client = Client(
        client_id=client_id or secrets.token_hex(16),  # never starts with "-" (CLI arguments)
        client_secret_hash=_hash(secret) if secret else None,
        name=name,
        redirect_uris=list(redirect_uris),
        post_logout_redirect_uris=list(post_logout_redirect_uris),
        grant_types=list(grant_types),
        scope=scope,
        token_endpoint_auth_method=auth_method,
        jwks=jwks,
        first_party=first_party,
        subject_type=subject_type,
        disabled=False,
        extra_metadata=_with_profile(extra_metadata, security_profile, implied),
        created_at=now,
        updated_at=now,
        resource_audience=resource_audience,
        pending_approval=pending,
        approved_reservations=[],
    )
    db.session.add(client)
    db.session.flush()
    audit.record(audit.Event.CLIENT_CREATED, client_id=client.client_id, actor=actor, pending_approval=pending or None)
    return client, secret


def _check_audience_is_free(resource_audience: str | None, client: "Client | None") -> None:
    if resource_audience is None:
        return
    holder = db.session.scalar(select(Client).where(Client.resource_audience == resource_audience))
    if holder is not None and holder is not client:
        raise InvalidClientMetadata(f"{holder.client_id} is already the resource server for {resource_audience}")


def update(client: Client, actor: str = "cli", self_registered: bool = False, **changes) -> Client:
    """Change registry fields; the result is validated as a whole before anything is written.

    ``security_profile`` None takes the client out of its profile; what the profile implied
    (such as ``require_pushed_authorization_requests``) stays until changed. ``self_registered``:
    an RFC 7592 update by the client itself; reserved asks not approved before hold it again
    (:func:`approve`)."""
    merged = {
        "name": changes.get("name", client.name),
        "redirect_uris": list(changes.get("redirect_uris", client.redirect_uris)),
        "post_logout_redirect_uris": list(changes.get("post_logout_redirect_uris", client.post_logout_redirect_uris)),
        "grant_types": list(changes.get("grant_types", client.grant_types)),
        "scope": changes.get("scope", client.scope),
        "auth_method": changes.get("auth_method", client.token_endpoint_auth_method),
        "subject_type": changes.get("subject_type", client.subject_type),
        "jwks": changes.get("jwks", client.jwks),
        "security_profile": changes.get("security_profile", client.security_profile),
        "extra_metadata": changes.get("extra_metadata", client.extra_metadata),
    }
    implied = validate_metadata(**merged)
    resource_audience = changes.get("resource_audience", client.resource_audience) or None
    validate_audiences(resource_audience, changes.get("extra_metadata", client.extra_metadata))
    _check_audience_is_free(resource_audience, client)
    if self_registered:
        asked = reservations(name=merged["name"], scope=merged["scope"], grant_types=merged["grant_types"],
                             subject_type=merged["subject_type"])
        client.pending_approval = [item for item in asked if item not in (client.approved_reservations or [])]
    client.resource_audience = resource_audience
    if merged["auth_method"] != client.token_endpoint_auth_method and merged["auth_method"] not in ("client_secret_basic", "client_secret_post"):
        client.client_secret_hash = None
    client.name = merged["name"]
    client.redirect_uris = merged["redirect_uris"]
    client.post_logout_redirect_uris = merged["post_logout_redirect_uris"]
    client.grant_types = merged["grant_types"]
    client.scope = merged["scope"]
    client.token_endpoint_auth_method = merged["auth_method"]
    client.subject_type = merged["subject_type"]
    client.jwks = merged["jwks"]
    if "first_party" in changes:
        client.first_party = bool(changes["first_party"])
    if "extra_metadata" in changes or "security_profile" in changes or implied:
        client.extra_metadata = _with_profile(merged["extra_metadata"], merged["security_profile"], implied)
    client.updated_at = clock.now()
    audit.record(audit.Event.CLIENT_UPDATED, client_id=client.client_id, actor=actor, fields=sorted(changes))
    return client


def rotate_secret(client: Client, actor: str = "cli") -> str:
    if client.token_endpoint_auth_method not in ("client_secret_basic", "client_secret_post"):
        raise InvalidClientMetadata("this client does not authenticate with a secret")
    secret = secrets.token_urlsafe(32)
    client.client_secret_hash = _hash(secret)
    client.updated_at = clock.now()
    audit.record(audit.Event.CLIENT_SECRET_ROTATED, client_id=client.client_id, actor=actor)
    return secret


class NothingToApprove(ValueError):
    """The client waits for no approval."""


def approve(client: Client, actor: str = "cli") -> list[str]:
    """An admin approves what a self-registered client asked for; it works from now on. Returns what was approved."""
    approved = list(client.pending_approval or [])
    if not approved:
        raise NothingToApprove(client.client_id)
    client.approved_reservations = sorted({*(client.approved_reservations or []), *approved})
    client.pending_approval = []
    client.updated_at = clock.now()
    audit.record(audit.Event.CLIENT_APPROVED, client_id=client.client_id, actor=actor, approved=approved)
    return approved


def resource_server_for(audience: str | None) -> Client | None:
    """The enabled client registered as the resource server of ``audience``."""
    if not audience:
        return None
    found = db.session.scalar(select(Client).where(Client.resource_audience == audience))
    return found if found is not None and not found.disabled and not found.is_held else None


def disable(client: Client, actor: str = "cli") -> None:
    client.disabled = True
    client.updated_at = clock.now()
    audit.record(audit.Event.CLIENT_DISABLED, client_id=client.client_id, actor=actor)


def enable(client: Client, actor: str = "cli") -> None:
    client.disabled = False
    client.updated_at = clock.now()
    audit.record(audit.Event.CLIENT_UPDATED, client_id=client.client_id, actor=actor, fields=["disabled"])


def get(client_id: str | None) -> Client | None:
    """An enabled client by id (disabled clients and those held for approval do not exist for the protocol)."""
    found = _enabled(client_id)
    return found if found is not None and not found.is_held else None


def _enabled(client_id: str | None) -> Client | None:
    if not client_id or not isinstance(client_id, str):
        return None
    found = db.session.scalar(select(Client).where(Client.client_id == client_id))
    return found if found and not found.disabled else None


def get_for_protocol(client_id: str | None) -> Client | None:
    """:func:`get` for the OAuth endpoints (token, introspection, revocation, authorize, PAR),
    which read the client on every request: each worker keeps what it read for
    CLIENT_CACHE_SECONDS (reading it was a fifth of a token request).

    A change made by this worker (disable, secret rotation, update) takes effect at once
    (:func:`_forget_cached`); one made elsewhere (another instance, the CLI) within those seconds.
    Unknown ids are not kept: a client registered on another instance works there at once. The
    kept copy is detached; each request gets its own session instance of it without a query
    (``merge(load=False)``)."""
    seconds = current_app.config["CLIENT_CACHE_SECONDS"]
    cache = current_app.extensions.setdefault("idp_clients", {})
    entry = cache.get(client_id)
    if seconds and entry and entry[0] > time.monotonic():
        return db.session.merge(entry[1], load=False)
    found = get(client_id)
    if seconds and found is not None:
        cache[client_id] = (time.monotonic() + seconds, _detached_copy(found))
    return found


def _detached_copy(client: Client) -> Client:
    copy = Client(**{column.key: deepcopy(getattr(client, column.key)) for column in sa_inspect(Client).column_attrs})
    make_transient_to_detached(copy)
    return copy


@event.listens_for(Client, "after_update")
@event.listens_for(Client, "after_delete")
def _forget_cached(mapper, connection, client: Client) -> None:
    if has_app_context():
        current_app.extensions.get("idp_clients", {}).pop(client.client_id, None)


def get_any(client_id: str) -> Client | None:
    """Any client, disabled too (for admins)."""
    return db.session.scalar(select(Client).where(Client.client_id == client_id))


def all_clients() -> list[Client]:
    return list(db.session.scalars(select(Client).order_by(Client.id)))


def public_view(client: Client) -> dict:
    return {
        "client_id": client.client_id,
        "disabled": client.disabled,
        "first_party": client.first_party,
        "created_at": client.created_at,
        "updated_at": client.updated_at,
        "resource_audience": client.resource_audience,
        "pending_approval": list(client.pending_approval or []),
        **client.client_metadata,
    }


# --- RFC 7591 initial access tokens and RFC 7592 registration access tokens -------------------


class InitialAccessToken(db.Model):
    __tablename__ = "initial_access_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    note: Mapped[str | None] = mapped_column(String(200))


def issue_initial_access_token(expires_at: datetime, note: str | None = None) -> str:
    token = secrets.token_urlsafe(32)
    db.session.add(InitialAccessToken(token_hash=_hash(token), created_at=clock.now(), expires_at=expires_at, note=note))
    audit.record(audit.Event.INITIAL_ACCESS_TOKEN_ISSUED, actor="cli", note=note)
    return token


def consume_initial_access_token(token: str) -> bool:
    """Single use: a registration spends the token."""
    found = db.session.scalar(select(InitialAccessToken).where(InitialAccessToken.token_hash == _hash(token or "")).with_for_update())
    if found is None or found.used_at or found.expires_at <= clock.now():
        return False
    found.used_at = clock.now()
    return True


def issue_registration_access_token(client: Client) -> str:
    token = secrets.token_urlsafe(32)
    client.registration_access_token_hash = _hash(token)
    return token


def find_by_registration_access_token(client_id: str, token: str) -> Client | None:
    """The client, held for approval or not: it may read, change or delete its registration meanwhile."""
    found = _enabled(client_id)
    if found and found.registration_access_token_hash and hmac.compare_digest(found.registration_access_token_hash, _hash(token or "")):
        return found
    return None


def delete(client: Client, actor: str) -> None:
    """RFC 7592 delete: the client stops existing for the protocol; the row stays for the audit trail."""
    client.disabled = True
    client.registration_access_token_hash = None
    client.updated_at = clock.now()
    audit.record(audit.Event.CLIENT_DELETED, client_id=client.client_id, actor=actor)
