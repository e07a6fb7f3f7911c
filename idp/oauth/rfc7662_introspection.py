"""OAuth 2.0 Token Introspection, RFC 7662 (https://www.rfc-editor.org/rfc/rfc7662), endpoint /introspect.

For resource servers, which authenticate as confidential clients. Only the client an admin
registered as the resource server of a token's audience learns about that token (§4: the server
decides which protected resources may introspect which tokens); to any other, live or not, the
token is ``{"active": false}`` (§2.2). ``FEATURES["introspection"]`` turns it on or off (the
endpoint and its metadata).
"""

from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Blueprint

from .. import token as tokens
from ..extensions import authorization, csrf
from .rfc7523_client_auth import CONFIDENTIAL_AUTH_METHODS

blueprint = Blueprint("oauth_introspection", __name__)


class TokenIntrospection(IntrospectionEndpoint):
    """``query_token`` answers with the introspection response itself (see ``token.introspect``)."""

    CLIENT_AUTH_METHODS = CONFIDENTIAL_AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return tokens.introspect(token_string, token_type_hint)

    def check_permission(self, token, client, request):
        return token.get("active") is True and client.resource_audience is not None and token.get("aud") == client.resource_audience

    def create_introspection_payload(self, token):
        return token if token is not None else {"active": False}


@blueprint.post("/introspect")
@csrf.exempt
def introspect():
    response = authorization.create_endpoint_response(TokenIntrospection.ENDPOINT_NAME)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
