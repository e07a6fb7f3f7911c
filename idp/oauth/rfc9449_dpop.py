"""OAuth 2.0 Demonstrating Proof of Possession (DPoP), RFC 9449.

https://www.rfc-editor.org/rfc/rfc9449

Tokens and codes bound to a key the client holds, so a stolen one is useless. :func:`verify_proof`
applies every check of §4.3 and returns the key's JWK thumbprint (``jkt``). :class:`DPoPBinding`
is the grant extension: it checks the proof of a token request before the grant looks at the
code or refresh token, puts its key on the request (``request.dpop_jkt``, which the grants pass to
``token.issue``), and refuses a code bound to another key (§10) or a public client's refresh
token presented without its key (§5). :func:`check_presentation` is the protected resource's
side (§7.1). Server nonces (§8) are stateless: an HMAC over the current time window with the
app's secret, so every instance issues and accepts the same ones; the previous window's nonce
stays valid so a nonce handed out just before the window turns still works.

Options: ``FEATURES["dpop"]`` in ``config/default.py``.
"""

import base64
import hashlib
import hmac
import json
from datetime import timedelta

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749.grants import BaseGrant
from flask import Response, current_app, request
from joserfc import jwk, jws
from joserfc.errors import JoseError

from .. import clock, replay_cache
from .errors import InvalidDPoPProof, ProtectedResourceError, UseDPoPNonce

SIGNING_ALGORITHMS = ["ES256", "RS256", "PS256"]
MAX_PROOF_LENGTH = 8192


class _ProofRegistry(jws.JWSRegistry):
    """joserfc bounds a JWS header to 512 bytes, less than a proof carrying a 2048-bit RSA key in
    ``jwk`` (about 560): every proof by the RSA algorithms advertised (§5.1) was refused. The
    proof as a whole stays bounded by ``MAX_PROOF_LENGTH``."""

    max_header_length = MAX_PROOF_LENGTH


PROOF_REGISTRY = _ProofRegistry(algorithms=SIGNING_ALGORITHMS)


