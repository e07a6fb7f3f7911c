"""OAuth 2.0 Token Exchange (RFC 8693), https://www.rfc-editor.org/rfc/rfc8693.

An assistant's access token becomes one for a patient they assist: the relying party presents
the assistant's token as ``subject_token`` and names the patient with ``requested_subject``
(the parameter Keycloak uses), as the client knows that patient's ``sub``. The token issued
has ``sub`` = the patient and ``act`` = the assistant (§4.1), never more scope than the
subject token (§2.1), and no refresh token. Authlib's ``rfc8693`` package is empty: this is
a grant written the way Authlib's own are, registered with ``register_grant``.
"""

from authlib.oauth2.rfc6749 import (InvalidGrantError, InvalidRequestError, InvalidScopeError, UnauthorizedClientError,
                                    scope_to_list)
from authlib.oauth2.rfc6749.grants import BaseGrant, TokenEndpointMixin
from authlib.oauth2.rfc6749.hooks import hooked

from .. import account as accounts, client as clients, delegation as delegations, token as tokens
from ..extensions import db
from .errors import InvalidTarget
from .rfc6749_grants import proven_key

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


class TokenExchangeGrant(BaseGrant, TokenEndpointMixin):
    GRANT_TYPE = clients.TOKEN_EXCHANGE
    TOKEN_ENDPOINT_AUTH_METHODS = clients.SUPPORTED_AUTH_METHODS

    @hooked
    def validate_token_request(self):
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(f"The client is not allowed grant_type={self.GRANT_TYPE}.")
        self.request.client = client
        form = self.request.payload.data
        for name in ("subject_token", "subject_token_type", "requested_subject"):
            if not form.get(name):
                raise InvalidRequestError(f"{name} is required.")
        if form["subject_token_type"] != ACCESS_TOKEN_TYPE:
            raise InvalidRequestError(f"subject_token_type must be {ACCESS_TOKEN_TYPE}.")
        if form.get("requested_token_type") not in (None, ACCESS_TOKEN_TYPE):
            raise InvalidRequestError(f"Only {ACCESS_TOKEN_TYPE} can be issued.")
        if form.get("actor_token") or form.get("actor_token_type"):
            raise InvalidRequestError("actor_token is not supported: the subject token's holder is the actor.")
        if form.get("resource"):
            raise InvalidTarget("resource is not supported; use audience.")
        self.request.audience = self._audience(client, self.request.payload.datalist.get("audience") or [])
        subject_token = tokens.find_access_token(form["subject_token"])
        if subject_token is None or subject_token.client_id != client.client_id:
            raise InvalidGrantError("subject_token is not an active access token issued to this client.")
        if subject_token.dpop_jkt and subject_token.dpop_jkt != proven_key(self.request):
            raise InvalidGrantError("subject_token is DPoP-bound: the request needs a DPoP proof by its key (RFC 9449).")
        assistant = accounts.get(subject_token.account_id) if subject_token.account_id else None
        if assistant is None or not assistant.is_active or subject_token.delegation_id is not None:
            raise InvalidGrantError("subject_token must be a patient's own access token.")
        self.request.scope = self._scope(client, subject_token)
        delegation = delegations.find_for_subject(assistant, client, form["requested_subject"])
        if delegation is None:
            raise InvalidGrantError("No delegation in force lets this patient act for requested_subject.")
        self.request.subject_token, self.request.delegation = subject_token, delegation

    @staticmethod
    def _audience(client: clients.Client, requested: list[str]) -> str | None:
        """One audience, the issuer or one the client is registered for (its resource servers)."""
        if not requested:
            return None
        allowed = tokens.access_token_audience(client)
        allowed = allowed if isinstance(allowed, list) else [allowed]
        if len(requested) > 1 or requested[0] not in allowed:
            raise InvalidTarget("audience is not a resource server this client may address.")
        return requested[0]

    def _scope(self, client: clients.Client, subject_token: tokens.Token) -> str:
        """The requested scope within the subject token's (§2.1), and within the client's today."""
        original = scope_to_list(subject_token.scope) or []
        requested = scope_to_list(self.request.payload.scope) or []
        if requested and not set(requested) <= set(original):
            raise InvalidScopeError("The requested scope exceeds the subject token's scope.")
        scope = client.get_allowed_scope(" ".join(requested or original))
        if not scope:
            raise InvalidScopeError("None of the requested scopes is allowed for this client.")
        return scope

    def create_token_response(self):
        delegation, subject_token = self.request.delegation, self.request.subject_token
        response, _ = tokens.issue(
            self.request.client, delegation.owner, self.request.scope, grant_type=self.GRANT_TYPE,
            context=subject_token.context, delegation=delegation, audience=self.request.audience,
            dpop_jkt=proven_key(self.request),
        )
        response["issued_token_type"] = ACCESS_TOKEN_TYPE  # RFC 8693 §2.2.1
        db.session.commit()
        return 200, response, self.TOKEN_RESPONSE_HEADER
