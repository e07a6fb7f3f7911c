"""OpenID Connect Discovery 1.0 metadata and the JWKS (RFC 7517) the tokens are signed with."""

import hashlib
import json

from flask import current_app, request

from .. import claims, client as clients, dpop, public_documents, signing_key
from . import blueprint
from .server import CLIENT_ASSERTION_ALGORITHMS

ACR_SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"
ACR_VALUES = ["http://eidas.europa.eu/LoA/low", ACR_SUBSTANTIAL, "http://eidas.europa.eu/LoA/high"]


def metadata() -> dict:
    issuer = current_app.config["ISSUER"]
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "jwks_uri": issuer + "/jwks.json",
        "registration_endpoint": issuer + "/register",
        "revocation_endpoint": issuer + "/revoke",
        "introspection_endpoint": issuer + "/introspect",
        "end_session_endpoint": issuer + "/logout",
        "scopes_supported": clients.SUPPORTED_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", clients.TOKEN_EXCHANGE],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": current_app.config["SIGNING_ALGORITHMS"],
        "token_endpoint_auth_methods_supported": clients.SUPPORTED_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": CLIENT_ASSERTION_ALGORITHMS,
        "revocation_endpoint_auth_methods_supported": clients.SUPPORTED_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": claims.CLAIMS_SUPPORTED,
        "claims_parameter_supported": True,
        "claim_types_supported": ["normal"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "acr_values_supported": ACR_VALUES,
        "prompt_values_supported": ["none", "login", "consent", "select_account", "create"],
        "display_values_supported": ["page"],
        "ui_locales_supported": current_app.config["LANGUAGES"],
        "claims_locales_supported": current_app.config["LANGUAGES"],
        "authorization_response_iss_parameter_supported": True,
        "frontchannel_logout_supported": False,
        "pushed_authorization_request_endpoint": issuer + "/par",
        "dpop_signing_alg_values_supported": dpop.SIGNING_ALGORITHMS,
        "require_pushed_authorization_requests": current_app.config["PAR_REQUIRED_FOR_ALL_CLIENTS"],
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "service_documentation": issuer + "/",
    }


def _cacheable_json(document: dict, max_age: int, lapses_at=None):
    """A public JSON document with an ETag; each worker then serves it from its copy for a few
    seconds (:mod:`idp.public_documents`)."""
    public_documents.mark_cacheable(lapses_at)
    body = json.dumps(document, separators=(",", ":"), sort_keys=True)
    etag = hashlib.sha256(body.encode()).hexdigest()[:32]
    response = current_app.response_class(body, mimetype="application/json")
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response.make_conditional(request)


@blueprint.get("/.well-known/openid-configuration")
def openid_configuration():
    return _cacheable_json(metadata(), 3600)


@blueprint.get("/.well-known/oauth-authorization-server")
def oauth_authorization_server():
    """RFC 8414 metadata: the same document."""
    return _cacheable_json(metadata(), 3600)


@blueprint.get("/jwks.json")
def jwks():
    keys, lapses_at = signing_key.published_keys_until()
    return _cacheable_json({"keys": keys}, 300, lapses_at)
