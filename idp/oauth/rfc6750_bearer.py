"""Bearer (and DPoP-bound) access tokens at protected resources: RFC 6750 and RFC 9449 §7.

https://www.rfc-editor.org/rfc/rfc6750

:class:`AccessTokenValidator` is the Authlib token validator of ``require_oauth``
(``idp.extensions``) over ``token.use_access_token``: userinfo and the JSON API declare the scope
they need with ``@require_oauth("openid")`` and read the token with :func:`current_access`.
A token is refused (401 ``invalid_token``) when it is unknown, expired, revoked, a client's own,
or its patient or client is no longer active; a DPoP-bound token only works as ``DPoP`` with a
proof by its key (:func:`idp.oauth.rfc9449_dpop.check_presentation`); a token without the scope
gets 403 ``insufficient_scope`` (§3.1).
"""

from dataclasses import dataclass

from authlib.integrations.flask_oauth2 import current_token
from authlib.oauth2.rfc6749 import TokenValidator

from .. import token as tokens
from . import fapi2_profile
from .errors import ProtectedResourceError
from .rfc9449_dpop import check_presentation


@dataclass
class PresentedToken:
    """A valid access token as a resource saw it: its record, account, client and how it came."""

    use: tokens.AccessTokenUse
    value: str
    scheme: str


class AccessTokenValidator(TokenValidator):
    """One validator per ``Authorization`` scheme: ``bearer`` (RFC 6750 §2.1) and ``dpop`` (RFC 9449 §7.1)."""

    def __init__(self, scheme: str):
        super().__init__()
        self.TOKEN_TYPE = scheme

    def authenticate_token(self, token_string: str | None) -> PresentedToken | None:
        if not token_string or not token_string.strip():
            raise ProtectedResourceError("invalid_request", "An access token is required (Authorization: Bearer).", names_error=False)
        found = tokens.use_access_token(token_string.strip())
        return PresentedToken(found, token_string.strip(), self.TOKEN_TYPE) if found else None

    def validate_token(self, token: PresentedToken | None, scopes, request, **kwargs) -> None:
        use = token.use if token else None
        if use is None or use.account is None or not use.account.is_active or use.client is None:
            raise ProtectedResourceError("invalid_token", "The access token is invalid, expired or revoked.")
        check_presentation(use.token.dpop_jkt, token.scheme, token.value)
        fapi2_profile.check_protected_resource_request(use.client)
        if self.scope_insufficient(use.token.scope, scopes):
            required = " ".join(scopes)
            raise ProtectedResourceError("insufficient_scope", f"The access token lacks the {required} scope.", 403, scope=required)


def current_access() -> tokens.AccessTokenUse:
    """The access token ``@require_oauth`` accepted for this request."""
    return current_token.use
