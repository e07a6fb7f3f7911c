"""OAuth 2.0 / OpenID Connect endpoints (the HTTP layer over the domain modules)."""

from flask import Blueprint

blueprint = Blueprint("oauth", __name__)

from . import authorize, discovery, endpoints, logout, par, registration  # noqa: E402,F401  (routes)
