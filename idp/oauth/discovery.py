"""OpenID Connect Discovery 1.0 metadata (and RFC 8414) and the JWKS (RFC 7517) the tokens are signed with.

The metadata of each optional feature comes from the same ``FEATURES`` table that registers it
(:mod:`idp.oauth`): a feature turned off is not announced.
"""

import hashlib
import json

from flask import current_app, request

from .. import assurance, claims, client as clients, public_documents, signing_key
from .rfc7523_client_auth import CLIENT_ASSERTION_ALGORITHMS, CONFIDENTIAL_AUTH_METHODS
from .rfc9449_dpop import SIGNING_ALGORITHMS as DPOP_SIGNING_ALGORITHMS
from .routes import blueprint


def metadata() -> dict:
    issuer = current_app.config["ISSUER"]
    features = current_app.config["FEATURES"]
    document = {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "jwks_uri": issuer + "/jwks.json",
        "revocation_endpoint": issuer + "/revoke",
        "end_session_endpoint": issuer + "/logout",
        "scopes_supported": clients.SUPPORTED_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": current_app.config["SIGNING_ALGORITHMS"],
        "token_endpoint_auth_methods_supported": clients.SUPPORTED_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": CLIENT_ASSERTION_ALGORITHMS,
        "revocation_endpoint_auth_methods_supported": clients.SUPPORTED_AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": claims.CLAIMS_SUPPORTED,
        "claims_parameter_supported": True,
        "claim_types_supported": ["normal"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "acr_values_supported": assurance.ACR_VALUES,
        "prompt_values_supported": ["none", "login", "consent", "select_account", "create"],
        "display_values_supported": ["page"],
        "ui_locales_supported": current_app.config["LANGUAGES"],
        "claims_locales_supported": current_app.config["LANGUAGES"],
        "authorization_response_iss_parameter_supported": True,
        "frontchannel_logout_supported": False,
        "service_documentation": issuer + "/",
    }
    if features["client_credentials"]["enabled"]:
        document["grant_types_supported"].append("client_credentials")
    if features["token_exchange"]["enabled"]:
        document["grant_types_supported"].append(clients.TOKEN_EXCHANGE)
    if features["dynamic_registration"]["enabled"]:
        document["registration_endpoint"] = issuer + "/register"  # RFC 7591 §3, RFC 8414 §2
    if features["introspection"]["enabled"]:
        document["introspection_endpoint"] = issuer + "/introspect"  # RFC 8414 §2
        document["introspection_endpoint_auth_methods_supported"] = CONFIDENTIAL_AUTH_METHODS
    if features["par"]["enabled"]:  # RFC 9126 §5
        document["pushed_authorization_request_endpoint"] = issuer + "/par"
        document["require_pushed_authorization_requests"] = features["par"]["required_for_all_clients"]
    if features["dpop"]["enabled"]:  # RFC 9449 §5.1
        document["dpop_signing_alg_values_supported"] = DPOP_SIGNING_ALGORITHMS
    if features["backchannel_logout"]["enabled"]:  # OpenID Connect Back-Channel Logout 1.0 §2.1
        document["backchannel_logout_supported"] = True
        document["backchannel_logout_session_supported"] = True
    return document


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
