"""OAuth 2.0 Pushed Authorization Requests, RFC 9126 (https://www.rfc-editor.org/rfc/rfc9126).

The endpoint /par (§2) and the use of its ``request_uri`` at /authorize (§4). The client
authenticates as at the token endpoint and the request is validated exactly as /authorize would
(client, redirect URI, scope, PKCE, OpenID Connect checks), so errors reach the client directly
instead of through the browser. A DPoP proof sent with the request binds the code to its key
(RFC 9449 §10.1). Clients registered with ``require_pushed_authorization_requests`` (or all, with
``FEATURES["par"]["required_for_all_clients"]``) may use /authorize only with a ``request_uri``
from here. ``FEATURES["par"]`` turns it on or off.
"""

import secrets

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError, OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from flask import Blueprint, current_app, jsonify, request, session

from .. import client as clients, pushed_request
from ..extensions import authorization, csrf, db, limiter
from . import errors, fapi2_profile, rfc9449_dpop
from .oidc_request_checks import check_openid_request
from .rfc7523_client_auth import ALL_AUTH_METHODS

CLIENT_AUTHENTICATION_PARAMETERS = ("client_secret", "client_assertion", "client_assertion_type")

blueprint = Blueprint("oauth_par", __name__)


def is_enabled() -> bool:
    return current_app.config["FEATURES"]["par"]["enabled"]


def required_for(client: clients.Client) -> bool:
    if not is_enabled():
        return False
    return current_app.config["FEATURES"]["par"]["required_for_all_clients"] or bool(
        (client.extra_metadata or {}).get("require_pushed_authorization_requests"))


def as_oauth_request(parameters: dict) -> OAuth2Request:
    """An Authlib request over ``parameters`` instead of the HTTP request's own."""
    built = OAuth2Request(request.method, request.url, headers=request.headers)
    built.payload = BasicOAuth2Payload(parameters)
    return built


def _error_response(error: OAuth2Error):
    error.status_code = 401 if isinstance(error, InvalidClientError) else 400
    response = errors.json_response(error)
    response.headers.pop("WWW-Authenticate", None)
    if error.status_code == 401 and request.authorization:
        response.headers["WWW-Authenticate"] = errors.www_authenticate("Basic", realm=current_app.config["ISSUER"])
    return rfc9449_dpop.with_nonce(response)


def _bind_to_proof_key(parameters: dict) -> None:
    """RFC 9449 §10.1: a DPoP proof sent with the pushed request binds the code like ``dpop_jkt``."""
    if not current_app.config["FEATURES"]["dpop"]["enabled"]:
        return
    try:
        key = rfc9449_dpop.pushed_request_key(parameters.get("dpop_jkt"))
    finally:
        db.session.commit()  # the proof's jti stays spent whatever follows
    if key:
        parameters["dpop_jkt"] = key


@blueprint.post("/par")
@csrf.exempt
@limiter.per_address("RATE_LIMIT_TOKEN")
def pushed_authorization_request():
    try:
        client = authorization.authenticate_client(authorization.create_oauth2_request(request), ALL_AUTH_METHODS, endpoint="par")
        db.session.commit()  # a private_key_jwt assertion's jti stays spent whatever follows
        parameters = {key: value for key, value in request.form.items() if key not in CLIENT_AUTHENTICATION_PARAMETERS}
        if "request_uri" in parameters:
            raise InvalidRequestError("request_uri must not be pushed (RFC 9126 section 2.1).")
        if parameters.get("client_id", client.client_id) != client.client_id:
            raise InvalidRequestError("client_id does not match the authenticated client.")
        parameters["client_id"] = client.client_id
        _bind_to_proof_key(parameters)
        grant = authorization.get_authorization_grant(as_oauth_request(parameters))
        grant.validate_authorization_request()
        check_openid_request(parameters, client, grant.request.scope)
        fapi2_profile.check_pushed_request(client, parameters)
    except OAuth2Error as error:
        db.session.rollback()
        return _error_response(error)
    reference, ttl = pushed_request.push(client.client_id, parameters)
    db.session.commit()
    response = jsonify({"request_uri": reference, "expires_in": ttl})
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return rfc9449_dpop.with_nonce(response)


def resolve(http_request) -> tuple[OAuth2Request, dict | None]:
    """The authorization request to process: the pushed one when ``request_uri`` names one.

    Returns the Authlib request and, for a pushed request, the short parameters
    (``client_id`` + ``request_uri``) that stand for it in redirects and forms. With the feature
    off, a ``request_uri`` is left for the request checks to refuse (``request_uri_not_supported``).
    """
    reference = http_request.values.get("request_uri")
    if not is_enabled() or not pushed_request.is_reference(reference):
        return authorization.create_oauth2_request(http_request), None  # other request_uri: refused later, to the client
    client_id = http_request.values.get("client_id")
    binding = session.setdefault("par_binding", secrets.token_urlsafe(16))
    try:
        parameters = pushed_request.redeem(reference, client_id, binding)
    except pushed_request.UnusableReference as error:
        raise errors.InvalidRequestUri(str(error)) from None
    db.session.commit()
    short = {"client_id": client_id, "request_uri": reference}
    return as_oauth_request({**parameters, "request_uri": reference}), short
