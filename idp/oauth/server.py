"""The Authlib authorization server, with our storage behind its hook methods.

Grants and endpoints are Authlib's; what they store and look up is delegated to the domain
modules (``client``, ``token``, ``account``). Tokens are recorded when issued, so the grants
build their token responses themselves instead of using Authlib's bearer generator.
"""

import base64
import binascii
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable
from urllib.parse import unquote_plus

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidGrantError, InvalidRequestError, OAuth2Request, grants, scope_to_list
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .. import account as accounts, audit, claims, client as clients, clock, delegation as delegations, dpop, replay_cache
from .. import token as tokens
from ..extensions import db
from .token_exchange import TokenExchangeGrant

ALL_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
CONFIDENTIAL_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
CLIENT_ASSERTION_ALGORITHMS = ["RS256", "ES256", "PS256"]


@dataclass
class EndUser:
    """The patient a grant acts for, with how they authenticated; ``delegation`` when an assistant acts."""

    account: accounts.Account
    context: tokens.AuthContext
    delegation: delegations.Delegation | None = None

    def get_user_id(self) -> int:
        return self.account.id


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (RFC 9700 §2.1.1: ``plain`` offers no protection against leaks)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def get_authorization_code_challenge(self, authorization_code):
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code):
        return authorization_code.code_challenge_method


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH_METHODS

    @staticmethod
    def validate_authorization_redirect_uri(request, client):
        """A redirect URI that does not even parse (bad port, broken IPv6 host) is unregistered too."""
        try:
            return grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(request, client)
        except ValueError:
            raise InvalidRequestError("redirect_uri is not a valid URI.") from None

    def save_authorization_code(self, code, request):
        payload = request.payload.data
        end_user: EndUser = request.user
        return tokens.save_authorization_code(
            code,
            client=request.client,
            account=end_user.account,
            redirect_uri=payload.get("redirect_uri"),
            scope=request.scope,
            nonce=payload.get("nonce"),
            code_challenge=payload.get("code_challenge"),
            code_challenge_method=payload.get("code_challenge_method") or ("S256" if payload.get("code_challenge") else None),
            claims_request=claims.parse_claims_request(payload.get("claims")),
            context=end_user.context,
            delegation_id=end_user.delegation.id if end_user.delegation else None,
            dpop_jkt=payload.get("dpop_jkt"),
        )

    def validate_token_request(self):
        super().validate_token_request()
        bound_key = self.request.authorization_code.dpop_jkt
        if bound_key and bound_key != dpop.proven_key():  # RFC 9449 §10
            raise InvalidGrantError("The code is bound to a DPoP key: the request needs a DPoP proof by that key.")

    def query_authorization_code(self, code, client):
        return tokens.redeem_authorization_code(code, client)

    def delete_authorization_code(self, authorization_code):
        """Nothing to do: the code was claimed once and for all when it was redeemed."""

    def authenticate_user(self, authorization_code):
        return end_user_of(authorization_code.account_id, authorization_code.context, authorization_code.delegation_id)

    def create_token_response(self):
        client = self.request.client
        code = self.request.authorization_code
        end_user = self.authenticate_user(code)
        if end_user is None:
            raise InvalidGrantError("The account behind this code is not active.")
        self.request.user = end_user
        actors = tokens.actor_claims(end_user.account, client, end_user.delegation)
        response, _ = tokens.issue(
            client,
            end_user.account,
            code.scope,
            grant_type=self.GRANT_TYPE,
            context=code.context,
            code_hash=code.code_hash,
            include_refresh_token=issues_refresh_token(client, code.scope),
            delegation=end_user.delegation,
            actors=actors,
        )
        if "openid" in scope_to_list(code.scope):
            response["id_token"] = tokens.encode_id_token(
                client,
                end_user.account,
                claims.release(end_user.account, client, code.scope, code.claims_request, "id_token") | actors,
                nonce=code.nonce,
                context=code.context,
                access_token=response["access_token"],
            )
        db.session.commit()
        return 200, response, self.TOKEN_RESPONSE_HEADER


def end_user_of(account_id: int, context: tokens.AuthContext, delegation_id: str | None) -> EndUser | None:
    """The patient behind a code or refresh token, if still active and, for an assistant, still assisted."""
    account = accounts.get(account_id)
    if account is None or not account.is_active:
        return None
    delegation = delegations.get(delegation_id)
    if delegation_id and (delegation is None or not delegation.is_in_force()):
        return None
    return EndUser(account, context, delegation)


def issues_refresh_token(client: clients.Client, scope: str) -> bool:
    """Refresh tokens only for ``offline_access`` (OpenID Connect Core §11) and allowed clients."""
    return client.check_grant_type("refresh_token") and "offline_access" in scope_to_list(scope)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        return tokens.claim_refresh_token(refresh_token)

    def authenticate_user(self, refresh_token):
        return end_user_of(refresh_token.account_id, refresh_token.context, refresh_token.delegation_id)

    def revoke_old_credential(self, refresh_token):
        """Nothing to do: the old refresh token was marked rotated when it was claimed."""

    def create_token_response(self):
        family = self.request.refresh_token
        end_user = self.authenticate_user(family)
        if end_user is None:
            db.session.commit()
            raise InvalidGrantError("The account behind this token is not active.")
        dpop.check_refresh_binding(family.dpop_jkt if self.request.client.is_public else None)
        # Never more than the client is registered for today (an admin may have narrowed it).
        scope = self.request.client.get_allowed_scope(self.request.payload.scope or family.scope)
        actors = tokens.actor_claims(end_user.account, self.request.client, end_user.delegation)
        response, _ = tokens.issue(
            self.request.client,
            end_user.account,
            scope,
            grant_type=self.GRANT_TYPE,
            context=family.context,
            family=family,
            include_refresh_token=True,
            delegation=end_user.delegation,
            actors=actors,
        )
        if "openid" in scope_to_list(scope):
            response["id_token"] = tokens.encode_id_token(
                self.request.client, end_user.account, actors, nonce=None,
                context=family.context, access_token=response["access_token"]
            )
        db.session.commit()
        return 200, response, self.TOKEN_RESPONSE_HEADER


