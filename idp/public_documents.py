"""The discovery documents and the JWKS, served from each worker's copy before Flask runs.

They are public, the same for every caller, fetched by every relying party and resource server
far more often than they change, and a full Flask request (contexts, hooks, rate limiter,
session) costs several times what sending the bytes does. So the middleware answers a plain
``GET``/``HEAD`` of these paths from the last answer Flask gave, with every header its hooks
set (and a fresh ``X-Request-ID``), and ``304`` when ``If-None-Match`` names the ETag.

A copy lives SIGNING_KEY_CACHE_SECONDS, and no longer than the document says
(:func:`mark_cacheable`). That bound is what key rotation relies on: a new key is published that
long before any instance signs with it (:mod:`idp.signing_key`). Only complete ``200`` answers
without cookies are kept; anything else (a query string, another method, an error, a database
outage) goes to Flask as usual. Requests served here are counted in the metrics and logged like
every other request.
"""

import time
from dataclasses import dataclass
from datetime import datetime

from flask import Flask, request

from . import clock, observability

PATHS = frozenset({"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/jwks.json"})
_MARK = "idp.public_document"
_REQUEST_ID_HEADER = "x-request-id"


def mark_cacheable(lapses_at: datetime | None = None) -> None:
    """Let the middleware keep this answer (for at most the cache time, and not past ``lapses_at``)."""
    request.environ[_MARK] = (lapses_at,)


@dataclass(frozen=True)
class _Copy:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    etag: str | None
    expires: float  # time.monotonic()
    lapses_at: datetime | None  # clock.now(), which tests can move

    def fresh(self) -> bool:
        return self.expires > time.monotonic() and (self.lapses_at is None or self.lapses_at > clock.now())


class PublicDocuments:
    """WSGI middleware in front of the Flask app (see the module's docstring)."""

    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app
        self.copies: dict[str, _Copy] = {}

    def forget(self) -> None:
        """Drop every copy (this worker rotated the keys itself)."""
        self.copies.clear()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        if path not in PATHS or method not in ("GET", "HEAD") or environ.get("QUERY_STRING"):
            return self.wsgi_app(environ, start_response)
        copy = self.copies.get(path)
        if copy is not None and copy.fresh():
            return self._serve(copy, environ, start_response)
        if method == "HEAD":
            return self.wsgi_app(environ, start_response)
        return self._fill(path, environ, start_response)

    def _serve(self, copy: _Copy, environ, start_response):
        started = time.perf_counter()
        request_id = observability.request_id(environ.get("HTTP_X_REQUEST_ID"))
        headers = [*copy.headers, ("X-Request-ID", request_id)]
        if copy.etag and _matches(environ.get("HTTP_IF_NONE_MATCH"), copy.etag):
            status, body = "304 NOT MODIFIED", b""
            headers = [(name, value) for name, value in headers if name.lower() not in ("content-length", "content-type")]
        else:
            status, body = copy.status, copy.body if environ["REQUEST_METHOD"] == "GET" else b""
        start_response(status, headers)
        observability.record_cached_request(self.app, environ, status, time.perf_counter() - started, request_id)
        return [body]

    def _fill(self, path: str, environ, start_response):
        answer: dict = {}

        def capture(status, headers, exc_info=None):
            answer["status"], answer["headers"] = status, headers
            return start_response(status, headers, exc_info)

        chunks = self.wsgi_app(environ, capture)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        mark = environ.get(_MARK)
        headers = answer.get("headers", [])
        if mark and answer.get("status", "").startswith("200") and not any(name.lower() == "set-cookie" for name, _ in headers):
            kept = [(name, value) for name, value in headers if name.lower() != _REQUEST_ID_HEADER]
            etag = next((value for name, value in headers if name.lower() == "etag"), None)
            seconds = self.app.config["SIGNING_KEY_CACHE_SECONDS"]
            if seconds:
                self.copies[path] = _Copy(answer["status"], kept, body, etag, time.monotonic() + seconds, mark[0])
        return [body]


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison; ``*`` matches any current representation."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    return any(tag.strip() == "*" or tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


def forget_copies(app: Flask) -> None:
    """Forget this worker's copies, wherever the middleware sits in the WSGI stack."""
    middleware = app.extensions.get("idp_public_documents")
    if middleware is not None:
        middleware.forget()


def init_app(app: Flask) -> None:
    middleware = PublicDocuments(app, app.wsgi_app)
    app.wsgi_app = middleware
    app.extensions["idp_public_documents"] = middleware
