"""Flask extensions, created unbound and attached in :func:`idp.create_app`."""

import time
from functools import lru_cache, wraps
from typing import Callable

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector as AuthlibResourceProtector
from flask import Flask, current_app, request as http_request
from flask_babel import Babel
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from limits import RateLimitItem, parse_many
from sqlalchemy import Insert, MetaData
from sqlalchemy.dialects import postgresql, sqlite
from werkzeug.exceptions import TooManyRequests

# Stable constraint names so Alembic migrations are identical on SQLite and PostgreSQL.
naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=naming_convention))


def upsert_for(model) -> Insert:
    """``INSERT`` with ``ON CONFLICT`` clauses (``on_conflict_do_nothing``/``_do_update``) for the
    database in use: PostgreSQL and SQLite spell the upsert alike, SQLAlchemy builds it per dialect."""
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


babel = Babel()
csrf = CSRFProtect()

# While the limits' storage (Redis) is down, how often /token and /par try it again.
STORAGE_RETRY_SECONDS = 30
# What Flask-Limiter's app-wide hooks serve (this limiter is built without default, application or meta limits).
_APP_WIDE_SETTINGS = ("RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION", "RATELIMIT_META", "RATELIMIT_HEADERS_ENABLED")


class RouteLimiter(Limiter):
    """Flask-Limiter, passing only through the routes that declare a limit.

    Flask-Limiter adds three hooks to every request: a ``before_request`` pass for the app-wide
    limits (``RATELIMIT_DEFAULT``, ``RATELIMIT_APPLICATION``, ``RATELIMIT_META``), an
    ``after_request`` one for its ``X-RateLimit-*`` headers and ``deduct_when`` deductions, and a
    teardown that clears a context kept on the request anyway. The IdP uses none of these (its
    limits are per route, ``@limiter.limit``; the headers are off, see :func:`retry_after`), yet
    the passes resolved an empty list of limits on every request, a token request's largest
    fixed cost after the Redis round trip. Flask-Limiter adds the hooks only for a limiter the app
    does not list yet, so this lists it first; when app-wide limits are configured the hooks stay.
    """

    def init_app(self, app: Flask) -> None:
        config = app.config
        if not any(config.get(name) for name in _APP_WIDE_SETTINGS):
            app.extensions.setdefault("limiter", set()).add(self)
        super().init_app(app)
        self._last_storage_check = time.monotonic()

    def per_address(self, setting: str) -> Callable[[Callable], Callable]:
        """``@limit(lambda: current_app.config[setting])`` for the machine endpoints (/token,
        /par), counted straight through ``limits``, the library Flask-Limiter is built on.

        The same counter (Flask-Limiter's key: the limit, the client's address, the endpoint), the
        same storage and in-memory fallback (this limiter's), the same refusal (429 with
        ``Retry-After``, :func:`retry_after`); without Flask-Limiter's per-request resolution of
        which limits apply (exemptions, blueprint, default and meta limits, none of which these
        endpoints have): 80 µs of CPU per token request, where the Redis round trip costs 45.
        """

        def decorate(view: Callable) -> Callable:
            @wraps(view)
            def limited(*args, **kwargs):
                if self.enabled:
                    self._hit(_parsed(current_app.config[setting]))
                return view(*args, **kwargs)

            return limited

        return decorate

    def _hit(self, limits: tuple[RateLimitItem, ...]) -> None:
        """Count this request under each limit, smallest window first, stopping at the first one
        breached (Flask-Limiter's order and ``fail_on_first_breach``)."""
        identifiers = [*([self._key_prefix] if self._key_prefix else []), self._key_func(), http_request.endpoint]
        for item in limits:
            if not self._counted(item, identifiers):
                self.context.view_rate_limit = RequestLimit(self, item, identifiers, True, False)
                raise TooManyRequests()

    def _counted(self, item: RateLimitItem, identifiers: list[str]) -> bool:
        """As Flask-Limiter does: any storage error switches to the in-memory fallback, and the
        storage is tried again now and then (here every ``STORAGE_RETRY_SECONDS``)."""
        if self._storage_dead and time.monotonic() - self._last_storage_check > STORAGE_RETRY_SECONDS:
            self._last_storage_check = time.monotonic()
            if self.storage.check():
                self.logger.info("Rate limit storage recovered")
                self._storage_dead = False
        try:
            return self.limiter.hit(item, *identifiers)
        except Exception:  # whatever the storage raises, as Flask-Limiter catches it
            if not self._in_memory_fallback_enabled or self._storage_dead:
                raise
            self.logger.warning("Rate limit storage unreachable - falling back to in-memory storage")
            self._storage_dead, self._last_storage_check = True, time.monotonic()
            return self.limiter.hit(item, *identifiers)


