"""config/gunicorn.conf.py: what `gunicorn -c config/gunicorn.conf.py` runs with."""

import os
import runpy

import pytest

from bench.cluster import GUNICORN_CONFIG


@pytest.fixture
def load_config(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # as the file would set it
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("IDP_BIND", raising=False)
    return lambda: runpy.run_path(str(GUNICORN_CONFIG))


def test_serves_the_idp_with_one_worker_per_core_plus_one(load_config, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    config = load_config()
    assert config["wsgi_app"] == "idp.wsgi:app"
    assert config["workers"] == 7
    assert config["bind"] == ["127.0.0.1:8000"]
    assert config["preload_app"] is False  # each worker opens its own database pool


def test_web_concurrency_overrides_the_worker_count(load_config, monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert load_config()["workers"] == 3


def test_multiprocess_metrics_folder_is_emptied_at_start_and_dead_workers_marked(load_config, tmp_path):
    stale = tmp_path / "counter_12345.db"
    stale.write_bytes(b"old samples")
    config = load_config()
    config["on_starting"](None)
    assert not stale.exists()
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"")
    config["child_exit"](None, type("Worker", (), {"pid": 4242})())
    assert not (tmp_path / "gauge_livesum_4242.db").exists()


def test_a_multiprocess_folder_is_created_when_none_is_given_and_removed_at_exit(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    config = runpy.run_path(str(GUNICORN_CONFIG))
    folder = os.environ.pop("PROMETHEUS_MULTIPROC_DIR")
    assert os.path.isdir(folder)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    config["on_exit"](None)
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR")
    assert not os.path.exists(folder)


def test_a_given_multiprocess_folder_is_kept_at_exit(load_config, tmp_path):
    load_config()["on_exit"](None)
    assert tmp_path.is_dir()
