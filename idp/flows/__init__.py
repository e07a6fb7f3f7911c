"""Patient-facing pages: login, activation wizard, "Mon compte", "Mes services eSanté"."""

from flask import Blueprint

blueprint = Blueprint("flows", __name__)

from . import account, activation, login, passkeys, services  # noqa: E402,F401  (routes and error pages)