@lru_cache(maxsize=32)
def _parsed(limit_string: str) -> tuple[RateLimitItem, ...]:
    return tuple(sorted(parse_many(limit_string)))


# Redis down: fall back to in-memory limits (``RATELIMIT_IN_MEMORY_FALLBACK_ENABLED``), not
# ``swallow_errors``, which would let every request through unlimited. Per-instance counting is
# weaker than shared counting but still bounds guessing, and logins keep working.
limiter = RouteLimiter(key_func=get_remote_address, in_memory_fallback_enabled=True)


class DeferredMigrations:
    """Flask-Migrate's ``app.extensions["migrate"]``, made on first use.

    Importing Flask-Migrate loads Alembic, half a second that every ``idp`` command and every
    worker would pay; only ``idp db …`` and the migration tests read this entry, through the
    attributes of Flask-Migrate's own configuration object, which this builds when first asked.
    """

    def __init__(self, database: SQLAlchemy, directory: str) -> None:
        self._database, self._directory, self._configuration = database, directory, None

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if self._configuration is None:
            from flask_migrate import Migrate, _MigrateConfig

            migrate = Migrate(db=self._database, directory=self._directory)
            self._configuration = _MigrateConfig(migrate, self._database, **migrate.alembic_ctx_kwargs)
        return getattr(self._configuration, name)


class ResourceProtector(AuthlibResourceProtector):
    """Authlib's, with what RFC 6750 adds: a token in a form body (§2.2), and a request without
    credentials it knows (none, or another scheme) answered by the ``bearer`` validator (no
    error code in its challenge, §3.1).
    Errors are raised as they are, for the app's one OAuth error renderer (``idp.oauth.errors``)."""

    def parse_request_authorization(self, request):
        scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
        if scheme:
            known = scheme.lower() in self._token_validators
            return self.get_token_validator("bearer" if not known else scheme), value if known else None
        is_form = http_request.method == "POST" and http_request.mimetype == "application/x-www-form-urlencoded"
        return self.get_token_validator("bearer"), http_request.form.get("access_token") if is_form else None

    def raise_error_response(self, error):
        raise error


# The OAuth 2.0 authorization server and the resource protector of userinfo and the JSON API;
# ``idp.oauth.init_app`` registers their grants, endpoints and token validators.
authorization = AuthorizationServer()
require_oauth = ResourceProtector()


def retry_after() -> str:
    """Seconds until the breached limit's window resets (RFC 6585 §4, ``Retry-After``).

    Flask-Limiter's own ``X-RateLimit-*``/``Retry-After`` headers are off
    (``RATELIMIT_HEADERS_ENABLED``): they read the window again on every limited request, an
    extra Redis round trip, so only a refused request pays for it here. If Redis cannot say,
    the whole window is a safe upper bound."""
    current = limiter.current_limit
    if current is None:
        return "60"
    try:
        return str(max(1, int(current.reset_at - time.time())))
    except Exception:  # the storage went away meanwhile (the in-memory fallback takes over)
        return str(current.limit.get_expiry())
