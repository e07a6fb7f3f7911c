"""Proof Key for Code Exchange, RFC 7636 (https://www.rfc-editor.org/rfc/rfc7636), S256 only.

RFC 9700 §2.1.1: ``plain`` offers no protection against a leaked authorization request. Whether
a client must send a challenge is decided with the other request checks
(:mod:`idp.oauth.oidc_request_checks`).
"""

from authlib.oauth2.rfc7636 import CodeChallenge


class S256CodeChallenge(CodeChallenge):
    """Authlib's PKCE extension of the code grant, reading the challenge stored with our codes."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def get_authorization_code_challenge(self, authorization_code):
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code):
        return authorization_code.code_challenge_method