USER_SCOPES = {"openid", "profile", "email", "phone", "offline_access", "matricule", "delegations", "assisted_patients"}


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """Machine clients: an access token for the client itself, no ID token, no refresh token."""

    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_AUTH_METHODS

    def create_token_response(self):
        client = self.request.client
        requested = self.request.payload.scope
        scope = " ".join(s for s in scope_to_list(client.get_allowed_scope(requested) if requested else client.scope) or [] if s not in USER_SCOPES)
        response, _ = tokens.issue(client, None, scope, grant_type=self.GRANT_TYPE)
        db.session.commit()
        return 200, response, self.TOKEN_RESPONSE_HEADER


def authenticate_client_secret_basic(query_client: Callable[[str], clients.Client | None], request: OAuth2Request) -> clients.Client | None:
    """``client_secret_basic``: id and secret are form-urlencoded before Base64 (RFC 6749 §2.3.1).

    Authlib percent-decodes them but keeps ``+``, which form encoding uses for a space.
    """
    kind, _, credentials = (request.headers.get("Authorization") or "").partition(" ")
    if kind.lower() != "basic":
        return None
    try:
        client_id, separator, client_secret = base64.b64decode(credentials, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not separator:
        return None
    client = query_client(unquote_plus(client_id))
    if client is None:
        raise InvalidClientError(status_code=401, description="The client does not exist on this server.")
    return client if client.check_client_secret(unquote_plus(client_secret)) else None


class PrivateKeyJwt(JWTBearerClientAssertion):
    """``private_key_jwt`` client authentication (OpenID Connect Core §9, RFC 7523)."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def process_assertion_claims(self, assertion, resolve_key):
        """Verify with the advertised asymmetric algorithms only: Authlib would take joserfc's
        defaults, which refuse PS256 and accept HS256 (a MAC is not a private key)."""
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=CLIENT_ASSERTION_ALGORITHMS)
        except (JoseError, ValueError, TypeError) as error:  # joserfc raises TypeError on e.g. ``"crit": null``
            # A fixed text: joserfc's descriptions may quote the attacker's header (a ``crit``
            # value), and characters RFC 6749 §5.2 forbids there made Authlib fail with a 500.
            raise InvalidClientError(description="The client assertion is not valid.") from error
        self.verify_claims(token.claims)
        return token.claims

    def resolve_client_public_key(self, client):
        return KeySet.import_key_set(client.jwks or {"keys": []})

    def validate_jti(self, claims_, jti):
        """Spend the ``jti`` for the assertion's lifetime (RFC 7523 §3), committed at once: a
        request that fails later must not give the assertion back for a replay."""
        expires = clock.now() + timedelta(seconds=max(0, int(claims_.get("exp", 0)) - clock.timestamp()) + 60)
        first_use = replay_cache.first_use("client_assertion", f"{claims_.get('iss')}|{jti}", expires)
        db.session.commit()
        return first_use

    def get_audiences(self):
        issuer = current_app.config["ISSUER"]
        return [issuer, issuer + "/token", issuer + "/par"]  # RFC 9126 §2


class TokenRevocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ALL_AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        if token_type_hint != "access_token":
            if found := tokens.find_refresh_token(token_string):
                return found
        return tokens.find_access_token(token_string)

    def revoke_token(self, token, request):
        revoked = tokens.revoke_family(token.family_id)
        audit.record(audit.Event.TOKEN_REVOKED, account_id=token.account_id, client_id=token.client_id, revoked_tokens=revoked)
        db.session.commit()


class TokenIntrospection(IntrospectionEndpoint):
    """RFC 7662 for resource servers; they authenticate as confidential clients.

    ``query_token`` answers with the introspection response itself (see ``token.introspect``).
    """

    CLIENT_AUTH_METHODS = CONFIDENTIAL_AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return tokens.introspect(token_string, token_type_hint)

    def check_permission(self, token, client, request):
        return True

    def create_introspection_payload(self, token):
        return token


authorization = AuthorizationServer()


def init_app(app: Flask) -> None:
    authorization.init_app(app, query_client=clients.get_for_protocol, save_token=lambda token, request: None)
    authorization.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
    authorization.register_grant(RefreshTokenGrant)
    authorization.register_grant(ClientCredentialsGrant)
    authorization.register_grant(TokenExchangeGrant)
    authorization.register_client_auth_method("client_secret_basic", authenticate_client_secret_basic)
    authorization.register_client_auth_method(PrivateKeyJwt.CLIENT_AUTH_METHOD, PrivateKeyJwt())
    authorization.register_endpoint(TokenRevocation)
    authorization.register_endpoint(TokenIntrospection)
