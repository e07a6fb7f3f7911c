"""gunicorn settings for the IdP: ``gunicorn -c config/gunicorn.conf.py [--bind HOST:PORT]``.

Instances are stateless (PostgreSQL holds the records, Redis the per-IP rate limits), so any
number of them can run behind a load balancer. Every setting below can be overridden on the
command line (``--bind``, ``--workers``) or with ``GUNICORN_CMD_ARGS``; the IdP's own settings
come from ``IDP_CONFIG`` / ``IDP_*`` as usual.
"""

import glob
import os
import shutil
import tempfile

from gunicorn.glogging import Logger

wsgi_app = "idp.wsgi:app"

# Where to listen; behind a load balancer bind the private address (``--bind 10.0.0.5:8000``).
bind = [os.environ.get("IDP_BIND", "127.0.0.1:8000")]

# Workers from the cores: the login path is CPU-bound (argon2id), the others mostly CPU with
# short database waits, so one process per core plus one to cover those waits.
# WEB_CONCURRENCY (the usual variable) or --workers override it.
workers = int(os.environ.get("WEB_CONCURRENCY") or (os.cpu_count() or 1) + 1)
# Threads let a worker keep connections alive (the load balancer reuses them) and overlap
# database round trips; two keep the GIL contention low.
worker_class = "gthread"
threads = int(os.environ.get("IDP_GUNICORN_THREADS", "2"))
keepalive = 5  # seconds; below the load balancer's idle timeout
timeout = 30
graceful_timeout = 30
# Recycle workers now and then (memory fragmentation); jitter keeps them from restarting together.
max_requests = 20000
max_requests_jitter = 2000
# No preload: each worker opens its own database pool after the fork.
preload_app = False
# gunicorn's control socket (one per user by default) would be shared by two instances on one
# host, and nothing here uses it: restarts go through signals or the service manager.
control_socket_disable = True
# The load balancer sends X-Forwarded-*; the app trusts them per IDP_TRUSTED_PROXY_COUNT.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# The app logs each request as JSON (idp.access), with the request id; gunicorn's access log
# would repeat it in another format, so it stays off. gunicorn's own messages go through the
# same JSON formatter.
accesslog = None
errorlog = "-"


class _AppLogsRequests(Logger):
    """gunicorn would still format its access record for every request (its atoms, 3% of a JWKS
    request) whenever a logging configuration is given, only for the record to be dropped."""

    def access(self, resp, req, environ, request_time):
        pass


logger_class = _AppLogsRequests
loglevel = os.environ.get("IDP_LOG_LEVEL", "info").lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "idp.observability.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "root": {"level": "WARNING", "handlers": ["stderr"]},
    "loggers": {
        "idp": {"propagate": False},  # the app installs its own JSON handler (idp.observability)
        "gunicorn.error": {"handlers": ["stderr"], "level": loglevel.upper(), "propagate": False},
        "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}

# Prometheus multi-process mode: every worker writes its samples to files in this folder and
# /metrics sums them. It must be set before a worker imports prometheus_client.
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="idp-metrics-")


def on_starting(server):
    """Samples of an earlier run would be summed with this one's: start from an empty folder."""
    for path in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(path)


def post_fork(server, worker):
    """Python warnings (deprecations in a library) go through logging too: every line is JSON."""
    import logging

    logging.captureWarnings(True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
