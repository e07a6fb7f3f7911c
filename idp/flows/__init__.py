"""Patient-facing pages: login with matricule, password and one-time code; "Mes services eSanté"."""

from flask import Blueprint

blueprint = Blueprint("flows", __name__)

from . import errors, login, services  # noqa: E402,F401  (routes and error pages)
