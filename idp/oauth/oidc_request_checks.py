"""The checks OpenID Connect and RFC 9700 add to an authorization request, on top of RFC 6749's.

Shared by the authorization endpoint and the PAR endpoint (RFC 9126 §2.1: a pushed request is
validated as /authorize would), so that neither imports the other.
"""

import re

from authlib.oauth2.rfc6749 import InvalidRequestError, InvalidScopeError, scope_to_list
from flask import current_app

from .. import claims, client as clients, pushed_request, token as tokens
from .errors import RequestNotSupported, RequestUriNotSupported

SUPPORTED_PROMPTS = {"none", "login", "consent", "select_account", "create"}
DPOP_JKT = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256 digest (RFC 7638, RFC 9449 §10)


def check_openid_request(params: dict, client: clients.Client, scope: str) -> None:
    """Request objects, PKCE S256 (RFC 9700 §2.1.1), ``prompt``, ``max_age``, ``claims``,
    ``redirect_uri`` for OpenID requests, ``dpop_jkt``, and nonce replay (Core §15.5.2)."""
    if "request" in params:
        raise RequestNotSupported("Request objects are not supported.")
    if "request_uri" in params and not (current_app.config["FEATURES"]["par"]["enabled"] and pushed_request.is_reference(params["request_uri"])):
        raise RequestUriNotSupported("Only request_uri values from the pushed authorization request endpoint are accepted.")
    if not scope:
        raise InvalidScopeError("None of the requested scopes is allowed for this client.")
    pkce_required = client.is_public or current_app.config["PKCE_REQUIRED_FOR_ALL_CLIENTS"]
    if pkce_required and not params.get("code_challenge"):
        raise InvalidRequestError("code_challenge (PKCE, S256) is required.")
    if params.get("code_challenge") and params.get("code_challenge_method") != "S256":
        raise InvalidRequestError("code_challenge_method must be S256.")
    prompts = params.get("prompt", "").split()
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other values.")
    if set(prompts) - SUPPORTED_PROMPTS:
        raise InvalidRequestError("Unsupported prompt value.")
    if "max_age" in params:
        try:
            if int(params["max_age"]) < 0:
                raise ValueError
        except ValueError:
            raise InvalidRequestError("max_age must be a non-negative integer.") from None
    try:
        claims.parse_claims_request(params.get("claims"))
    except claims.InvalidClaimsRequest as error:
        raise InvalidRequestError(str(error)) from None
    is_openid = "openid" in scope_to_list(scope)
    if is_openid and not params.get("redirect_uri"):
        raise InvalidRequestError("redirect_uri is required.")
    if "dpop_jkt" in params and not DPOP_JKT.fullmatch(params["dpop_jkt"]):
        raise InvalidRequestError("dpop_jkt must be a base64url SHA-256 JWK thumbprint (RFC 9449 section 10).")
    if nonce := params.get("nonce"):
        if len(nonce) > 255:
            raise InvalidRequestError("nonce is too long.")
        if tokens.nonce_was_used(client.client_id, nonce):
            raise InvalidRequestError("This nonce was already used.")
