"""What every demo relying party needs from the provider: discovery, its keys, token exchange, DPoP,
back-channel logout tokens.

The viewer, MyDSP and the DSP API each talk to the provider only through these standard
documents, as an outside integrator would (README, "Integrating a relying party").
"""

import base64
import hashlib
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import requests
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693 §2.1
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # RFC 8693 §3
TIMEOUT = 10
ALGORITHMS = ["RS256", "ES256"]
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"  # Back-Channel Logout 1.0 §2.4
# RFC 9449: proofs are signed with an asymmetric key (§4.2); these are the provider's algorithms too.
DPOP_ALGORITHMS = ["ES256", "RS256", "PS256"]


class _ProofRegistry(jws.JWSRegistry):
    """joserfc bounds a JWS header to 512 bytes, less than a proof carrying a 2048-bit RSA key in
    ``jwk`` (about 560); a proof's length is bounded by its reader."""

    max_header_length = 8192


DPOP_PROOF_REGISTRY = _ProofRegistry(algorithms=DPOP_ALGORITHMS)


class ProviderError(Exception):
    """The provider's metadata or keys could not be used."""


class InvalidToken(Exception):
    """A token failed verification; the message says which check (RFC 6750 ``invalid_token``)."""


def discover(issuer: str) -> dict[str, Any]:
    """The provider's metadata; its ``issuer`` must be the one configured (Discovery §4.3)."""
    try:
        response = requests.get(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=TIMEOUT)
        response.raise_for_status()
        metadata = response.json()
    except (requests.RequestException, ValueError) as error:
        raise ProviderError(f"discovery at {issuer} failed: {error}") from None
    if metadata.get("issuer") != issuer:
        raise ProviderError(f"discovery names issuer {metadata.get('issuer')!r}, expected {issuer!r}")
    return metadata


class ProviderKeys:
    """The provider's JWKS, fetched once and again only when a token names an unknown ``kid``."""

    def __init__(self, jwks_uri: str):
        self.jwks_uri = jwks_uri
        self._keys: KeySet | None = None
        self._lock = threading.Lock()

    def _fetch(self) -> KeySet:
        try:
            response = requests.get(self.jwks_uri, timeout=TIMEOUT)
            response.raise_for_status()
            return KeySet.import_key_set(response.json())
        except (requests.RequestException, ValueError, JoseError) as error:
            raise ProviderError(f"JWKS at {self.jwks_uri} unusable: {error}") from None

    def key_set(self, kid: str | None) -> KeySet:
        with self._lock:
            if self._keys is None or (kid and not any(key.kid == kid for key in self._keys.keys)):
                self._keys = self._fetch()
            return self._keys

    def verify(self, token: str, *, typ: str | None = None) -> jwt.Token:
        """Signature (RS256/ES256 only) and, when given, the ``typ`` header (RFC 9068 §4)."""
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError) as error:
            raise InvalidToken(f"not a JWT: {error}") from None
        if typ is not None and str(header.get("typ", "")).lower() not in (typ, f"application/{typ}"):
            raise InvalidToken(f"typ must be {typ}")
        try:
            return jwt.decode(token, self.key_set(header.get("kid")), algorithms=ALGORITHMS)
        except (JoseError, ValueError) as error:
            raise InvalidToken(f"signature: {error}") from None


