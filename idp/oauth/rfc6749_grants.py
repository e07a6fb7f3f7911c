"""The OAuth 2.0 Authorization Framework, RFC 6749: its grants and the token endpoint (§3.2).

https://www.rfc-editor.org/rfc/rfc6749

The grants are Authlib's; what they store and look up is delegated to the domain modules
(``client``, ``token``, ``account``). Tokens are recorded when issued, so the grants build their
token responses themselves instead of using Authlib's bearer generator. The DPoP key a request
proved (:mod:`idp.oauth.rfc9449_dpop`, a grant extension) reaches ``token.issue`` as an argument.
"""

from dataclasses import dataclass

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, grants, scope_to_list
from authlib.oauth2.rfc6749.hooks import hooked
from flask import request as http_request

from .. import account as accounts, claims, client as clients, database, delegation as delegations, signing_key
from .. import token as tokens
from ..extensions import authorization, csrf, db, limiter
from . import fapi2_profile, rfc9449_dpop
from .routes import blueprint
from .rfc7523_client_auth import ALL_AUTH_METHODS, CONFIDENTIAL_AUTH_METHODS


@dataclass
class EndUser:
    """The patient a grant acts for, with how they authenticated; ``delegation`` when an assistant acts."""

    account: accounts.Account | accounts.AccountRow
    context: tokens.AuthContext
    delegation: delegations.Delegation | None = None

    def get_user_id(self) -> int:
        return self.account.id


def proven_key(request) -> str | None:
    """The thumbprint of the DPoP key the token request proved, if the DPoP feature checked one."""
    return getattr(request, "dpop_jkt", None)


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
            dpop_jkt=proven_key(self.request),
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
    """The patient behind a code, if still active and, for an assistant, still assisted."""
    return active_end_user(accounts.get(account_id), context, delegation_id)


def active_end_user(account: accounts.Account | accounts.AccountRow | None, context: tokens.AuthContext,
             delegation_id: str | None) -> EndUser | None:
    """The patient behind a code or refresh token, if still active and, for an assistant, still assisted."""
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

    @hooked
    def validate_token_request(self):
        """Authlib's, with hooks around it (for the DPoP extension)."""
        super().validate_token_request()

    def authenticate_refresh_token(self, refresh_token):
        """Claimed for one rotation; kept as it is for a client whose profile forbids rotation."""
        if fapi2_profile.rotates_refresh_tokens(self.request.client):
            return tokens.claim_refresh_token(refresh_token)
        return tokens.reuse_refresh_token(refresh_token)

    def authenticate_user(self, refresh_token: tokens.ClaimedRefreshToken):
        """The patient was read with the token, in the statement that claimed it."""
        return active_end_user(refresh_token.account, refresh_token.context, refresh_token.delegation_id)

    def revoke_old_credential(self, refresh_token):
        """Nothing to do: the old refresh token was marked rotated when it was claimed."""

    def create_token_response(self):
        family = self.request.refresh_token
        end_user = self.authenticate_user(family)
        if end_user is None:
            db.session.commit()
            raise InvalidGrantError("The account behind this token is not active.")
        # Never more than the client is registered for today (an admin may have narrowed it).
        scope = self.request.client.get_allowed_scope(self.request.payload.scope or family.scope)
        # ``may_act`` names the patient's assistants: read only for a patient who has some.
        if end_user.delegation is not None or family.may_have_assistants:
            actors = tokens.actor_claims(end_user.account, self.request.client, end_user.delegation)
        else:
            actors = {}
        response, _ = tokens.issue(
            self.request.client,
            end_user.account,
            scope,
            grant_type=self.GRANT_TYPE,
            context=family.context,
            family=family,
            include_refresh_token=fapi2_profile.rotates_refresh_tokens(self.request.client),
            delegation=end_user.delegation,
            actors=actors,
            dpop_jkt=proven_key(self.request),
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

    @hooked
    def validate_token_request(self):
        """Authlib's, with hooks around it (for the DPoP extension)."""
        super().validate_token_request()

    def create_token_response(self):
        client = self.request.client
        requested = self.request.payload.scope
        scope = " ".join(s for s in scope_to_list(client.get_allowed_scope(requested) if requested else client.scope) or [] if s not in USER_SCOPES)
        response, _ = tokens.issue(client, None, scope, grant_type=self.GRANT_TYPE, dpop_jkt=proven_key(self.request))
        db.session.commit()
        return 200, response, self.TOKEN_RESPONSE_HEADER


@blueprint.post("/token")
@csrf.exempt
@limiter.per_address("RATE_LIMIT_TOKEN")
def token_endpoint():
    """RFC 6749 §3.2; the answer is never cached (§5.1)."""
    if http_request.form.get("grant_type") == ClientCredentialsGrant.GRANT_TYPE:
        database.use_autocommit()  # its one write is a single statement (token.issue)
    # The first signing keys are created (and committed) on first use: do it before a grant
    # opens its transaction, never in the middle of redeeming a code or a refresh token.
    signing_key.ensure_keys()
    response = authorization.create_token_response()
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return rfc9449_dpop.with_nonce(response)
