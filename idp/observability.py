"""What operators watch: health checks, Prometheus metrics and JSON logs with a request id.

- ``/healthz`` (liveness) answers without touching anything; ``/readyz`` (readiness) checks the
  database and, when configured, Redis, so a load balancer only sends traffic to instances that
  can serve it.
- ``/metrics`` exposes Prometheus metrics: requests and latencies per endpoint, and the domain
  counters (logins, failures, lockouts, tokens issued) derived in one place from the audit log
  (:func:`_count_audit_event`), so a new audit call site is counted without extra code. Under
  ``idp serve``, ``PROMETHEUS_MULTIPROC_DIR`` (set by :mod:`idp.server`) makes every worker
  write its samples to shared files and ``/metrics`` sums them, whichever worker answers.
- Logs are one JSON object a line with the request id (``X-Request-ID``, taken from the proxy
  when it sends a sane one, else generated). Values that must never reach a log (passwords,
  codes, tokens, secrets, full matricules) are masked by :class:`JsonFormatter` whatever the
  call site passes.
"""

import ipaddress
import json
import logging
import os
import re
import sys
import time
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from flask import Blueprint, Flask, current_app, g, has_request_context, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess
from sqlalchemy import text
from werkzeug.middleware.proxy_fix import ProxyFix

from . import audit
from .extensions import db, limiter

blueprint = Blueprint("operations", __name__)
access_log = logging.getLogger("idp.access")

REQUESTS = Counter("idp_http_requests_total", "HTTP requests answered, by endpoint, method and status.",
                   ["endpoint", "method", "status"])
