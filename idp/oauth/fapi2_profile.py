"""FAPI 2.0 Security Profile, for the clients registered with ``"security_profile": "fapi2"``.

https://openid.net/specs/fapi-security-profile-2_0-final.html (Final, February 2025)

Health records deserve the profile that banks use. The rules the profile sets an authorization
server are all here; the endpoints consult this module at seven points and know nothing of FAPI:

- registration (:func:`check_registration`, the client registry's check for ``fapi2``):
  confidential clients with ``private_key_jwt`` only (§5.3.2.1 items 3 and 6), https redirect
  URIs or loopback ones (§5.3.2.2 item 8), RSA keys of 2048 bits or more and EC keys of 224 or
  more (§5.4.1); it implies ``require_pushed_authorization_requests`` (RFC 9126 §6),
  ``dpop_bound_access_tokens`` (RFC 9449 §5.2) and ES256 ID and access tokens (§5.4.1);
- the authorization request: at /par (:func:`check_pushed_request`) with ``redirect_uri``
  (§5.3.2.2 item 6), PKCE S256 (item 5) and any DPoP proof PS256 or ES256 (§5.4.1); at
  /authorize (:func:`check_authorization_request`) only a pushed one (item 3);
- client authentication (:func:`check_client_assertion`): the issuer identifier as the one
  string in ``aud`` (§5.3.2.1 item 8), PS256 or ES256 (§5.4.1);
- the token endpoint (:class:`TokenRules`, an extension of every grant): a DPoP proof, PS256 or
  ES256 by a key of the sizes above, on every token request (§5.3.2.1 items 4 and 5), and codes
  redeemed within 60 seconds (item 11) whatever ``AUTHORIZATION_CODE_TTL`` says;
- the protected resources of this server, userinfo and the delegation API
  (:func:`check_protected_resource_request`): the DPoP proof PS256 or ES256 (§5.4.1);
- refresh tokens (:func:`rotates_refresh_tokens`): not rotated (item 9 and its note 1). A refresh
  token stays bound to the client that got it and usable only with that client's private key
  (``private_key_jwt``), which is what RFC 9449 §5 relies on for confidential clients; it is
  not bound to a DPoP key, so a client may renew its DPoP key with it (the profile's security
  considerations, "Access token lifetimes").

Every refusal carries the code of the specification broken: ``invalid_client_metadata`` /
``invalid_redirect_uri`` (RFC 7591 §3.2.2), ``invalid_request`` (RFC 6749 §4.1.2.1),
``invalid_client`` and ``invalid_grant`` (RFC 6749 §5.2), ``invalid_dpop_proof`` (RFC 9449 §5).
What the profile asks and this server does for every client is not repeated here: ``iss`` in
authorization responses (RFC 9207, :mod:`idp.oauth.responses`), 303 redirects, single-use codes,
``response_type=code`` only, no password grant, DPoP code binding (RFC 9449 §10.1), JWTs with
``iat`` up to 60 seconds ahead accepted, PAR ``request_uri`` lifetimes under 600 seconds.
"""

import base64
import json
from datetime import timedelta
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import InvalidClientError, InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749.grants import BaseGrant
from flask import current_app, request
from joserfc import jwk
from joserfc.errors import JoseError

from .. import client as clients, clock
from .errors import InvalidDPoPProof, ProtectedResourceError

NAME = "fapi2"
# §5.4.1 item 1.2: PS256, ES256 or EdDSA; this server verifies no EdDSA signature.
SIGNING_ALGORITHMS = ("PS256", "ES256")
TOKEN_SIGNING_ALGORITHM = "ES256"  # of the ID tokens and access tokens issued to these clients
MINIMUM_KEY_BITS = {"RSA": 2048, "EC": 224}  # §5.4.1 items 2 and 3
CODE_LIFETIME = 60  # seconds, §5.3.2.1 item 11
IMPLIED_METADATA = {
    "require_pushed_authorization_requests": True,
    "dpop_bound_access_tokens": True,
    "id_token_signed_response_alg": TOKEN_SIGNING_ALGORITHM,
    "access_token_signed_response_alg": TOKEN_SIGNING_ALGORITHM,
}


