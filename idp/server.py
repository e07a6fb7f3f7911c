"""The production HTTP server: ``idp serve --bind HOST:PORT [--workers N]`` runs granian.

granian (a Rust HTTP server with a WSGI interface) replaced gunicorn's ``gthread`` worker: on
the same two cores the same app answered the client-credentials grant and the JWKS with a
fraction of gunicorn's CPU per request (docs/performance.md, "Choosing the server"). The master
process binds the socket and forks the workers; each worker imports :mod:`idp.wsgi` and builds
its own app, so no database connection or Redis socket is shared between processes.

What production needs of it, and where it is:

- workers: one per core (``--workers``, ``WEB_CONCURRENCY``); each runs the app in
  ``IDP_SERVER_THREADS`` Python threads (2: one answers while the other waits on PostgreSQL).
- graceful reload: ``kill -HUP <master>`` starts new workers one by one and stops the old ones
  after their requests in flight (new code from an upgraded virtualenv, settings re-read).
- worker recycling: every ``WORKER_LIFETIME`` seconds, and whenever a worker's resident memory
  exceeds ``WORKER_MAX_RSS_MIB`` (memory fragmentation); a worker that dies is started again.
- timeouts: headers must arrive within ``HEADER_READ_TIMEOUT_MS``; a worker that does not stop
  within ``STOP_TIMEOUT`` seconds of SIGTERM/SIGHUP is killed. A request's own database work is
  bounded by PostgreSQL (``statement_timeout`` in ``DATABASE_URL`` options if wanted).
- forwarded headers: the app trusts ``X-Forwarded-*`` from ``IDP_TRUSTED_PROXY_COUNT`` proxies
  (:mod:`idp.observability`), whatever the server.
- access log: the app logs each request itself, as JSON with the request id; the server's own
  messages use the same JSON formatter, so every line on standard error is JSON.
- Prometheus multi-process metrics: ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary folder per
  start unless set, emptied at start) is set before the workers fork; ``/metrics`` sums every
  worker's files. The app's metrics are counters and histograms only, whose samples of a recycled
  worker must keep counting, so nothing is removed when a worker exits.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from typing import Any

WSGI_TARGET = "idp.wsgi:app"
DEFAULT_BIND = "127.0.0.1:8000"
THREADS_PER_WORKER = 2
WORKER_LIFETIME = 6 * 3600
WORKER_MAX_RSS_MIB = 512
HEADER_READ_TIMEOUT_MS = 10_000
STOP_TIMEOUT = 30


class InvalidBind(ValueError):
    """``--bind`` is not ``HOST:PORT``."""


def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8000`` for IPv6) as granian takes it."""
    host, separator, port = bind.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidBind(f"--bind takes HOST:PORT, not {bind!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def default_workers() -> int:
    """``WEB_CONCURRENCY`` (the usual variable), else one worker per core: granian's own I/O
    threads are in Rust, so a worker's Python threads only wait on the database."""
    return int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)


def logging_config(level: str) -> dict[str, Any]:
    """granian's own messages as JSON lines on standard error, like the app's (its access log
    stays off: the app logs every request, with the request id)."""
    return {
        "formatters": {"json": {"()": "idp.observability.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {
            "_granian": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "granian.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def server_options(bind: str, workers: int) -> dict[str, Any]:
    """The keyword arguments of granian's server (see the module docstring for each)."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    host, port = parse_bind(bind)
    level = os.environ.get("IDP_LOG_LEVEL", "info").lower()  # the app's LOG_LEVEL setting, as granian spells it
    threads = int(os.environ.get("IDP_SERVER_THREADS") or THREADS_PER_WORKER)
    return {
        "target": WSGI_TARGET,
        "address": host,
        "port": port,
        "interface": Interfaces.WSGI,
        "workers": workers,
        "blocking_threads": threads,
        "http": HTTPModes.http1,  # what load balancers speak to their backends
        "websockets": False,
        "http1_settings": HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS),
        "respawn_failed_workers": True,
        "workers_lifetime": WORKER_LIFETIME,
        "workers_max_rss": WORKER_MAX_RSS_MIB,
        "workers_kill_timeout": STOP_TIMEOUT,
        "log_level": LogLevels(level),
        "log_dictconfig": logging_config(level),
        "log_access": False,
    }


def prepare_metrics_folder() -> str | None:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at an empty folder before the workers start; returns
    the folder when it was created here (removed again at shutdown)."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        for path in glob.glob(os.path.join(given, "*.db")):  # an earlier run's samples would be summed in
            os.remove(path)
        return None
    created = tempfile.mkdtemp(prefix="idp-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = created
    return created


def serve(bind: str, workers: int) -> None:
    """Run the server until SIGTERM/SIGINT (graceful stop) and reload the workers on SIGHUP."""
    from granian.server import MPServer

    created = prepare_metrics_folder()
    server = MPServer(**server_options(bind, workers))
    if created:
        server.on_shutdown(lambda: shutil.rmtree(created, ignore_errors=True))
    server.serve()
