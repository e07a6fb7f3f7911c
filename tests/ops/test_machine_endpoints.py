"""What the machine endpoints answer with, on a live server with the suite's Redis.

Token, userinfo, introspection and revocation skip what only pages need (the session cookie,
``idp.MachineEndpointsWithoutSession``) and count their per-address limit straight through
``limits`` (``RouteLimiter.per_address``); their answers keep every header and access-log field:
``Cache-Control: no-store`` (RFC 6749 §5.1, RFC 7662 §2.2, OIDC Core §5.3.2 via RFC 6750),
``Pragma: no-cache`` on token responses (RFC 6749 §5.1), ``X-Content-Type-Options``, the request
id, one JSON access line; and past the limit, 429 with ``Retry-After`` (RFC 6585 §4).
"""

import json
import threading

import pytest
import redis
import requests

from idp import client as clients
from idp.extensions import db, limiter
from tests.security.conftest import serving
from tests.support import services

REQUEST_ID = "lb-request-0123456789"
USER_AGENT = "dsp-api/2.1 (machine endpoints test)"


@pytest.fixture(params=["sqlite", "postgresql"])
def provider(request, settings, tmp_path):
    """The provider on a live server, its per-address limits in the suite's Redis (fails, never
    skips, when Redis or PostgreSQL is missing)."""
    redis_url = services.redis_url(required=True)
    redis.Redis.from_url(redis_url).flushdb()
    with serving(request, settings, tmp_path, request.param, REDIS_URL=redis_url) as live:
        yield live


def machine_client(provider=None) -> tuple[str, str]:
    """A resource server: client credentials, and the audience its own tokens are for."""
    client, secret = clients.create(name="DSP API (test)", grant_types=["client_credentials"], scope="openid",
                                    resource_audience="https://dsp.example.lu/api")
    db.session.commit()
    return client.client_id, secret


def access_lines(capsys) -> list[dict]:
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "idp.access"]


def test_a_token_answer_carries_every_header_and_one_access_line(provider, capsys):
    credentials = machine_client(provider)
    capsys.readouterr()
    answer = requests.post(provider.url + "/token", data={"grant_type": "client_credentials"}, auth=credentials,
                           headers={"X-Request-ID": REQUEST_ID, "User-Agent": USER_AGENT}, timeout=10)
    assert answer.status_code == 200 and answer.json()["token_type"] == "Bearer"
    assert answer.headers["Cache-Control"] == "no-store" and answer.headers["Pragma"] == "no-cache"  # RFC 6749 §5.1
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["X-Request-ID"] == REQUEST_ID
    assert "Set-Cookie" not in answer.headers, "a machine endpoint sets no cookie"
    [line] = [line for line in access_lines(capsys) if line.get("request_id") == REQUEST_ID]
    assert {key: line[key] for key in ("level", "message", "method", "path", "endpoint", "status", "remote_addr", "user_agent")} == {
        "level": "INFO", "message": "POST /token 200", "method": "POST", "path": "/token", "endpoint": "/token", "status": 200,
        "remote_addr": "127.0.0.1", "user_agent": USER_AGENT}
    assert line["duration_ms"] > 0 and line["time"].endswith("+00:00")


@pytest.mark.parametrize("method, path, status", [("GET", "/userinfo", 401), ("POST", "/userinfo", 401), ("POST", "/introspect", 401),
                                                  ("POST", "/revoke", 401)])
def test_refusals_of_the_other_machine_endpoints_carry_every_header_and_one_access_line(provider, capsys, method, path, status):
    """Without (valid) credentials: RFC 6750 §3.1 at userinfo, RFC 6749 §5.2 ``invalid_client``
    at introspection and revocation (RFC 7662 §2.1, RFC 7009 §2.1)."""
    capsys.readouterr()
    headers = {"X-Request-ID": REQUEST_ID, "User-Agent": USER_AGENT, "Cookie": "esante_flow=not-a-session"}
    if path == "/userinfo":
        headers["Authorization"] = "Bearer not-a-token"
    answer = requests.request(method, provider.url + path, data={"token": "not-a-token"} if method == "POST" else None,
                              headers=headers, auth=("nobody", "nothing") if path != "/userinfo" else None, timeout=10)
    assert answer.status_code == status
    assert answer.headers["WWW-Authenticate"]
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["X-Request-ID"] == REQUEST_ID
    assert "Set-Cookie" not in answer.headers
    [line] = [line for line in access_lines(capsys) if line.get("request_id") == REQUEST_ID]
    assert (line["method"], line["path"], line["endpoint"], line["status"], line["user_agent"]) == (method, path, path, status, USER_AGENT)