def validate_claims(claims: dict[str, Any], *, issuer: str, audience: str, leeway: int = 30) -> None:
    """``iss`` exact, ``aud`` containing ``audience``, ``exp`` required and in the future."""
    registry = jwt.JWTClaimsRegistry(
        leeway=leeway,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        sub={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as error:
        raise InvalidToken(f"claims: {error}") from None


class SeenOnce:
    """Values (a token's or a proof's ``jti``) accepted once while they could still pass; kept in
    memory, as befits a demo, and forgotten when they no longer could."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, value: str, keep_for: float) -> bool:
        now = time.time()
        with self._lock:
            self._until = {seen: until for seen, until in self._until.items() if until > now}
            if value in self._until:
                return False
            self._until[value] = now + keep_for
            return True


class LogoutTokenValidator:
    """OpenID Connect Back-Channel Logout 1.0 §2.6: the checks a relying party makes on a logout token.

    https://openid.net/specs/openid-connect-backchannel-1_0.html#Validation

    ``keys`` checks the signature and ``typ`` (a token naming an unknown ``kid`` gets one JWKS
    refetch). The ``jti`` of every accepted token is remembered until its ``iat`` is too old to pass,
    so a replayed token is refused (§2.6 step 7) with a bounded memory.
    """

    def __init__(self, keys: ProviderKeys, *, issuer: str, client_id: str,
                 max_age: int = 300, leeway: int = 30, now: Callable[[], float] = time.time):
        self.keys, self.issuer, self.client_id = keys, issuer, client_id
        self.max_age, self.leeway, self.now = max_age, leeway, now
        self._seen = SeenOnce()

    def validate(self, token: str) -> dict[str, Any]:
        """The claims of a valid, never-seen logout token; else :class:`InvalidToken` saying why."""
        claims = self.keys.verify(token, typ="logout+jwt").claims  # §2.6 step 2, and §2.4's typ
        now = int(self.now())
        registry = jwt.JWTClaimsRegistry(
            now=now,
            leeway=self.leeway,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            iat={"essential": True},
            exp={"essential": True},  # §2.4: required
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            raise InvalidToken(f"claims: {error}") from None
        if claims["iat"] < now - self.max_age - self.leeway:  # §2.6 step 3, as Core §3.1.3.7 step 10 allows
            raise InvalidToken("iat: issued too long ago")
        events = claims.get("events")
        if not isinstance(events, dict) or events.get(BACKCHANNEL_LOGOUT_EVENT) != {}:  # §2.4, §2.6 step 5
            raise InvalidToken(f"events: must hold {BACKCHANNEL_LOGOUT_EVENT} with an empty object")
        if not any(isinstance(claims.get(name), str) and claims[name] for name in ("sub", "sid")):  # §2.6 step 4
            raise InvalidToken("sub or sid: one is required")
        if "sid" in claims and not isinstance(claims["sid"], str):
            raise InvalidToken("sid: must be a string")
        if "nonce" in claims:  # §2.6 step 6: keeps an ID token from passing for a logout token
            raise InvalidToken("nonce: forbidden in a logout token")
        if not self._seen.first_use(claims["jti"], claims["iat"] + self.max_age + self.leeway - now):  # §2.6 step 7
            raise InvalidToken("jti: this logout token was already received")
        return claims


def token_exchange_parameters(subject_token: str, requested_subject: str, audience: str | None = None) -> dict[str, str]:
    """RFC 8693 §2.1 request: act for ``requested_subject`` with our own access token.

    Without ``audience`` the token carries every audience the client is registered for.
    """
    parameters = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "requested_subject": requested_subject,
    }
    if audience:
        parameters["audience"] = audience
    return parameters


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 ``ath``: base64url (unpadded) SHA-256 of the access token's ASCII bytes."""
    return base64.urlsafe_b64encode(hashlib.sha256(access_token.encode("ascii")).digest()).rstrip(b"=").decode()



class DPoPKey:
    """A client's proof-of-possession key (RFC 9449 §4): EC P-256, signing ES256; only its public
    half leaves, in the ``jwk`` header of each proof."""

    algorithm = "ES256"

    def __init__(self, key: ECKey):
        self.key = key

    @classmethod
    def load_or_create(cls, path: Path) -> "DPoPKey":
        """The key kept in ``path`` (readable only by the user), made there at first use."""
        path = Path(path)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = ECKey.generate_key("P-256", private=True)
            try:  # O_EXCL: when two runs race, the second one reads the first one's key
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(descriptor, "w") as handle:
                    json.dump(key.as_dict(private=True), handle)
                return cls(key)
        return cls(ECKey.import_key(json.loads(path.read_text())))

    def thumbprint(self) -> str:
        """RFC 7638 thumbprint: the ``jkt`` the provider binds our tokens to (RFC 9449 §6.1)."""
        return self.key.thumbprint()

    def proof(self, method: str, url: str, *, nonce: str | None = None, access_token: str | None = None) -> str:
        """A fresh DPoP proof JWT (§4.2) for one request; ``ath`` when it carries an access token."""
        claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url.split("?")[0].split("#")[0], "iat": int(time.time())}
        if nonce:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        header = {"typ": "dpop+jwt", "alg": self.algorithm, "jwk": self.key.as_dict(private=False)}
        return jwt.encode(header, claims, self.key, algorithms=[self.algorithm])


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def remember_dpop_nonce(nonces: dict[str, str], response: requests.Response) -> None:
    """Keep each server's latest ``DPoP-Nonce`` (by origin) for the next proofs to it (RFC 9449 §8, §9)."""
    if nonce := response.headers.get("DPoP-Nonce"):
        nonces[origin(response.url)] = nonce


def dpop_request(method: str, url: str, access_token: str, key: DPoPKey, nonces: dict[str, str], **kwargs: Any) -> requests.Response:
    """A call with a DPoP-bound access token (RFC 9449 §7.1): ``Authorization: DPoP`` and a proof
    with ``ath``; once more with the server's nonce on a 401 ``use_dpop_nonce`` (§9)."""
    def send() -> requests.Response:
        proof = key.proof(method, url, nonce=nonces.get(origin(url)), access_token=access_token)
        sent = requests.request(method, url, headers={"Authorization": f"DPoP {access_token}", "DPoP": proof}, timeout=TIMEOUT, **kwargs)
        remember_dpop_nonce(nonces, sent)
        return sent

    sent_nonce = nonces.get(origin(url))
    response = send()
    asks_nonce = response.status_code == 401 and 'error="use_dpop_nonce"' in response.headers.get("WWW-Authenticate", "")
    if asks_nonce and nonces.get(origin(url)) not in (None, sent_nonce):
        response = send()
    return response
