"""OAuth 2.0 Token Revocation, RFC 7009 (https://www.rfc-editor.org/rfc/rfc7009), endpoint /revoke.

Revoking any token of a family revokes the whole family (§2.1 allows it; RFC 9700 §4.14.2).
"""

from authlib.oauth2.rfc7009 import RevocationEndpoint

from .. import audit, token as tokens
from ..extensions import authorization, csrf, db
from .routes import blueprint
from .rfc7523_client_auth import ALL_AUTH_METHODS


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


@blueprint.post("/revoke")
@csrf.exempt
def revoke():
    response = authorization.create_endpoint_response(TokenRevocation.ENDPOINT_NAME)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
