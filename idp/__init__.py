"""eSanté identity provider: an OpenID Connect provider for the national e-health platform."""

from typing import Any, Mapping

from flask import Flask, request


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application: defaults, settings file, ``IDP_*`` variables, then ``config``."""
    app = Flask(__name__, instance_relative_config=True)
    from . import settings

    settings.load(app, config)

    from .extensions import DeferredMigrations, babel, csrf, db, limiter
    from . import observability, public_documents

    public_documents.init_app(app)  # innermost: behind ProxyFix, in front of Flask
    observability.init_app(app)  # first: its request hooks time and log everything after them
    db.init_app(app)
    app.extensions["migrate"] = DeferredMigrations(db, str(settings.resource_path("migrations")))  # for `idp db`
    babel.init_app(app, locale_selector=_select_locale)
    csrf.init_app(app)
    limiter.init_app(app)
    from . import throttle

    throttle.init_app(app)

    from . import models  # noqa: F401  (every table, for Alembic and relationships)
    from . import known_device, sso_session
    from .admin import blueprint as admin_blueprint
    from .api import blueprint as api_blueprint
    from . import federation
    from .flows import assistants, trail  # noqa: F401  (their routes join the flows blueprint)
    from .flows import blueprint as flows_blueprint
    from . import errors, oauth

    errors.init_app(app)
    oauth.init_app(app)
    app.register_blueprint(flows_blueprint)
    app.register_blueprint(api_blueprint)
    app.register_blueprint(admin_blueprint, url_prefix="/admin")
    federation.init_app(app)
    from .flows import dev_outbox

    dev_outbox.init_app(app)
    from . import database

    database.init_app(app)  # last: wraps every view registered above
    from flask_babel import get_locale

    app.jinja_env.globals["get_locale"] = get_locale
    app.after_request(sso_session.write_cookie)
    app.after_request(known_device.write_cookie)
    app.after_request(_security_headers)

    from .cli import register_commands

    register_commands(app)
    return app


def _select_locale() -> str:
    from flask import current_app, session

    supported = current_app.config["LANGUAGES"]
    for candidate in (request.args.get("ui_locales") or "").split():
        if candidate.split("-")[0] in supported:
            return candidate.split("-")[0]
    if session.get("locale") in supported:
        return session["locale"]
    return request.accept_languages.best_match(supported) or supported[0]


def _security_headers(response):
    """Every page: no inline script, no framing, no referrer, not cached (they carry CSRF tokens
    and personal data); HSTS whenever the provider is served over https."""
    from flask import current_app

    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if current_app.config["ISSUER"].startswith("https://"):
        headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cache-Control", "no-store")
    return response
