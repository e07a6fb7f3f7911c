"""DPoP proofs (RFC 9449): tokens bound to a key the client holds, so a stolen token is useless.

https://www.rfc-editor.org/rfc/rfc9449

:func:`verify_proof` applies every check of §4.3 and returns the JWK thumbprint (``jkt``) the
token is then bound to. Server nonces (§8) are stateless: an HMAC over the current time window
with the app's secret, so every instance issues and accepts the same ones; the previous
window's nonce stays valid so a nonce handed out just before the window turns still works.
"""

import base64
import hashlib
import hmac
import json
from datetime import timedelta

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidGrantError
from flask import current_app, g, request
from joserfc import jwk, jws
from joserfc.errors import JoseError

from . import clock, replay_cache

SIGNING_ALGORITHMS = ["ES256", "RS256", "PS256"]
MAX_PROOF_LENGTH = 8192


class InvalidProof(OAuth2Error):
    """``invalid_dpop_proof`` (§5 and §7.1); an OAuth error, so the token endpoint answers it as such."""

    error = "invalid_dpop_proof"

    def __init__(self, description: str):
        super().__init__(description=description)


class NonceRequired(InvalidProof):
    """``use_dpop_nonce`` (§8): retry with the nonce in the ``DPoP-Nonce`` response header."""

    error = "use_dpop_nonce"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _nonce_for(window: int) -> str:
    mac = hmac.new(current_app.config["SECRET_KEY"].encode(), f"dpop-nonce|{window}".encode(), hashlib.sha256).digest()
    return _b64(window.to_bytes(8, "big") + mac[:16])


def _window(offset: int = 0) -> int:
    return clock.timestamp() // current_app.config["DPOP_NONCE_LIFETIME"] + offset


def current_nonce() -> str:
    return _nonce_for(_window())


def _nonce_is_fresh(nonce: str) -> bool:
    return any(hmac.compare_digest(nonce, _nonce_for(_window(offset))) for offset in (0, -1))


def access_token_hash(access_token: str) -> str:
    """``ath`` (§4.2): base64url SHA-256 of the access token."""
    return _b64(hashlib.sha256(access_token.encode("ascii")).digest())


def verify_proof(values: list[str], method: str, url: str, access_token: str | None = None) -> str:
    """Check the ``DPoP`` header values of a request (§4.3); return the proof key's thumbprint."""
    if len(values) != 1:
        raise InvalidProof("Exactly one DPoP header is required.")
    proof = values[0]
    if len(proof) > MAX_PROOF_LENGTH:
        raise InvalidProof("The DPoP proof is too large.")
    try:
        header = json.loads(base64.urlsafe_b64decode(proof.split(".")[0] + "==="))
        if not isinstance(header, dict):
            raise ValueError
        if header.get("typ") != "dpop+jwt":
            raise InvalidProof("The DPoP proof must have typ dpop+jwt.")
        if header.get("alg") not in SIGNING_ALGORITHMS:
            raise InvalidProof("The DPoP proof must be signed with one of " + ", ".join(SIGNING_ALGORITHMS) + ".")
        if not isinstance(header.get("jwk"), dict):
            raise InvalidProof("The DPoP proof must carry its public key in jwk.")
        key = jwk.import_key(header["jwk"])
        if key.is_private or key.key_type == "oct":
            raise InvalidProof("The DPoP proof key must be a public asymmetric key.")
        claims = json.loads(jws.deserialize_compact(proof, key, algorithms=SIGNING_ALGORITHMS).payload)
    except InvalidProof:
        raise
    except (JoseError, ValueError, TypeError, UnicodeDecodeError, IndexError):
        raise InvalidProof("The DPoP proof is not a valid signed JWT.") from None
    if not isinstance(claims, dict):
        raise InvalidProof("The DPoP proof must carry a JSON object of claims.")
    _check_claims(claims, method, url, access_token)
    thumbprint = key.thumbprint()
    window = current_app.config["DPOP_PROOF_MAX_AGE"]
    expires = clock.now() + timedelta(seconds=2 * window)
    if not replay_cache.first_use("dpop_proof", f"{thumbprint}|{claims['jti']}", expires):
        raise InvalidProof("This DPoP proof was already used.")
    return thumbprint


def prove_token_request() -> None:
    """At the token endpoint: check a ``DPoP`` header if there is one; the tokens issued for this
    request are then bound to its key (:func:`proven_key`)."""
    if values := request.headers.getlist("DPoP"):
        g.dpop_jkt = verify_proof(values, "POST", current_app.config["ISSUER"] + "/token")


def proven_key() -> str | None:
    return g.get("dpop_jkt")


def require_for(client) -> None:
    """§5.2: a client registered with ``dpop_bound_access_tokens`` gets no token without a proof."""
    if (client.extra_metadata or {}).get("dpop_bound_access_tokens") and not proven_key():
        raise InvalidProof("This client must prove possession of a key with DPoP.")


def check_refresh_binding(bound_key: str | None) -> None:
    """§5: a public client's refresh token works only with the key it was issued to."""
    if bound_key and bound_key != proven_key():
        raise InvalidGrantError("The refresh token is bound to another DPoP key.")


def check_presentation(bound_key: str | None, scheme: str, access_token: str) -> None:
    """§7.1 at a protected resource: a bound token only as ``DPoP`` with a proof by its key."""
    if scheme != "dpop":
        if bound_key:
            raise InvalidProof("This access token is DPoP-bound: present it with the DPoP scheme and a proof.")
        return
    if not bound_key:
        raise InvalidProof("This access token is not DPoP-bound: present it as a Bearer token.")
    url = current_app.config["ISSUER"] + request.path
    if verify_proof(request.headers.getlist("DPoP"), request.method, url, access_token) != bound_key:
        raise InvalidProof("The DPoP proof is signed by another key than the token is bound to.")


def _check_claims(claims: dict, method: str, url: str, access_token: str | None) -> None:
    for name in ("jti", "htm", "htu", "iat"):
        if name not in claims:
            raise InvalidProof(f"The DPoP proof lacks the {name} claim.")
    if not isinstance(claims["jti"], str) or not 0 < len(claims["jti"]) <= 256:
        raise InvalidProof("The DPoP proof jti must be a short string.")
    if claims["htm"] != method:
        raise InvalidProof("The DPoP proof htm does not match the request method.")
    if not isinstance(claims["htu"], str) or claims["htu"].split("?")[0].split("#")[0] != url:
        raise InvalidProof("The DPoP proof htu does not match the request URL.")
    if not isinstance(claims["iat"], int) or abs(clock.timestamp() - claims["iat"]) > current_app.config["DPOP_PROOF_MAX_AGE"]:
        raise InvalidProof("The DPoP proof iat is too far from the current time.")
    if access_token is not None and claims.get("ath") != access_token_hash(access_token):
        raise InvalidProof("The DPoP proof ath does not match the access token.")
    if current_app.config["DPOP_NONCE_REQUIRED"]:
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not _nonce_is_fresh(nonce):
            raise NonceRequired("A fresh DPoP nonce is required.")
