"""The protocol package: OAuth 2.0 and OpenID Connect over the domain modules, one module per spec.

``rfc6749_grants`` (the grants and /token), ``rfc7636_pkce``, ``rfc7523_client_auth``,
``rfc7009_revocation``, ``rfc6750_bearer`` (the token validator of ``require_oauth``),
``oidc_userinfo``, ``authorize`` with ``oidc_request_checks`` and ``responses``, ``logout``,
``discovery``; ``fapi2_profile``, the rules of the clients registered with the FAPI 2.0
Security Profile; and the optional features of ``FEATURES`` (``config/default.py``):
``rfc9126_par``, ``rfc9449_dpop``, ``rfc8693_token_exchange``, ``rfc7662_introspection``,
``rfc7591_registration``, the client credentials grant, and back-channel logout (which lives
beside the SSO sessions, :mod:`idp.backchannel_logout`). :func:`init_app` registers what the
table enables; discovery announces the same. Errors are the classes of ``errors``.
"""

from authlib.oauth2 import OAuth2Error
from flask import Flask


def init_app(app: Flask) -> None:
    """Attach ``authorization`` and ``require_oauth`` (``idp.extensions``) and register the grants,
    endpoints, extensions and routes the ``FEATURES`` table enables."""
    from .. import client as clients
    from ..extensions import authorization, require_oauth
    from . import (authorize, discovery, errors, fapi2_profile, logout, oidc_userinfo, rfc6749_grants,  # noqa: F401  (routes)
                   rfc7009_revocation, rfc7523_client_auth, rfc7591_registration, rfc7636_pkce, rfc7662_introspection, rfc8693_token_exchange,
                   rfc9126_par, rfc9449_dpop)
    from .rfc6750_bearer import AccessTokenValidator
    from .routes import blueprint

    features = app.config["FEATURES"]
    # The DPoP extension first: the profile's rules read the key it proved.
    token_extensions = [*([rfc9449_dpop.DPoPBinding()] if features["dpop"]["enabled"] else []), fapi2_profile.TokenRules()]
    clients.SECURITY_PROFILES[fapi2_profile.NAME] = fapi2_profile.check_registration

    # One app per process in production; tests build many in turn, each with its own FEATURES,
    # so the registries of the two (unbound) objects start afresh with each app.
    authorization.__init__()
    require_oauth.__init__()
    authorization.init_app(app, query_client=clients.get_for_protocol, save_token=lambda token, request: None)
    authorization.register_client_auth_method("client_secret_basic", rfc7523_client_auth.authenticate_client_secret_basic)
    authorization.register_client_auth_method(rfc7523_client_auth.PrivateKeyJwt.CLIENT_AUTH_METHOD, rfc7523_client_auth.PrivateKeyJwt())
    authorization.register_grant(rfc6749_grants.AuthorizationCodeGrant, [rfc7636_pkce.S256CodeChallenge(required=True), *token_extensions])
    authorization.register_grant(rfc6749_grants.RefreshTokenGrant, token_extensions)
    authorization.register_endpoint(rfc7009_revocation.TokenRevocation)
    require_oauth.register_token_validator(AccessTokenValidator("bearer"))
    require_oauth.register_token_validator(AccessTokenValidator("dpop"))
    app.register_blueprint(blueprint)

    if features["client_credentials"]["enabled"]:
        authorization.register_grant(rfc6749_grants.ClientCredentialsGrant, token_extensions)
    if features["token_exchange"]["enabled"]:
        authorization.register_grant(rfc8693_token_exchange.TokenExchangeGrant, token_extensions)
    if features["introspection"]["enabled"]:
        authorization.register_endpoint(rfc7662_introspection.TokenIntrospection)
        app.register_blueprint(rfc7662_introspection.blueprint)
    if features["par"]["enabled"]:
        app.register_blueprint(rfc9126_par.blueprint)
    if features["dynamic_registration"]["enabled"]:
        app.register_blueprint(rfc7591_registration.blueprint)
    app.register_error_handler(OAuth2Error, errors.json_response)