def _options() -> dict:
    return current_app.config["FEATURES"]["dpop"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _nonce_for(window: int) -> str:
    mac = hmac.new(current_app.config["SECRET_KEY"].encode(), f"dpop-nonce|{window}".encode(), hashlib.sha256).digest()
    return _b64(window.to_bytes(8, "big") + mac[:16])


def _window(offset: int = 0) -> int:
    return clock.timestamp() // _options()["nonce_lifetime"] + offset


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
        raise InvalidDPoPProof("Exactly one DPoP header is required.")
    proof = values[0]
    if len(proof) > MAX_PROOF_LENGTH:
        raise InvalidDPoPProof("The DPoP proof is too large.")
    try:
        header = json.loads(base64.urlsafe_b64decode(proof.split(".")[0] + "==="))
        if not isinstance(header, dict):
            raise ValueError
        if header.get("typ") != "dpop+jwt":
            raise InvalidDPoPProof("The DPoP proof must have typ dpop+jwt.")
        if header.get("alg") not in SIGNING_ALGORITHMS:
            raise InvalidDPoPProof("The DPoP proof must be signed with one of " + ", ".join(SIGNING_ALGORITHMS) + ".")
        if not isinstance(header.get("jwk"), dict):
            raise InvalidDPoPProof("The DPoP proof must carry its public key in jwk.")
        key = jwk.import_key(header["jwk"])
        if key.is_private or key.key_type == "oct":
            raise InvalidDPoPProof("The DPoP proof key must be a public asymmetric key.")
        claims = json.loads(jws.deserialize_compact(proof, key, registry=PROOF_REGISTRY).payload)
    except InvalidDPoPProof:
        raise
    except (JoseError, ValueError, TypeError, UnicodeDecodeError, IndexError):
        raise InvalidDPoPProof("The DPoP proof is not a valid signed JWT.") from None
    if not isinstance(claims, dict):
        raise InvalidDPoPProof("The DPoP proof must carry a JSON object of claims.")
    _check_claims(claims, method, url, access_token)
    thumbprint = key.thumbprint()
    window = _options()["proof_max_age"]
    expires = clock.now() + timedelta(seconds=2 * window)
    if not replay_cache.first_use("dpop_proof", f"{thumbprint}|{claims['jti']}", expires):
        raise InvalidDPoPProof("This DPoP proof was already used.")
    return thumbprint


class DPoPBinding:
    """The grant extension (Authlib's ``register_grant(grant, [extension])``) for the token endpoint.

    Before the grant validates (so a bad proof spends no code or refresh token): check the
    ``DPoP`` header if there is one (§5) and put its key's thumbprint on the request. After: a
    code bound with ``dpop_jkt`` or at the PAR endpoint needs that very key (§10, §10.1); a
    public client's refresh token works only with the key it was issued to (§5); a client
    registered with ``dpop_bound_access_tokens`` needs a proof (§5.2).
    """

    def __call__(self, grant: BaseGrant) -> None:
        grant.register_hook("before_validate_token_request", self.prove)
        grant.register_hook("after_validate_token_request", self.check_bindings)

    @staticmethod
    def prove(grant: BaseGrant) -> None:
        values = request.headers.getlist("DPoP")
        grant.request.dpop_jkt = verify_proof(values, "POST", current_app.config["ISSUER"] + "/token") if values else None

    @staticmethod
    def check_bindings(grant: BaseGrant, _result=None) -> None:
        proven = grant.request.dpop_jkt
        client = grant.request.client
        code = getattr(grant.request, "authorization_code", None)
        if code is not None and code.dpop_jkt and code.dpop_jkt != proven:
            raise InvalidGrantError("The code is bound to a DPoP key: the request needs a DPoP proof by that key.")
        refresh_token = getattr(grant.request, "refresh_token", None)
        if refresh_token is not None and client.is_public and refresh_token.dpop_jkt and refresh_token.dpop_jkt != proven:
            raise InvalidGrantError("The refresh token is bound to another DPoP key.")
        if (client.extra_metadata or {}).get("dpop_bound_access_tokens") and not proven:
            raise InvalidDPoPProof("This client must prove possession of a key with DPoP.")


def pushed_request_key(dpop_jkt: str | None) -> str | None:
    """§10.1: the key a code is bound to at the PAR endpoint: a proof sent with the pushed request,
    which must name the same key as ``dpop_jkt`` when both are there."""
    if not (values := request.headers.getlist("DPoP")):
        return dpop_jkt
    thumbprint = verify_proof(values, "POST", current_app.config["ISSUER"] + "/par")
    if dpop_jkt not in (None, thumbprint):
        raise InvalidRequestError("dpop_jkt does not match the key of the DPoP proof (RFC 9449 section 10.1).")
    return thumbprint


def with_nonce(response: Response) -> Response:
    """§8: when proofs must carry a server nonce, every answer of the token and PAR endpoints hands out the current one."""
    if _options()["enabled"] and _options()["nonce_required"]:
        response.headers["DPoP-Nonce"] = current_nonce()
    return response


def check_presentation(bound_key: str | None, scheme: str, access_token: str) -> None:
    """§7.1 at a protected resource: a bound token only as ``DPoP`` with a proof by its key.

    Refusals carry the DPoP challenge with the algorithms, and the current nonce when one is due.
    A bound token keeps needing its proof even when the feature is turned off later."""
    try:
        if scheme != "dpop":
            if bound_key:
                raise InvalidDPoPProof("This access token is DPoP-bound: present it with the DPoP scheme and a proof.")
            return
        if not bound_key:
            raise InvalidDPoPProof("This access token is not DPoP-bound: present it as a Bearer token.")
        url = current_app.config["ISSUER"] + request.path
        if verify_proof(request.headers.getlist("DPoP"), request.method, url, access_token) != bound_key:
            raise InvalidDPoPProof("The DPoP proof is signed by another key than the token is bound to.")
    except InvalidDPoPProof as error:
        nonce = {"DPoP-Nonce": current_nonce()} if _options()["nonce_required"] else {}
        raise ProtectedResourceError(error.error, error.description, scheme="DPoP", extra_headers=nonce,
                                     algs=" ".join(SIGNING_ALGORITHMS)) from None


def _check_claims(claims: dict, method: str, url: str, access_token: str | None) -> None:
    for name in ("jti", "htm", "htu", "iat"):
        if name not in claims:
            raise InvalidDPoPProof(f"The DPoP proof lacks the {name} claim.")
    if not isinstance(claims["jti"], str) or not 0 < len(claims["jti"]) <= 256:
        raise InvalidDPoPProof("The DPoP proof jti must be a short string.")
    if claims["htm"] != method:
        raise InvalidDPoPProof("The DPoP proof htm does not match the request method.")
    if not isinstance(claims["htu"], str) or claims["htu"].split("?")[0].split("#")[0] != url:
        raise InvalidDPoPProof("The DPoP proof htu does not match the request URL.")
    if not isinstance(claims["iat"], int) or abs(clock.timestamp() - claims["iat"]) > _options()["proof_max_age"]:
        raise InvalidDPoPProof("The DPoP proof iat is too far from the current time.")
    if access_token is not None and claims.get("ath") != access_token_hash(access_token):
        raise InvalidDPoPProof("The DPoP proof ath does not match the access token.")
    if _options()["nonce_required"]:
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not _nonce_is_fresh(nonce):
            raise UseDPoPNonce("A fresh DPoP nonce is required.")
