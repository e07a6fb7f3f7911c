"""The blueprint of the endpoints every deployment serves: authorization, token, revocation,
userinfo, logout, discovery and JWKS. Each optional feature's endpoint (PAR, introspection,
registration) has a blueprint of its own, registered only when ``FEATURES`` enables it."""

from flask import Blueprint

blueprint = Blueprint("oauth", __name__)