def applies_to(client: clients.Client | None) -> bool:
    return client is not None and client.security_profile == NAME


# --- registration ----------------------------------------------------------------------------


def check_registration(metadata: dict) -> dict:
    """The client registry's check for ``fapi2`` (:data:`idp.client.SECURITY_PROFILES`); returns
    the metadata the profile implies, or raises ``InvalidClientMetadata``."""
    if metadata["auth_method"] != "private_key_jwt":
        raise clients.InvalidClientMetadata("FAPI 2.0 clients are confidential and authenticate with private_key_jwt "
                                            "(FAPI 2.0 section 5.3.2.1)")
    for uri in metadata["redirect_uris"]:
        if not _is_protected_redirect(uri):
            raise clients.InvalidClientMetadata(f"FAPI 2.0 redirect URIs use https, or http on a loopback IP address only "
                                                f"(FAPI 2.0 section 5.3.2.2, RFC 8252 section 7.3): {uri}", "invalid_redirect_uri")
    _check_keys(metadata["jwks"] or {})
    for flag in ("require_pushed_authorization_requests", "dpop_bound_access_tokens"):
        if metadata["extra_metadata"].get(flag) is False:
            raise clients.InvalidClientMetadata(f"{flag} cannot be false for a FAPI 2.0 client")
    features = current_app.config["FEATURES"]
    if not (features["par"]["enabled"] and features["dpop"]["enabled"]):
        raise clients.InvalidClientMetadata("FAPI 2.0 needs pushed authorization requests and DPoP, which this server has turned off")
    if TOKEN_SIGNING_ALGORITHM not in current_app.config["SIGNING_ALGORITHMS"]:
        raise clients.InvalidClientMetadata(f"FAPI 2.0 tokens are signed with {TOKEN_SIGNING_ALGORITHM}, which this server does not use")
    return dict(IMPLIED_METADATA)


