"""Loading settings: defaults, then a settings file, then ``IDP_*`` variables, then tests'.

The defaults live in ``config/default.py`` (installed as package data when the project is
installed, read from the checkout otherwise).
"""

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Mapping

from flask import Flask

CHECKOUT_ROOT = Path(__file__).resolve().parent.parent
INSTALLED_SHARE = Path(sys.prefix) / "share" / "esante-idp"


def resource_path(name: str) -> Path:
    """Return the checkout's ``name`` folder (``config``, ``migrations``) or the installed copy."""
    in_checkout = CHECKOUT_ROOT / name
    if in_checkout.is_dir():
        return in_checkout
    return INSTALLED_SHARE / name


def load(app: Flask, overrides: Mapping[str, Any] | None) -> None:
    app.config.from_pyfile(str(resource_path("config") / "default.py"))
    if settings_file := os.environ.get("IDP_CONFIG"):
        app.config.from_pyfile(os.path.abspath(settings_file))
    app.config.from_prefixed_env("IDP")
    if overrides:
        app.config.update(overrides)
    _derive(app)


def _derive(app: Flask) -> None:
    config = app.config
    config["ISSUER"] = config["ISSUER"].rstrip("/")
    if not config.get("DATABASE_URL"):
        os.makedirs(app.instance_path, exist_ok=True)
        config["DATABASE_URL"] = "sqlite:///" + os.path.join(app.instance_path, "idp.sqlite3")
    config["SQLALCHEMY_DATABASE_URI"] = config["DATABASE_URL"]
    config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
    for name in ("SECRET_KEY", "PAIRWISE_SALT"):
        if not config.get(name):
            config[name] = _instance_secret(app, name)
    if config["ONE_TIME_CODE_TTL"] > 600:
        raise ValueError("ONE_TIME_CODE_TTL may not exceed 600 seconds")
    secure = config["ISSUER"].startswith("https://")
    config["SESSION_COOKIE_SECURE"] = secure
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SESSION_COOKIE_NAME"] = "esante_flow"
    config["BABEL_DEFAULT_LOCALE"] = config["LANGUAGES"][0]
    config["RATELIMIT_STORAGE_URI"] = config.get("REDIS_URL") or "memory://"
    config["RATELIMIT_HEADERS_ENABLED"] = True
    config["WTF_CSRF_TIME_LIMIT"] = None  # the flow cookie's lifetime bounds the token


def _instance_secret(app: Flask, name: str) -> str:
    """Generate a secret on first start and keep it in ``<instance>/secrets.json`` (mode 0600)."""
    os.makedirs(app.instance_path, exist_ok=True)
    path = Path(app.instance_path) / "secrets.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    if name not in stored:
        stored[name] = secrets.token_urlsafe(48)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(stored, handle)
    return stored[name]