@pytest.mark.settings(RATE_LIMIT_TOKEN="5 per minute")
def test_a_parallel_burst_past_the_token_limit_gets_429_with_retry_after(provider):
    """Twelve token requests from one address at once under "5 per minute": five are answered,
    seven refused with RFC 6749's JSON error and when to come back; the count is Redis's."""
    credentials = machine_client(provider)
    barrier, answers = threading.Barrier(12), [None] * 12

    def send(index):
        barrier.wait()
        answers[index] = requests.post(provider.url + "/token", data={"grant_type": "client_credentials"}, auth=credentials, timeout=30)

    threads = [threading.Thread(target=send, args=(index,)) for index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * 5 + [429] * 7
    for refused in (answer for answer in answers if answer.status_code == 429):
        assert refused.json()["error"] == "temporarily_unavailable"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.headers["Cache-Control"] == "no-store"
    assert not limiter._storage_dead, "counted in Redis, not in the in-memory fallback"
    assert redis.Redis.from_url(provider.app.config["REDIS_URL"]).keys("LIMITS:LIMITER/127.0.0.1/oauth.token_endpoint/5/1/minute")


def test_a_token_request_costs_one_redis_command_and_no_flask_limiter_resolution(app, client, monkeypatch):
    """One round trip to the limits' storage, and none of Flask-Limiter's passes that work out
    which limits apply (its app-wide ``before_request`` and its decorator each made one)."""
    redis_url = services.redis_url(required=True)
    app.config["REDIS_URL"] = app.config["RATELIMIT_STORAGE_URI"] = redis_url
    limiter.init_app(app)  # on Redis, as deployed
    with app.app_context():
        credentials = machine_client()
    passes = []
    original = type(limiter)._check_request_limit
    monkeypatch.setattr(type(limiter), "_check_request_limit", lambda self, *a, **k: passes.append(a) or original(self, *a, **k))
    token = lambda: client.post("/token", data={"grant_type": "client_credentials"}, auth=credentials).status_code
    server = redis.Redis.from_url(redis_url)
    _commands(server)
    assert token() == 200  # the first one connects and loads the counting script
    before = _commands(server)
    assert [token() for _ in range(3)] == [200, 200, 200]
    ran = {name: calls - before.get(name, 0) for name, calls in _commands(server).items() if calls != before.get(name, 0)}
    assert ran.pop("evalsha") == 3, "one round trip per token request: the counting script"
    assert set(ran) <= {"incrby", "expire"}, "nothing else but what that script runs inside Redis"
    assert client.get("/userinfo", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert passes == [], "no Flask-Limiter resolution pass on a machine request"


def _commands(server: redis.Redis) -> dict[str, int]:
    """How many times Redis ran each command (a script's own commands included), but INFO."""
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in server.info("commandstats").items() if name != "cmdstat_info"}


def test_machine_endpoints_build_no_session_and_pages_still_do(app, client, monkeypatch):
    """Flask opens the signed-cookie session on every request; nothing at the machine endpoints
    uses it, so they do not pay for it. The login page still gets its session (its CSRF token)."""
    signers = []
    original = type(app.session_interface).get_signing_serializer
    monkeypatch.setattr(type(app.session_interface), "get_signing_serializer",
                        lambda self, application: signers.append(application) or original(self, application))
    cookie = app.config["SESSION_COOKIE_NAME"]
    for method, path in (("POST", "/token"), ("GET", "/userinfo"), ("POST", "/introspect"), ("POST", "/revoke")):
        client.open(path, method=method, headers={"Cookie": f"{cookie}=not-a-session"})
    assert signers == [], "no session opened at a machine endpoint"
    page = client.get("/login")
    assert page.status_code == 200 and signers, "pages keep their session"
    assert page.headers["Set-Cookie"].startswith(cookie + "=")
