"""Admin web UI for the client registry (password + TOTP login)."""

from flask import Blueprint

blueprint = Blueprint("admin", __name__)

from . import views  # noqa: E402,F401  (routes)