def _is_protected_redirect(uri: str) -> bool:
    """https, or http to a loopback IP literal (RFC 8252 §7.3): the response never crosses a network."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1"))


def _check_keys(jwks: dict) -> None:
    for item in jwks.get("keys") or []:
        try:
            key = jwk.import_key(item)
        except (JoseError, ValueError, TypeError, KeyError):
            raise clients.InvalidClientMetadata("jwks holds a key that cannot be read") from None
        if key.is_private:
            raise clients.InvalidClientMetadata("jwks must hold public keys only")
        if not _strong_enough(key):
            raise clients.InvalidClientMetadata("FAPI 2.0 client keys are RSA of 2048 bits or more, or EC of 224 bits or more "
                                                "(FAPI 2.0 section 5.4.1)")
        if item.get("alg") not in (None, *SIGNING_ALGORITHMS):
            raise clients.InvalidClientMetadata(f"FAPI 2.0 keys sign with {' or '.join(SIGNING_ALGORITHMS)}, not {item.get('alg')}")


def _strong_enough(key: jwk.Key) -> bool:
    if key.key_type == "RSA":
        return key.raw_value.key_size >= MINIMUM_KEY_BITS["RSA"]
    if key.key_type == "EC":
        return key.raw_value.curve.key_size >= MINIMUM_KEY_BITS["EC"]
    return False


# --- the authorization request ---------------------------------------------------------------


def check_authorization_request(client: clients.Client, pushed: bool) -> None:
    """§5.3.2.2 item 3 at /authorize: "shall reject authorization requests sent without [RFC9126]"."""
    if applies_to(client) and not pushed:
        raise InvalidRequestError("A FAPI 2.0 client must push its authorization requests (RFC 9126).")


def check_pushed_request(client: clients.Client, params: dict) -> None:
    """§5.3.2.2 at /par: ``redirect_uri`` and a PKCE S256 challenge in every pushed request; the
    DPoP proof that may come with it (RFC 9449 §10.1) as :func:`_check_proof` says."""
    if not applies_to(client):
        return
    if not params.get("redirect_uri"):
        raise InvalidRequestError("redirect_uri is required in a FAPI 2.0 pushed authorization request.")
    if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
        raise InvalidRequestError("A FAPI 2.0 client must send a PKCE challenge with code_challenge_method S256.")
    _check_proof()


# --- client authentication -------------------------------------------------------------------


def check_client_assertion(client: clients.Client | None, header: dict, claims: dict) -> None:
    """§5.3.2.1 item 8: the issuer identifier, as a string, is the only ``aud`` taken (not the
    token or PAR endpoint URL, not an array); §5.4.1: signed with PS256 or ES256."""
    if not applies_to(client):
        return
    if claims.get("aud") != current_app.config["ISSUER"]:
        raise InvalidClientError(description="A FAPI 2.0 client assertion names the issuer identifier, as a string, in aud.")
    if header.get("alg") not in SIGNING_ALGORITHMS:
        raise InvalidClientError(description=f"A FAPI 2.0 client assertion is signed with {' or '.join(SIGNING_ALGORITHMS)}.")


# --- the token endpoint ----------------------------------------------------------------------


class TokenRules:
    """The grant extension (``register_grant(grant, [extension])``) on every grant of /token.

    After the grant has authenticated the client and read its code or refresh token: a FAPI 2.0
    client's request needs a DPoP proof (the DPoP extension put its key on the request; with the
    DPoP feature off there is none, and the request is refused), and its code is at most
    :data:`CODE_LIFETIME` seconds old. Nothing is committed before the refusal: the code or
    refresh token stays as it was.
    """

    def __call__(self, grant: BaseGrant) -> None:
        grant.register_hook("after_validate_token_request", self.check)

    @staticmethod
    def check(grant: BaseGrant, _result=None) -> None:
        if not applies_to(grant.request.client):
            return
        if not getattr(grant.request, "dpop_jkt", None):
            raise InvalidDPoPProof("A FAPI 2.0 client gets sender-constrained tokens only: send a DPoP proof (RFC 9449).")
        _check_proof()
        code = getattr(grant.request, "authorization_code", None)
        if code is not None and code.created_at + timedelta(seconds=CODE_LIFETIME) <= clock.now():
            raise InvalidGrantError(f"A FAPI 2.0 authorization code is valid for {CODE_LIFETIME} seconds.")


def check_protected_resource_request(client: clients.Client | None) -> None:
    """§5.4.1 at a protected resource: a FAPI 2.0 client's token (which :mod:`.rfc9449_dpop` has
    checked is presented with a proof by its key) comes with a PS256 or ES256 proof."""
    if not applies_to(client):
        return
    try:
        _check_proof()
    except InvalidDPoPProof as error:
        raise ProtectedResourceError(error.error, error.description, scheme="DPoP", algs=" ".join(SIGNING_ALGORITHMS)) from None


def rotates_refresh_tokens(client: clients.Client) -> bool:
    """§5.3.2.1 item 9: a FAPI 2.0 client keeps its refresh token; other clients' rotate (RFC 9700 §4.14.2)."""
    return not applies_to(client)


def _check_proof() -> None:
    """§5.4.1 for the request's DPoP proof, if any (:mod:`.rfc9449_dpop` has checked the rest):
    PS256 or ES256, by an RSA key of 2048 bits or more or an EC key of 224 or more."""
    proof = request.headers.get("DPoP")
    if not proof:
        return
    try:
        header = json.loads(base64.urlsafe_b64decode(proof.split(".")[0] + "==="))
        key = jwk.import_key(header["jwk"])
    except (JoseError, ValueError, TypeError, KeyError, AttributeError):
        raise InvalidDPoPProof("The DPoP proof is not a valid signed JWT.") from None
    if header.get("alg") not in SIGNING_ALGORITHMS or not _strong_enough(key):
        raise InvalidDPoPProof(f"A FAPI 2.0 DPoP proof is signed with {' or '.join(SIGNING_ALGORITHMS)} by an RSA key of "
                               f"{MINIMUM_KEY_BITS['RSA']} bits or more or an EC key of {MINIMUM_KEY_BITS['EC']} or more.")
