"""The pushed authorization request endpoint (RFC 9126 §2) and its use at /authorize (§4).

The client authenticates as at the token endpoint and the request is validated exactly as
/authorize would (client, redirect URI, scope, PKCE, OpenID Connect checks), so errors reach
the client directly instead of through the browser. Clients registered with
``require_pushed_authorization_requests`` (or all, with ``PAR_REQUIRED_FOR_ALL_CLIENTS``) may
use /authorize only with a ``request_uri`` from here.
"""

import secrets

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError, OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from flask import current_app, jsonify, request, session

from .. import client as clients, dpop, pushed_request
from ..extensions import csrf, db, limiter
from . import blueprint
from .server import ALL_AUTH_METHODS, authorization

CLIENT_AUTHENTICATION_PARAMETERS = ("client_secret", "client_assertion", "client_assertion_type")


class RequestUriNotSupported(OAuth2Error):
    error = "request_uri_not_supported"


class InvalidRequestUri(OAuth2Error):
    """OpenID Connect Core §3.1.2.6 / RFC 9101 §7: the ``request_uri`` cannot be used."""

    error = "invalid_request_uri"


def _json_error(error: OAuth2Error):
    status = 401 if isinstance(error, InvalidClientError) else 400
    response = jsonify({"error": error.error, **({"error_description": error.description} if error.description else {})})
    response.status_code = status
    if status == 401 and request.authorization:
        response.headers["WWW-Authenticate"] = 'Basic realm="' + current_app.config["ISSUER"] + '"'
    response.headers["Cache-Control"] = "no-store"
    if isinstance(error, dpop.InvalidProof) and current_app.config["DPOP_NONCE_REQUIRED"]:
        response.headers["DPoP-Nonce"] = dpop.current_nonce()  # RFC 9449 §8
    return response


def _bind_to_proof_key(parameters: dict) -> None:
    """RFC 9449 §10.1: a DPoP proof sent with the pushed request binds the code like ``dpop_jkt``;
    with both, they must name the same key."""
    if not (values := request.headers.getlist("DPoP")):
        return
    try:
        thumbprint = dpop.verify_proof(values, "POST", current_app.config["ISSUER"] + "/par")
    finally:
        db.session.commit()  # the proof's jti stays spent whatever follows
    if parameters.setdefault("dpop_jkt", thumbprint) != thumbprint:
        raise InvalidRequestError("dpop_jkt does not match the key of the DPoP proof (RFC 9449 section 10.1).")


def required_for(client: clients.Client) -> bool:
    return current_app.config["PAR_REQUIRED_FOR_ALL_CLIENTS"] or bool((client.extra_metadata or {}).get("require_pushed_authorization_requests"))


def as_oauth_request(parameters: dict) -> OAuth2Request:
    """An Authlib request over ``parameters`` instead of the HTTP request's own."""
    built = OAuth2Request(request.method, request.url, headers=request.headers)
    built.payload = BasicOAuth2Payload(parameters)
    return built


@blueprint.post("/par")
@csrf.exempt
@limiter.limit(lambda: current_app.config["RATE_LIMIT_TOKEN"])
def pushed_authorization_request():
    from .authorize import check_openid_request

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
    except OAuth2Error as error:
        db.session.rollback()
        return _json_error(error)
    reference, ttl = pushed_request.push(client.client_id, parameters)
    db.session.commit()
    response = jsonify({"request_uri": reference, "expires_in": ttl})
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


def resolve(http_request) -> tuple[OAuth2Request, dict | None]:
    """The authorization request to process: the pushed one when ``request_uri`` names one.

    Returns the Authlib request and, for a pushed request, the short parameters
    (``client_id`` + ``request_uri``) that stand for it in redirects and forms.
    """
    reference = http_request.values.get("request_uri")
    if not pushed_request.is_reference(reference):
        return authorization.create_oauth2_request(http_request), None  # other request_uri: refused later, to the client
    client_id = http_request.values.get("client_id")
    binding = session.setdefault("par_binding", secrets.token_urlsafe(16))
    try:
        parameters = pushed_request.redeem(reference, client_id, binding)
    except pushed_request.UnusableReference as error:
        raise InvalidRequestUri(str(error)) from None
    db.session.commit()
    short = {"client_id": client_id, "request_uri": reference}
    return as_oauth_request({**parameters, "request_uri": reference}), short
