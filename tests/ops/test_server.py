"""``idp serve``: the production server (granian) with what operators rely on.

One worker per core unless told, a graceful reload on SIGHUP that drops no request, a worker
that dies is replaced, workers recycled by age and memory, JSON lines only, and a Prometheus
folder emptied at start. The live tests run the real command on an embedded SQLite database.
"""

import json
import os
import signal
import threading
import time

import pytest
import requests
from click.testing import CliRunner

from bench.cluster import Instance, run_idp, wait_until
from idp import server
from idp.cli import main


def test_serves_the_wsgi_app_with_one_worker_per_core(monkeypatch):
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert server.default_workers() == 6
    options = server.server_options("10.0.0.5:8000", server.default_workers())
    assert options["target"] == "idp.wsgi:app"
    assert (options["address"], options["port"], options["workers"]) == ("10.0.0.5", 8000, 6)
    assert options["interface"] == "wsgi"


def test_the_servers_own_messages_follow_the_log_level(monkeypatch):
    monkeypatch.setenv("IDP_LOG_LEVEL", "WARNING")
    options = server.server_options("127.0.0.1:8000", 1)
    assert options["log_level"] == "warning" and options["log_dictconfig"]["loggers"]["_granian"]["level"] == "WARNING"


def test_web_concurrency_sets_the_worker_count(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert server.default_workers() == 3


def test_workers_are_recycled_by_age_and_memory_and_restarted_when_they_die():
    options = server.server_options("127.0.0.1:8000", 2)
    assert options["respawn_failed_workers"] is True
    assert options["workers_lifetime"] >= 3600
    assert options["workers_max_rss"] >= 256  # above a worker's measured peak (docs/operations.md)
    assert options["workers_kill_timeout"] == 30  # in-flight requests get that long on a stop or reload


@pytest.mark.parametrize("bind", ["8000", "localhost", ":8000", "host:port", "127.0.0.1:70000"])
def test_bind_must_be_host_and_port(bind):
    answer = CliRunner().invoke(main, ["serve", "--bind", bind])
    assert answer.exit_code == 2
    assert "HOST:PORT" in answer.output


def test_ipv6_bind():
    assert server.parse_bind("[::1]:8443") == ("::1", 8443)


def test_a_given_metrics_folder_is_emptied_at_start_and_kept(monkeypatch, tmp_path):
    stale = tmp_path / "counter_12345.db"
    stale.write_bytes(b"samples of an earlier run")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert server.prepare_metrics_folder() is None
    assert not stale.exists() and tmp_path.is_dir()


def test_a_metrics_folder_is_created_when_none_is_given(monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # restored afterwards, whatever the test sets
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    created = server.prepare_metrics_folder()
    try:
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == created and os.path.isdir(created)
    finally:
        os.rmdir(created)


# --- live ------------------------------------------------------------------------------------


@pytest.fixture
def instance(tmp_path):
    environment = {"IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}", "IDP_ISSUER": "http://127.0.0.1",
                   "IDP_INSTANCE_PATH": str(tmp_path / "instance"), "IDP_REDIS_URL": ""}
    run_idp(environment, "db", "upgrade")
    started = Instance(environment, tmp_path, workers=1).start()
    yield started
    started.stop()


class Traffic(threading.Thread):
    """Requests one after the other on fresh connections until stopped; every answer kept."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stopped, self.answers, self.failures = url, threading.Event(), [], []

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.answers.append(requests.get(self.url + "/healthz", timeout=10, headers={"Connection": "close"}).status_code)
            except requests.RequestException as error:
                self.failures.append(repr(error))


def test_sighup_replaces_the_workers_without_dropping_a_request(instance):
    before = set(instance.worker_pids())
    traffic = Traffic(instance.url)
    traffic.start()
    instance.process.send_signal(signal.SIGHUP)
    wait_until(lambda: not set(instance.worker_pids()) & before and len(instance.worker_pids()) == 1, "the reload", timeout=60)
    time.sleep(0.5)
    traffic.stopped.set()
    traffic.join(timeout=30)
    assert traffic.failures == [] and set(traffic.answers) == {200} and len(traffic.answers) > 10


def test_a_worker_that_dies_is_replaced(instance):
    (worker,) = instance.worker_pids()
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: instance.worker_pids() and worker not in instance.worker_pids(), "a new worker", timeout=60)
    wait_until(lambda: requests.get(instance.url + "/healthz", timeout=5).status_code == 200, "the new worker answering")
    assert instance.process.poll() is None


def test_every_line_the_server_and_the_app_write_is_json(instance):
    requests.get(instance.url + "/healthz", timeout=10)
    requests.get(instance.url + "/.well-known/openid-configuration", timeout=10)
    instance.stop()
    entries = [json.loads(line) for line in instance.log_path.read_text().splitlines()]
    assert any(entry["logger"].startswith("_granian") for entry in entries)  # the server's own messages
    assert any(entry["logger"] == "idp.access" and entry["path"] == "/.well-known/openid-configuration" for entry in entries)
