"""eSanté identity provider: an OpenID Connect provider for the national e-health platform."""

from typing import Any, Mapping

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

# The endpoints only relying parties and resource servers call (RFC 6749 §3.2, OIDC Core §5.3,
# RFC 7662, RFC 7009): no cookie, no page, no locale; see MachineEndpointsWithoutSession.
MACHINE_PATHS = frozenset({"/token", "/userinfo", "/introspect", "/revoke"})


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application: defaults, settings file, ``IDP_*`` variables, then ``config``."""
    app = Flask(__name__, instance_relative_config=True)
    app.session_interface = MachineEndpointsWithoutSession()
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


class MachineEndpointsWithoutSession(SecureCookieSessionInterface):
    """Flask's signed-cookie session, not opened on the machine endpoints: nothing there reads or
    writes it, so they get Flask's null session (which refuses writes) instead of a cookie
    parsed and a signer built on every token, userinfo, introspection and revocation request."""

    def open_session(self, app: Flask, request):
        return None if request.path in MACHINE_PATHS else super().open_session(app, request)


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
    and personal data); HSTS whenever the provider is served over https. Headers the view set
    itself are kept (``setdefault``), found in one pass over the response's headers."""
    from flask import current_app

    headers = response.headers
    present = {name.lower() for name, _ in headers}
    wanted = _EVERY_RESPONSE_HTTPS if current_app.config["ISSUER"].startswith("https://") else _EVERY_RESPONSE
    if response.mimetype == "text/html":
        wanted += _PAGES
    for name, value in wanted:
        if name.lower() not in present:
            headers.add(name, value)
    return response


_EVERY_RESPONSE = (("X-Content-Type-Options", "nosniff"),)
_EVERY_RESPONSE_HTTPS = (*_EVERY_RESPONSE, ("Strict-Transport-Security", "max-age=63072000; includeSubDomains"))
_PAGES = (
    ("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)
