"""Error pages patients see instead of Werkzeug's English defaults, never with a stack trace.

Registered app-wide by :func:`init_app` in ``create_app``: a rate limit, an expired form, an
unreachable database or a crash can happen on any page. Machine endpoints (token, revocation, introspection, userinfo,
registration, the JSON API) and clients that ask for JSON get an RFC 6749 §5.2-style JSON
error instead.
"""

from flask import Flask, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InterfaceError, OperationalError, TimeoutError as PoolTimeoutError
from werkzeug.exceptions import (BadRequest, HTTPException, InternalServerError, RequestEntityTooLarge, RequestHeaderFieldsTooLarge,
                                 RequestURITooLarge, TooManyRequests)

from .extensions import db, retry_after

# Pages a browser shows; every other endpoint of the OAuth blueprint answers machines, as do
# the JSON API and the operations endpoints.
_BROWSER_OAUTH_ENDPOINTS = frozenset({"oauth.authorize", "oauth.logout"})
_MACHINE_BLUEPRINTS = frozenset({"api", "operations", "oauth_par", "oauth_introspection", "oauth_registration"})


def _prefers_json() -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def _answers_machines() -> bool:
    """A relying party's back-channel call: it reads JSON whatever its ``Accept`` header says."""
    if request.blueprint == "oauth" and request.endpoint not in _BROWSER_OAUTH_ENDPOINTS:
        return True
    if request.blueprint in _MACHINE_BLUEPRINTS:
        return True
    return _prefers_json()


def _json_error(status: int, error: str, description: str):
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def refuse_oversized_requests() -> None:
    """Refuse huge bodies, URLs and headers before any parsing, authentication or database work.

    A declared body over ``MAX_CONTENT_LENGTH`` is refused here (413) even on endpoints that
    would authenticate first; Werkzeug bounds undeclared (chunked) bodies and multipart fields
    as they are read. The URL (RFC 9110 §15.5.15, 414) and the header block (RFC 6585 §5, 431)
    carry ``id_token_hint`` and bearer tokens. The server only bounds the header block by its
    HTTP/1 buffer (about 400 KiB), so the bounds are kept here, whatever serves the app.
    """
    config, current = current_app.config, request._get_current_object()
    if current.content_length is not None and current.content_length > config["MAX_CONTENT_LENGTH"]:
        raise RequestEntityTooLarge()
    if len(current.path) + len(current.query_string) > config["MAX_URL_LENGTH"]:
        raise RequestURITooLarge()
    if _header_bytes(current.environ) > config["MAX_HEADER_BYTES"]:
        raise RequestHeaderFieldsTooLarge()


def _header_bytes(environ: dict) -> int:
    """The header block's size, ``name: value\r\n`` per header of ``request.headers``, counted on
    the environ without Werkzeug spelling each name back: ``HTTP_USER_AGENT`` is ``User-Agent``
    and five characters more, so a header counts ``len(key) - 5 + len(value) + 4``."""
    total = 0
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            if key not in _BODY_HEADERS_AS_HTTP:
                total += len(key) - 1 + len(value)
        elif key in _BODY_HEADERS and value:
            total += len(key) + 4 + len(value)
    return total


# Werkzeug's headers: CONTENT_TYPE and CONTENT_LENGTH (when not empty), never their HTTP_ copies.
_BODY_HEADERS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})
_BODY_HEADERS_AS_HTTP = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})


class NulCharacter(BadRequest):
    """A NUL character in a parameter or JSON string: no legitimate input has one, and
    PostgreSQL cannot store it in text (the insert would fail with a 500)."""


def refuse_nul_characters() -> None:
    current = request._get_current_object()
    parameters = (current.args, current.form) if current.query_string else (current.form,)
    if any("\x00" in name or "\x00" in value for values in parameters for name, value in values.items(multi=True)):
        raise NulCharacter()
    if current.is_json and b"\\u0000" in current.get_data(cache=True):
        raise NulCharacter()


def nul_character(error: NulCharacter):
    if _answers_machines():
        return _json_error(400, "invalid_request", "The request contains a NUL character.")
    return render_template("flows/invalid_input.html"), 400


def request_too_large(error: HTTPException):
    """413 / 414 / 431: refused before anything was read into memory or written."""
    if _answers_machines():
        return _json_error(error.code, "invalid_request", "The request is too large.")
    return render_template("flows/request_too_large.html"), error.code


def database_unavailable(error: Exception):
    """The database is down or unreachable: 503 with ``Retry-After`` (RFC 9110 §10.2.3).

    The request's transaction is rolled back whole when the session is removed at teardown,
    so nothing half-written remains; :mod:`idp.database` takes a new connection once the database is back.
    """
    current_app.logger.error("database unavailable: %s", type(getattr(error, "orig", None) or error).__name__)
    retry_after = str(current_app.config["DATABASE_UNAVAILABLE_RETRY_AFTER"])
    if _answers_machines():
        response = _json_error(503, "temporarily_unavailable", "The service is temporarily unavailable; retry later.")
    else:
        response = current_app.make_response((render_template("flows/unavailable.html"), 503))
    response.headers["Retry-After"] = retry_after
    return response


def release_database_session(error: BaseException | None) -> None:
    """End the session even when the database went away after the response was built.

    Closing rolls back on the connection; a server that shut down meanwhile makes that fail,
    which Flask-SQLAlchemy's own teardown would turn into a bare 500 after a good answer. The
    connections are then discarded instead, and new ones are opened. Registered after
    Flask-SQLAlchemy's teardown, so it runs first (Flask runs them in reverse order).
    """
    try:
        db.session.remove()
    except (OperationalError, InterfaceError):
        db.session().invalidate()  # the session still registered, its connections unusable
        db.session.remove()


def too_many_requests(error: TooManyRequests):
    """Flask-Limiter's per-IP limits (``RATE_LIMIT_*``), with when to come back."""
    if _answers_machines():
        response = _json_error(429, "temporarily_unavailable", "Too many requests; retry later.")
    else:
        response = current_app.make_response((render_template("flows/too_many_requests.html"), 429))
    response.headers["Retry-After"] = retry_after()
    return response


def form_expired(error: CSRFError) -> tuple[str, int] | HTTPException:
    """A form posted without its CSRF token, or after the flow cookie expired: nothing was done."""
    if _prefers_json():
        return error
    can_reload = request.url_rule is not None and "GET" in (request.url_rule.methods or ())
    return render_template("flows/form_expired.html", retry_path=request.path if can_reload else None), 400


def internal_error(error: InternalServerError) -> tuple[str, int] | HTTPException:
    """Flask has logged the exception already; the patient gets an apology, not the details."""
    if _prefers_json():
        return error
    return render_template("error_500.html"), 500


def init_app(app: Flask) -> None:
    """Register the checks and handlers app-wide; after Flask-SQLAlchemy (see :func:`release_database_session`)."""
    app.before_request(refuse_oversized_requests)
    app.before_request(refuse_nul_characters)
    app.register_error_handler(NulCharacter, nul_character)
    app.register_error_handler(RequestEntityTooLarge, request_too_large)
    app.register_error_handler(RequestURITooLarge, request_too_large)
    app.register_error_handler(RequestHeaderFieldsTooLarge, request_too_large)
    app.register_error_handler(OperationalError, database_unavailable)
    app.register_error_handler(InterfaceError, database_unavailable)
    app.register_error_handler(PoolTimeoutError, database_unavailable)
    app.register_error_handler(TooManyRequests, too_many_requests)
    app.register_error_handler(CSRFError, form_expired)
    app.register_error_handler(InternalServerError, internal_error)
    app.teardown_appcontext(release_database_session)
