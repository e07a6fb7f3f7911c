"""Health checks, Prometheus metrics and JSON logs (idp/observability.py)."""

import json
import logging
import socket

import pytest

from idp import create_app
from idp.extensions import db
from tests.conftest import csrf_token
from tests.ops.conftest import metric_value


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _metrics(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


# --- health -----------------------------------------------------------------------------------


def test_healthz_answers_without_the_database(settings, tmp_path):
    broken = create_app({**settings, "DATABASE_URL": f"postgresql+psycopg://idp@127.0.0.1:{_closed_port()}/idp"})
    response = broken.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_ready_when_the_database_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok", "redis": "not configured"}}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_is_503_when_the_database_is_down(settings):
    url = f"postgresql+psycopg://idp@127.0.0.1:{_closed_port()}/idp?connect_timeout=2"
    broken = create_app({**settings, "DATABASE_URL": url})
    with broken.app_context():
        response = broken.test_client().get("/readyz")
        db.session.remove()
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == "failed"


def _readiness_with_redis_down(settings, **extra):
    broken = create_app({**settings, "REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0", **extra})
    with broken.app_context():
        if settings["DATABASE_URL"].startswith("sqlite"):
            db.create_all()
        response = broken.test_client().get("/readyz")
        db.session.remove()
    return response


def test_readyz_is_degraded_but_serving_when_redis_is_down_and_limits_fall_back_to_memory(settings):
    response = _readiness_with_redis_down(settings)
    assert response.status_code == 200
    assert response.get_json() == {"status": "degraded", "checks": {"database": "ok", "redis": "failed"}}


def test_readyz_is_503_when_redis_is_down_without_the_memory_fallback(settings):
    response = _readiness_with_redis_down(settings, RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=False)
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "checks": {"database": "ok", "redis": "failed"}}


# --- metrics ----------------------------------------------------------------------------------


def test_metrics_count_requests_and_latency_per_endpoint_pattern(client):
    before = _metrics(client)
    for _ in range(3):
        client.get("/.well-known/openid-configuration")
    client.get("/no/such/page/12345")
    after = _metrics(client)
    labels = {"endpoint": "/.well-known/openid-configuration", "method": "GET"}
    assert metric_value(after, "idp_http_requests_total", status="200", **labels) - metric_value(before, "idp_http_requests_total", status="200", **labels) == 3
    assert metric_value(after, "idp_http_request_duration_seconds_count", **labels) - metric_value(before, "idp_http_request_duration_seconds_count", **labels) == 3
    assert metric_value(after, "idp_http_requests_total", endpoint="unmatched", status="404") >= 1
    assert "/no/such/page" not in after


def test_made_up_methods_do_not_grow_the_label_set(client):
    for method in ("BREW", "XYZZY1", "XYZZY2"):
        client.open("/no/such/page", method=method)
    after = _metrics(client)
    assert "XYZZY" not in after and "BREW" not in after
    assert metric_value(after, "idp_http_requests_total", endpoint="unmatched", method="other", status="405") + \
        metric_value(after, "idp_http_requests_total", endpoint="unmatched", method="other", status="404") >= 3


def test_metrics_count_logins_failures_lockouts_and_tokens(app, client, oidc, patients, rp_client):
    before = _metrics(client)
    patient = patients.create()
    oidc.tokens(rp_client, patient, scope="openid offline_access")
    locked = patients.create()
    app.config["PASSWORD_MAX_FAILURES"] = 2
    for _ in range(3):
        patients.submit_password(locked, password="Wrong-password-1")
    client.post("/token", data={"grant_type": "client_credentials"}, auth=(rp_client.client_id, "wrong"))
    after = _metrics(client)

    def delta(name, **labels):
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("idp_logins_total") == 1
    assert delta("idp_login_failures_total", reason="password") == 1  # the second failure locks
    assert delta("idp_login_lockouts_total") == 2
    assert delta("idp_tokens_issued_total", grant_type="authorization_code") == 1
    assert delta("idp_audit_events_total", event="login:password_ok") == 1


def test_metrics_are_refused_outside_the_allowed_networks(client):
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert response.status_code == 404
    assert b"idp_http_requests_total" not in response.data


