"""Error pages patients see instead of Werkzeug's English defaults, never with a stack trace.

Registered app-wide: a rate limit, an expired form or a crash can happen on any page. Clients
that ask for JSON (relying parties calling the token endpoint) keep the plain HTTP error.
"""

from flask import render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, TooManyRequests

from . import blueprint


def _prefers_json() -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


@blueprint.app_errorhandler(TooManyRequests)
def too_many_requests(error: TooManyRequests) -> tuple[str, int] | HTTPException:
    """Flask-Limiter's per-IP limits (``RATE_LIMIT_*``)."""
    if _prefers_json():
        return error
    return render_template("flows/too_many_requests.html"), 429


@blueprint.app_errorhandler(CSRFError)
def form_expired(error: CSRFError) -> tuple[str, int] | HTTPException:
    """A form posted without its CSRF token, or after the flow cookie expired: nothing was done."""
    if _prefers_json():
        return error
    can_reload = request.url_rule is not None and "GET" in (request.url_rule.methods or ())
    return render_template("flows/form_expired.html", retry_path=request.path if can_reload else None), 400


@blueprint.app_errorhandler(InternalServerError)
def internal_error(error: InternalServerError) -> tuple[str, int] | HTTPException:
    """Flask has logged the exception already; the patient gets an apology, not the details."""
    if _prefers_json():
        return error
    return render_template("error_500.html"), 500