LATENCY = Histogram("idp_http_request_duration_seconds", "Time to answer an HTTP request, by endpoint.",
                    ["endpoint", "method"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
LOGINS = Counter("idp_logins_total", "Completed logins (SSO sessions started).")
LOGIN_FAILURES = Counter("idp_login_failures_total", "Refused login steps, by reason.", ["reason"])
LOCKOUTS = Counter("idp_login_lockouts_total", "Login attempts refused because the account is locked.")
TOKENS_ISSUED = Counter("idp_tokens_issued_total", "Tokens issued at the token endpoint, by grant type.", ["grant_type"])
AUDIT_EVENTS = Counter("idp_audit_events_total", "Audit events recorded, by name.", ["event"])

_FAILURE_REASONS = {
    audit.Event.LOGIN_PASSWORD_FAILED.value: "password",
    audit.Event.LOGIN_UNKNOWN_MATRICULE.value: "unknown_matricule",
    audit.Event.ONE_TIME_CODE_FAILED.value: "one_time_code",
    audit.Event.ONE_TIME_CODE_EXHAUSTED.value: "one_time_code_exhausted",
}
_TOKEN_EVENTS = {audit.Event.TOKEN_ISSUED.value, audit.Event.TOKEN_REFRESHED.value}
_PROBES = {"/healthz", "/readyz", "/metrics"}
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


@audit.recorded.connect
def _count_audit_event(name: str, details: dict | None) -> None:
    """The domain counters, from the audit log: every security event is recorded there once."""
    _series(AUDIT_EVENTS, name).inc()
    if name == audit.Event.LOGIN_SUCCEEDED.value:
        LOGINS.inc()
    elif name == audit.Event.LOGIN_LOCKED.value:
        LOCKOUTS.inc()
    elif name in _FAILURE_REASONS:
        _series(LOGIN_FAILURES, _FAILURE_REASONS[name]).inc()
    elif name in _TOKEN_EVENTS:
        _series(TOKENS_ISSUED, (details or {}).get("grant_type", "unknown")).inc()


def init_app(app: Flask) -> None:
    config = app.config
    if config["TRUSTED_PROXY_COUNT"]:
        # Behind a load balancer the client's address (rate limits, audit, logs) and scheme
        # come from the proxies' X-Forwarded-* headers; only the configured number is trusted.
        count = config["TRUSTED_PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count)
    _configure_logging(config["LOG_FORMAT"], config["LOG_LEVEL"])
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.register_blueprint(blueprint)


def _configure_logging(log_format: str, level: str) -> None:
    """One handler on the ``idp`` logger (app.logger and ``idp.*``), installed once per process."""
    logger = logging.getLogger("idp")
    logger.setLevel(level.upper())  # "info" as granian spells it, or "INFO"
    handler = next((h for h in logger.handlers if isinstance(h, StandardErrorHandler)), None)
    if handler is None:
        handler = StandardErrorHandler()
        logger.addHandler(handler)
    handler.setFormatter(JsonFormatter() if log_format == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.addFilter(_add_request_id)  # a no-op when already there


class StandardErrorHandler(logging.Handler):
    """Writes to the ``sys.stderr`` of the moment (the server's, or a test's capture)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def _add_request_id(record: logging.LogRecord) -> bool:
    if getattr(record, "request_id", None) is None:  # a record made outside Flask may carry its own
        record.request_id = g.get("request_id") if has_request_context() else None
    return True


# Keys whose values are secret whatever they hold; and patterns that look like secrets in text.
_SECRET_KEYS = re.compile(r"pass|secret|token|code|authorization|cookie|assertion|otp|key", re.IGNORECASE)
_MATRICULE = re.compile(r"(?<!\d)(\d{4})\d{5,7}(\d{2})(?!\d)")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_STANDARD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


# One search that every value needing a mask matches: most values (paths, addresses) need none.
_SUSPECT = re.compile(r"eyJ|bearer|basic|\d{11}", re.IGNORECASE)


def scrub(value: str) -> str:
    """Mask what looks like a matricule (11 or 13 digits), a JWT or an Authorization value."""
    if not _SUSPECT.search(value):
        return value
    value = _JWT.sub("[jwt]", value)
    value = _BEARER.sub(lambda match: match.group(1) + " [redacted]", value)
    return _MATRICULE.sub(lambda match: match.group(1) + "*" * (len(match.group(0)) - 6) + match.group(2), value)


@lru_cache(maxsize=256)
def _is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEYS.search(key))


def _safe(key: str, value: Any) -> Any:
    if _is_secret_key(key):
        return "[redacted]"
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return scrub(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        if getattr(record, "request_id", None):
            document["request_id"] = record.request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                document[key] = _safe(key, value)
        if record.exc_info:
            document["exception"] = scrub(self.formatException(record.exc_info))
        return _ENCODER.encode(document)


# ``json.dumps(document, ensure_ascii=False, default=str)``, without building an encoder per line.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def request_id(offered: str | None) -> str:
    """The load balancer's ``X-Request-ID`` when it is a sane one, else a new one (128 random bits)."""
    return offered if offered and _REQUEST_ID.fullmatch(offered) else os.urandom(16).hex()


# The request hooks read the WSGI environ and resolve Flask's context proxies once: each
# ``request.…`` or ``g.…`` is a context lookup, and these hooks run on every request.
def _start_request() -> None:
    state = g._get_current_object()
    state.request_started = time.perf_counter()
    state.request_id = request_id(request.environ.get("HTTP_X_REQUEST_ID"))


def _finish_request(response):
    state = g._get_current_object()
    if "request_id" not in state:  # refused before _start_request ran (e.g. by another before_request)
        _start_request()
    response.headers["X-Request-ID"] = state.request_id
    elapsed = time.perf_counter() - state.request_started
    current = request._get_current_object()
    environ, rule, path = current.environ, current.url_rule, current.path
    # The route pattern, never the raw path: bounded label values, and no identifiers in them.
    endpoint = rule.rule if rule else "unmatched"
    level = logging.DEBUG if path in _PROBES else logging.INFO
    _record(current_app.config["ACCESS_LOG"], level, endpoint, current.method, path, response.status_code, elapsed,
            environ.get("REMOTE_ADDR"), environ.get("HTTP_USER_AGENT", ""))
    return response


def record_cached_request(app: Flask, environ: dict, status: str, elapsed: float, request_id: str) -> None:
    """Metrics and the access log line of a document :mod:`idp.public_documents` served without Flask."""
    path = environ.get("PATH_INFO", "")
    _record(app.config["ACCESS_LOG"], logging.INFO, path, environ["REQUEST_METHOD"], path, int(status[:3]), elapsed,
            environ.get("REMOTE_ADDR"), environ.get("HTTP_USER_AGENT", ""), request_id)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SERIES: dict[tuple, Any] = {}


def _series(metric, *labels: str):
    """``metric.labels(*labels)``, looked up once per label set (routes and statuses are few):
    ``labels()`` validates and locks on every call."""
    key = (metric, *labels)
    child = _SERIES.get(key)
    if child is None:
        child = _SERIES[key] = metric.labels(*labels)
    return child


def _record(log: bool, level: int, endpoint: str, method: str, path: str, status: int, elapsed: float,
            remote_addr: str | None, user_agent: str, request_id: str | None = None) -> None:
    method_label = method if method in _METHODS else "other"  # any token is a method: keep the label set bounded
    _series(REQUESTS, endpoint, method_label, str(status)).inc()
    _series(LATENCY, endpoint, method_label).observe(elapsed)
    if log and access_log.isEnabledFor(level):
        # makeRecord + handle rather than log(): log() looks up the caller by walking the stack,
        # a tenth of a JWKS request's time, and the caller is always this function.
        extra = {"method": method, "path": path, "endpoint": endpoint, "status": status, "duration_ms": round(elapsed * 1000, 2),
                 "remote_addr": remote_addr, "user_agent": user_agent[:200]}
        if request_id:
            extra["request_id"] = request_id
        access_log.handle(access_log.makeRecord(access_log.name, level, __file__, 0, "%s %s %s", (method, path, status), None, extra=extra))


@blueprint.get("/healthz")
@limiter.exempt
def healthz():
    """Liveness: the process answers. Never checks dependencies (a database outage must not
    make an orchestrator restart every instance)."""
    return jsonify(status="ok")


@blueprint.get("/readyz")
@limiter.exempt
def readyz():
    """Readiness: the database answers, and Redis when one is configured.

    Without the database nothing works: 503. Without Redis the rate limits fall back to each
    instance's memory (``RATELIMIT_IN_MEMORY_FALLBACK_ENABLED``) and logins keep working, so the
    instance stays in the pool as "degraded" (taking every instance out would be an outage);
    with the fallback off, 503.
    """
    config = current_app.config
    checks = {"database": _check(_ping_database), "redis": _check(_ping_redis) if config.get("REDIS_URL") else "not configured"}
    if checks["database"] != "ok":
        status = "unavailable"
    elif checks["redis"] == "failed":
        status = "degraded" if config.get("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED") else "unavailable"
    else:
        status = "ready"
    response = jsonify(status=status, checks=checks)
    response.status_code = 503 if status == "unavailable" else 200
    response.headers["Cache-Control"] = "no-store"
    return response


def _check(probe) -> str:
    try:
        probe()
        return "ok"
    except Exception as error:  # any failure means "not ready"; the class says which kind
        db.session.rollback()
        current_app.logger.warning("readiness check failed: %s", type(error).__name__)
        return "failed"


def _ping_database() -> None:
    db.session.execute(text("SELECT 1"))
    db.session.rollback()


def _ping_redis() -> None:
    import redis

    clients = current_app.extensions.setdefault("idp_readiness_redis", {})
    url = current_app.config["REDIS_URL"]
    if url not in clients:
        clients[url] = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    clients[url].ping()


@blueprint.get("/metrics")
@limiter.exempt
def metrics():
    """Prometheus text format, for scrapers on the networks in ``METRICS_ALLOWED_NETWORKS`` only."""
    address = ipaddress.ip_address(request.remote_addr or "0.0.0.0")
    if not any(address in ipaddress.ip_network(network) for network in current_app.config["METRICS_ALLOWED_NETWORKS"]):
        return jsonify(error="not_found"), 404
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}