@pytest.mark.settings(TRUSTED_PROXY_COUNT=1)
def test_client_address_comes_from_the_trusted_proxy(client):
    """Behind the load balancer, the address that counts (rate limits, logs, /metrics) is the client's."""
    response = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert response.status_code == 404


def test_forwarded_for_is_ignored_without_trusted_proxies(client):
    response = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert response.status_code == 200


# --- logs ---------------------------------------------------------------------------------------


def _log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]


def test_each_request_is_logged_as_json_with_its_request_id(client, capsys):
    capsys.readouterr()
    response = client.get("/.well-known/openid-configuration")
    request_id = response.headers["X-Request-ID"]
    [entry] = [line for line in _log_lines(capsys) if line["logger"] == "idp.access"]
    assert entry["request_id"] == request_id
    assert entry["level"] == "INFO"
    assert entry["status"] == 200 and entry["method"] == "GET" and entry["path"] == "/.well-known/openid-configuration"
    assert entry["endpoint"] == "/.well-known/openid-configuration"
    assert isinstance(entry["duration_ms"], float)


def test_request_id_from_the_load_balancer_is_kept_and_a_bad_one_replaced(client):
    assert client.get("/healthz", headers={"X-Request-ID": "lb-7f3a9c21d4"}).headers["X-Request-ID"] == "lb-7f3a9c21d4"
    replaced = client.get("/healthz", headers={"X-Request-ID": "<script>alert(1)</script>"}).headers["X-Request-ID"]
    assert len(replaced) == 32 and replaced.isalnum()


def test_logs_of_a_full_login_hold_no_password_code_token_or_matricule(client, capsys, oidc, patients, rp_client):
    capsys.readouterr()
    patient = patients.create()
    page = client.get("/login?login_hint=" + patient.matricule)
    client.post("/login", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "matricule": patient.matricule,
                                "password": "Wrong-password-9"})
    tokens = oidc.tokens(rp_client, patient, scope="openid offline_access")
    code = patients.last_code(patient.account.mobile)
    output = capsys.readouterr().err
    assert output, "requests were logged"
    for secret in (patient.password, "Wrong-password-9", code, patient.matricule, tokens["access_token"],
                   tokens["refresh_token"], tokens["id_token"], rp_client.plain_secret):
        assert secret not in output
    assert all(json.loads(line) for line in output.splitlines())


def test_formatter_masks_secret_fields_and_matricules_passed_by_any_call_site(app, capsys):
    capsys.readouterr()
    app.logger.warning("matricule %s tried Bearer abc.def", "1893120105732",
                       extra={"password": "hunter2", "client_secret": "s3cr3t", "one_time_code": "123456", "account_id": 7})
    [entry] = _log_lines(capsys)
    assert entry["message"] == "matricule 1893*******32 tried Bearer [redacted]"
    assert entry["password"] == entry["client_secret"] == entry["one_time_code"] == "[redacted]"
    assert entry["account_id"] == 7


@pytest.mark.settings(LOG_FORMAT="text")
def test_text_logs_when_configured(client, capsys):
    capsys.readouterr()
    response = client.get("/.well-known/openid-configuration")
    line = [line for line in capsys.readouterr().err.splitlines() if "idp.access" in line][0]
    assert not line.startswith("{")
    assert f"[{response.headers['X-Request-ID']}] GET /.well-known/openid-configuration 200" in line


def test_logs_keep_flowing_after_an_in_process_migration(settings, tmp_path, capsys):
    """Alembic's fileConfig (``idp db upgrade`` in the same process) must not disable the app's loggers."""
    from flask_migrate import upgrade

    app = create_app({**settings, "DATABASE_URL": f"sqlite:///{tmp_path / 'migrated.sqlite3'}"})
    with app.app_context():
        upgrade()
    capsys.readouterr()
    app.logger.warning("still logging")
    assert "still logging" in capsys.readouterr().err


def test_the_log_level_is_accepted_in_lower_case_too(settings):
    """``IDP_LOG_LEVEL=info`` serves the server (granian spells levels so) and the app alike."""
    create_app({**settings, "LOG_LEVEL": "debug"})
    assert logging.getLogger("idp").level == logging.DEBUG
