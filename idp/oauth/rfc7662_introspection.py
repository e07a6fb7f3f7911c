"""OAuth 2.0 Token Introspection, RFC 7662 (https://www.rfc-editor.org/rfc/rfc7662), endpoint /introspect.

For resource servers, which authenticate as confidential clients. ``FEATURES["introspection"]``
turns it on or off (the endpoint and its metadata).
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
        return True

    def create_introspection_payload(self, token):
        return token


@blueprint.post("/introspect")
@csrf.exempt
def introspect():
    response = authorization.create_endpoint_response(TokenIntrospection.ENDPOINT_NAME)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
