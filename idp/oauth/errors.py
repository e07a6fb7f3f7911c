"""OAuth errors as classes carrying their RFC code, and the one way they are rendered.

Authlib's ``OAuth2Error`` subclasses cover RFC 6749 §5.2 and RFC 6750 §3; the codes other
specifications add are the classes below. :func:`json_response` renders any of them as the JSON
body of RFC 6749 §5.2 with the error's own status and headers; :func:`www_authenticate` builds
every ``WWW-Authenticate`` challenge (RFC 6750 §3, RFC 9449 §7.1, RFC 6749 §5.2 for Basic).
"""

import json

from authlib.oauth2 import OAuth2Error
from flask import Response, current_app


def www_authenticate(scheme: str, **parameters: str | None) -> str:
    """A challenge (RFC 9110 §11.6.1): ``Bearer realm="...", error="..."``; None values left out."""
    listed = ", ".join(f'{name}="{value}"' for name, value in parameters.items() if value is not None)
    return f"{scheme} {listed}" if listed else scheme


def json_response(error: OAuth2Error) -> Response:
    """``{"error", "error_description"}`` with the error's status and headers, never cached."""
    body = {"error": error.error, **({"error_description": error.description} if error.description else {})}
    response = current_app.response_class(json.dumps(body), error.status_code or 400, mimetype="application/json")
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


class RequestNotSupported(OAuth2Error):
    """OpenID Connect Core §3.1.2.6: request objects are not supported."""

    error = "request_not_supported"


class RequestUriNotSupported(OAuth2Error):
    """OpenID Connect Core §3.1.2.6: only ``request_uri`` values of our PAR endpoint are taken."""

    error = "request_uri_not_supported"


class InvalidRequestUri(OAuth2Error):
    """OpenID Connect Core §3.1.2.6 / RFC 9101 §7: the ``request_uri`` cannot be used."""

    error = "invalid_request_uri"


class UnmetAuthenticationRequirements(OAuth2Error):
    """OpenID Connect Core Unmet Authentication Requirements 1.0 §2: ``acr_values`` cannot be met."""

    error = "unmet_authentication_requirements"


class InvalidTarget(OAuth2Error):
    """RFC 8693 §2.2.2: the requested audience is unknown or not allowed for this client."""

    error = "invalid_target"


class InvalidDPoPProof(OAuth2Error):
    """RFC 9449 §5 (token endpoint, 400) and §7.1 (protected resource, 401 with a DPoP challenge)."""

    error = "invalid_dpop_proof"

    def __init__(self, description: str):
        super().__init__(description=description)


class UseDPoPNonce(InvalidDPoPProof):
    """RFC 9449 §8 and §9: retry with the nonce in the ``DPoP-Nonce`` response header."""

    error = "use_dpop_nonce"


class ProtectedResourceError(OAuth2Error):
    """An error of a protected resource (RFC 6750 §3): its challenge goes in ``WWW-Authenticate``.

    ``scheme`` is ``Bearer`` or ``DPoP`` (RFC 9449 §7.1); ``challenge`` adds parameters such as
    ``scope`` or ``algs``; ``extra_headers`` carries e.g. a ``DPoP-Nonce``. Without credentials
    the challenge names no error (RFC 6750 §3.1).
    """

    def __init__(self, error: str, description: str, status_code: int = 401, *, scheme: str = "Bearer", names_error: bool = True,
                 extra_headers: dict | None = None, **challenge: str):
        super().__init__(description=description, status_code=status_code)
        self.error, self.scheme, self.names_error = error, scheme, names_error
        self.challenge, self.extra_headers = challenge, extra_headers or {}

    def get_headers(self):
        parameters = {"realm": current_app.config["ISSUER"]}
        if self.names_error:
            parameters |= {"error": self.error, "error_description": self.description}
        return [*super().get_headers(), ("WWW-Authenticate", www_authenticate(self.scheme, **parameters, **self.challenge)),
                *self.extra_headers.items()]
