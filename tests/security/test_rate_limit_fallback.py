"""Redis unavailable: the per-IP limits fall back to each instance's memory and logins keep working.

The choice (``RATELIMIT_IN_MEMORY_FALLBACK_ENABLED``, not ``swallow_errors``) is documented in
idp/extensions.py: swallowing errors would let a brute force through unlimited while Redis is
down; the fallback keeps limiting, per instance.
"""

import pytest
import redis

from idp import create_app
from idp.extensions import db
from tests.conftest import RequestScopedClient, csrf_token
from tests.security.conftest import free_port


def login(http, matricule: str, password: str):
    page = http.get("/login")
    return http.post("/login", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "matricule": matricule, "password": password})


def instance(settings, tmp_path, redis_url: str):
    application = create_app({**settings, "REDIS_URL": redis_url, "RATE_LIMIT_LOGIN": "3 per minute"})
    application.instance_path = str(tmp_path)
    application.test_client_class = RequestScopedClient
    return application


@pytest.fixture
def unreachable_redis(throwaway_redis):
    """A Redis URL nobody answers on (the fixture also restores the limiter afterwards)."""
    throwaway_redis.stop()
    return f"redis://127.0.0.1:{free_port()}/0"


def test_logins_work_and_stay_limited_when_redis_is_unreachable(app, settings, tmp_path, patients, unreachable_redis):
    patient = patients.create()
    application = instance(settings, tmp_path, unreachable_redis)
    with application.app_context():
        http = application.test_client()
        assert login(http, patient.matricule, patient.password).status_code == 303, "logins keep working"
        assert [login(http, patient.matricule, "wrong-password-1").status_code for _ in range(2)] == [400, 400]
        limited = login(http, patient.matricule, patient.password)
        assert limited.status_code == 429, "the limit still holds, in this instance's memory"
        assert "Trop de demandes" in limited.get_data(as_text=True)
        db.session.remove()


def test_redis_going_away_mid_run_keeps_logins_working(app, settings, tmp_path, patients, throwaway_redis):
    patient = patients.create()
    application = instance(settings, tmp_path, throwaway_redis.url)
    with application.app_context():
        http = application.test_client()
        assert login(http, patient.matricule, patient.password).status_code == 303
        assert redis.Redis.from_url(throwaway_redis.url).keys("LIMITS*"), "counted in Redis while it is up"
        throwaway_redis.stop()
        assert login(http, patient.matricule, patient.password).status_code == 303, "Redis gone: the login still works"
        assert [login(http, patient.matricule, "wrong-password-1").status_code for _ in range(2)] == [400, 400]
        assert login(http, patient.matricule, patient.password).status_code == 429, "the limit holds again, counted afresh in memory"
        db.session.remove()


@pytest.mark.settings(RATE_LIMIT_TOKEN="2 per minute")
def test_a_rate_limited_token_request_gets_json_not_a_page(client, rp_client):
    """Relying parties read JSON from the token endpoint, whatever their ``Accept`` header."""
    answers = [client.post("/token", data={"grant_type": "client_credentials"}, auth=(rp_client.client_id, rp_client.plain_secret),
                           headers={"Accept": "*/*"}) for _ in range(3)]
    limited = answers[-1]
    assert limited.status_code == 429 and limited.mimetype == "application/json"
    assert limited.get_json()["error"] == "temporarily_unavailable"
    assert int(limited.headers["Retry-After"]) > 0


def test_the_per_account_throttle_holds_in_memory_while_redis_is_down(app, settings, tmp_path, patients, throwaway_redis):
    """Each address once, one matricule: the per-account throttle still counts when Redis goes away."""
    patient = patients.create()
    application = create_app({**settings, "REDIS_URL": throwaway_redis.url, "RATE_LIMIT_LOGIN_PER_ACCOUNT": "2 per minute",
                              "PASSWORD_MAX_FAILURES": 100})
    application.instance_path = str(tmp_path)
    application.test_client_class = RequestScopedClient
    with application.app_context():
        http = application.test_client()

        def attempt(index: int):
            page = http.get("/login", environ_base={"REMOTE_ADDR": f"127.0.7.{index}"})
            return http.post("/login", environ_base={"REMOTE_ADDR": f"127.0.7.{index}"}, data={
                "csrf_token": csrf_token(page.get_data(as_text=True)), "matricule": patient.matricule, "password": "wrong-password-1"})

        assert attempt(1).status_code == 400
        assert redis.Redis.from_url(throwaway_redis.url).keys("LIMITS*account-throttle*"), "counted in Redis while it is up"
        throwaway_redis.stop()
        statuses = [attempt(index).status_code for index in range(2, 6)]
        assert statuses == [400, 400, 429, 429], "Redis gone: counted afresh in this instance's memory, no error"
        db.session.remove()


def test_the_token_limit_holds_in_memory_while_redis_is_down_and_returns_to_redis(app, settings, tmp_path, throwaway_redis, monkeypatch):
    """/token counts its per-address limit straight through ``limits`` (``RouteLimiter.per_address``):
    Redis gone, the limit holds in this instance's memory without an error; Redis back, the count
    is shared again once the storage is tried anew."""
    from idp import client as clients, extensions

    application = create_app({**settings, "REDIS_URL": throwaway_redis.url, "RATE_LIMIT_TOKEN": "3 per minute"})
    application.instance_path = str(tmp_path)
    application.test_client_class = RequestScopedClient
    counts = redis.Redis.from_url(throwaway_redis.url)
    with application.app_context():
        client, secret = clients.create(name="DSP API (test)", grant_types=["client_credentials"], scope="openid")
        db.session.commit()
        http = application.test_client()
        token = lambda: http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, secret)).status_code
        assert token() == 200
        assert counts.keys("LIMITS*oauth.token_endpoint*"), "counted in Redis while it is up"
        throwaway_redis.stop()
        assert [token() for _ in range(4)] == [200, 200, 200, 429], "Redis gone: counted afresh in memory, no error"
        throwaway_redis.start()
        monkeypatch.setattr(extensions, "STORAGE_RETRY_SECONDS", 0)
        assert token() == 200, "Redis back: one more in Redis's count (1 of 3), not memory's (past 3)"
        assert not extensions.limiter._storage_dead
        [key] = counts.keys("LIMITS*oauth.token_endpoint*")
        assert int(counts.get(key)) == 1
        db.session.remove()
