"""Servers these tests stop and start themselves, and the app built on them.

The fault tests must take a database or Redis away and bring it back, so they run their own
throwaway PostgreSQL and Redis on free loopback ports, never the suite's shared services.
PostgreSQL refuses to run as root: as root its tools run as ``postgres`` (as in
scripts/test-services.sh).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from idp import clock, create_app
from idp.extensions import db, limiter
from tests.conftest import TEST_SETTINGS, PatientFactory, RequestScopedClient, empty_postgres_tables
from tests.flows.test_activation import pending  # noqa: F401  (fixture: a patient with an activation letter)
from tests.security.burst import Visitor, address
from tests.support import services
from tests.support.browser import LiveServer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pg_bindir() -> Path:
    return sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name))[-1]


class ThrowawayPostgres:
    """One PostgreSQL cluster in a temp dir, started and stopped at will."""

    def __init__(self):
        self.bin = _pg_bindir()
        self.port = free_port()
        self.work = Path(tempfile.mkdtemp(prefix="idp-security-pg."))
        self.work.chmod(0o755)
        self.data = self.work / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.work, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.work}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 50\n")
        self.start()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.work / "postgres.log"), "-w", "-t", "30", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.work, ignore_errors=True)


class ThrowawayRedis:
    """A redis-server on a free loopback port, without persistence."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="session")
def throwaway_postgres():
    server = ThrowawayPostgres()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def throwaway_redis():
    server = ThrowawayRedis()
    try:
        yield server
    finally:
        server.stop()
        limiter._storage_dead = False  # the limiter object outlives this app: start the next test on its own storage


def app_on(url: str, tmp_path, **settings):
    """An app of its own on ``url`` (the ``app`` fixture's database is the suite's, not ours to stop)."""
    application = create_app({**TEST_SETTINGS, "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance"), **settings})
    application.test_client_class = RequestScopedClient
    return application


@pytest.fixture
def postgres_app(throwaway_postgres, tmp_path):
    """An app on the throwaway PostgreSQL, with a fresh schema, inside an application context."""
    application = app_on(throwaway_postgres.url, tmp_path)
    with application.app_context():
        db.drop_all()
        db.create_all()
        yield application
        db.session.remove()
        db.engine.dispose()


class LiveProvider:
    """The provider served over real HTTP on 127.0.0.1, with its database at hand for the test."""

    def __init__(self, app, server: LiveServer, database: str):
        self.app, self.server, self.database = app, server, database
        self.url = server.url
        self.patients = PatientFactory(app, None)

    def visitor(self, index: int | None = None) -> Visitor:
        """A new browser; ``index`` picks its own source address (None: 127.0.0.1)."""
        return Visitor(self.url, "127.0.0.1" if index is None else address(index))

    def fresh(self) -> None:
        """End the test's own transaction so the next reads see what the server committed."""
        db.session.rollback()
        db.session.expire_all()


@contextmanager
def serving(request, settings, tmp_path, database: str, **overrides) -> Iterator[LiveProvider]:
    """An app of its own on ``database`` ("sqlite" or the suite's "postgresql"), served on a live
    threaded server, inside its application context; emptied and stopped afterwards."""
    if database == "postgresql":
        url = services.database_url(required=True)
    else:
        url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    marker = request.node.get_closest_marker("settings")
    application = create_app({**settings, "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path), **(marker.kwargs if marker else {}),
                              **overrides})
    with application.app_context():
        if database == "sqlite":
            db.create_all()
        server = LiveServer(application)
        application.config["ISSUER"] = server.url
        try:
            yield LiveProvider(application, server, database)
        finally:
            server.stop()
            db.session.rollback()
            if database == "postgresql":
                empty_postgres_tables()
            db.session.remove()
            db.engine.dispose()
            clock.reset()


@pytest.fixture(params=["sqlite", "postgresql"])
def live(request, settings, tmp_path):
    """The provider on a live threaded server, once on SQLite and once on PostgreSQL.

    The PostgreSQL run fails, never skips, without the suite's database. SQLite serializes
    writers but ignores ``FOR UPDATE``: a bound must hold on both.
    """
    with serving(request, settings, tmp_path, request.param) as provider:
        yield provider


@pytest.fixture(params=["memory", "redis"])
def live_throttles(request, settings, tmp_path):
    """The provider on a live server (the suite's database), its per-account throttles counted in
    process memory, then in the suite's Redis (which fails, never skips, when it is missing)."""
    redis_url = None
    if request.param == "redis":
        import redis

        redis_url = services.redis_url(required=True)
        redis.Redis.from_url(redis_url).flushdb()
    database = "postgresql" if services.database_url() else "sqlite"
    with serving(request, settings, tmp_path, database, REDIS_URL=redis_url) as provider:
        yield provider
