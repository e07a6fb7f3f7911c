"""Client authentication at the token, PAR, revocation and introspection endpoints.

``private_key_jwt``: JSON Web Token Profile for OAuth 2.0 Client Authentication, RFC 7523 §2.2
(https://www.rfc-editor.org/rfc/rfc7523), as OpenID Connect Core §9 uses it; and
``client_secret_basic`` as RFC 6749 §2.3.1 really writes it (form-urlencoded before Base64).
``client_secret_post`` and ``none`` are Authlib's own.
"""

import base64
import binascii
from datetime import timedelta
from typing import Callable
from urllib.parse import unquote_plus

from authlib.oauth2.rfc6749 import InvalidClientError, OAuth2Request
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .. import client as clients, clock, replay_cache
from ..extensions import db
from . import fapi2_profile

ALL_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
CONFIDENTIAL_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
CLIENT_ASSERTION_ALGORITHMS = ["RS256", "ES256", "PS256"]


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
        fapi2_profile.check_client_assertion(clients.get_for_protocol(token.claims["sub"]), token.header, token.claims)
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
