"""Token, revocation, introspection (RFC 6749 §3.2, RFC 7009, RFC 7662) and userinfo (Core §5.3)."""

import json

from flask import current_app, jsonify, request

from .. import claims, dpop, signing_key, token as tokens
from ..extensions import csrf, limiter
from . import blueprint
from .server import authorization


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@blueprint.post("/token")
@csrf.exempt
@limiter.limit(lambda: current_app.config["RATE_LIMIT_TOKEN"])
def token_endpoint():
    # The first signing keys are created (and committed) on first use: do it before a grant
    # opens its transaction, never in the middle of redeeming a code or a refresh token.
    signing_key.ensure_keys()
    try:
        dpop.prove_token_request()
    except dpop.InvalidProof as error:
        status, body, headers = error()
        return _with_dpop_nonce(_no_store(current_app.response_class(json.dumps(body), status, headers)))
    return _with_dpop_nonce(_no_store(authorization.create_token_response()))


def _with_dpop_nonce(response):
    """RFC 9449 §8: when proofs must carry a server nonce, every answer hands out the current one."""
    if current_app.config["DPOP_NONCE_REQUIRED"]:
        response.headers["DPoP-Nonce"] = dpop.current_nonce()
    return response


@blueprint.post("/revoke")
@csrf.exempt
def revoke():
    return _no_store(authorization.create_endpoint_response("revocation"))


@blueprint.post("/introspect")
@csrf.exempt
def introspect():
    return _no_store(authorization.create_endpoint_response("introspection"))


def _bearer_error(status: int, error: str, description: str):
    """RFC 6750 §3: errors of a protected resource go in ``WWW-Authenticate``."""
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    header = f'Bearer realm="{current_app.config["ISSUER"]}", error="{error}", error_description="{description}"'
    if error == "insufficient_scope":
        header += ', scope="openid"'
    response.headers["WWW-Authenticate"] = header
    return _no_store(response)


def _dpop_error(error: "dpop.InvalidProof"):
    """RFC 9449 §7.1: a refused DPoP presentation, with the DPoP challenge (and a nonce if one is due)."""
    response = jsonify(error=error.error, error_description=error.description)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = (
        f'DPoP realm="{current_app.config["ISSUER"]}", error="{error.error}", error_description="{error.description}", '
        f'algs="{" ".join(dpop.SIGNING_ALGORITHMS)}"'
    )
    return _with_dpop_nonce(_no_store(response))


@blueprint.route("/userinfo", methods=["GET", "POST"])
@csrf.exempt
def userinfo():
    scheme, value = tokens.presented_token(request.headers.get("Authorization"))
    if value is None and request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        value = request.form.get("access_token")  # RFC 6750 §2.2
    if value is None:
        response = _no_store(jsonify(error="invalid_request", error_description="No access token."))
        response.status_code = 401
        response.headers["WWW-Authenticate"] = f'Bearer realm="{current_app.config["ISSUER"]}"'
        return response
    found = tokens.use_access_token(value)
    if found is None or found.token.account_id is None:
        return _bearer_error(401, "invalid_token", "The access token is invalid, expired or revoked.")
    row, account, client = found.token, found.account, found.client
    try:
        dpop.check_presentation(row.dpop_jkt, scheme, value)
    except dpop.InvalidProof as error:
        return _dpop_error(error)
    if "openid" not in tokens.scopes(row):
        return _bearer_error(403, "insufficient_scope", "The access token lacks the openid scope.")
    if account is None or not account.is_active or client is None:
        return _bearer_error(401, "invalid_token", "The access token is no longer valid.")
    document = {"sub": row.subject, **claims.release(account, client, row.scope, found.claims_request, "userinfo")}
    return _no_store(jsonify(document))
