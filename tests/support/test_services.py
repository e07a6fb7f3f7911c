"""The throwaway PostgreSQL and Redis are reachable. These never skip: with no services,
they fail."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import redis

from tests.support import services


def test_postgresql_answers():
    url = services.database_url(required=True)
    assert url.startswith("postgresql+psycopg://")
    with psycopg.connect(services.libpq_url(url), connect_timeout=10) as conn:
        user, db = conn.execute("SELECT current_user, current_database()").fetchone()
        assert (user, db) == ("idp", "idp_test")
        conn.execute("CREATE TEMP TABLE probe (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO probe VALUES (1, %s)", ("éàü",))
        assert conn.execute("SELECT note FROM probe WHERE id = 1").fetchone() == ("éàü",)
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)


def test_redis_answers():
    url = services.redis_url(required=True)
    client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)
    try:
        assert client.ping() is True
        key = f"idp-test:{uuid.uuid4()}"
        client.set(key, "ok", ex=30)
        assert client.get(key) == b"ok"
        client.delete(key)
    finally:
        client.close()


def test_missing_urls_fail_loudly_when_required(monkeypatch):
    monkeypatch.delenv(services.DATABASE_URL_VAR, raising=False)
    monkeypatch.delenv(services.REDIS_URL_VAR, raising=False)

    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("IDP_REQUIRE_SERVICES", raising=False)
    with pytest.raises(services.ServicesUnavailable):
        services.database_url()
    with pytest.raises(services.ServicesUnavailable):
        services.redis_url()

    monkeypatch.delenv("CI")
    monkeypatch.setenv("IDP_REQUIRE_SERVICES", "1")
    with pytest.raises(services.ServicesUnavailable):
        services.database_url()

    monkeypatch.delenv("IDP_REQUIRE_SERVICES")
    assert services.database_url() is None
    assert services.redis_url() is None
    with pytest.raises(services.ServicesUnavailable):
        services.redis_url(required=True)


def test_libpq_url():
    assert (
        services.libpq_url("postgresql+psycopg://idp@127.0.0.1:5/idp_test")
        == "postgresql://idp@127.0.0.1:5/idp_test"
    )
    assert services.libpq_url("postgresql://x@h/db") == "postgresql://x@h/db"
