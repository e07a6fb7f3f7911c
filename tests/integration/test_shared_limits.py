"""Brute-force limits hold across instances: per IP in Redis, per account in the database."""

import pytest

from idp import create_app
from idp.extensions import db
from tests.conftest import csrf_token
from tests.support import services


@pytest.fixture
def redis_url():
    url = services.redis_url(required=True)
    import redis

    redis.Redis.from_url(url).flushdb()
    return url


def _login_attempt(http, matricule: str, password: str):
    page = http.get("/login")
    return http.post("/login", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "matricule": matricule, "password": password})


@pytest.mark.settings(RATE_LIMIT_LOGIN="3 per minute")
def test_per_ip_login_limit_is_counted_across_instances(app, settings, patients, redis_url, tmp_path):
    patient = patients.create()
    shared = {**settings, "REDIS_URL": redis_url, "RATE_LIMIT_LOGIN": "3 per minute"}
    first, second = create_app(shared), create_app(shared)
    first.instance_path = second.instance_path = str(tmp_path)
    statuses = []
    for instance in (first, second, first, second):
        with instance.app_context():
            statuses.append(_login_attempt(instance.test_client(), patient.matricule, "wrong-password-1").status_code)
            db.session.remove()
    assert statuses[:3] == [400, 400, 400]
    assert statuses[3] == 429


@pytest.mark.settings(PASSWORD_MAX_FAILURES=3)
def test_account_lockout_is_shared_between_instances(app, settings, patients, tmp_path):
    patient = patients.create()
    config = {**settings, "PASSWORD_MAX_FAILURES": 3}
    first, second = create_app(config), create_app(config)
    first.instance_path = second.instance_path = str(tmp_path)
    statuses = []
    for instance in (first, second, first):
        with instance.app_context():
            statuses.append(_login_attempt(instance.test_client(), patient.matricule, "wrong-password-1").status_code)
            db.session.remove()
    with second.app_context():
        locked = _login_attempt(second.test_client(), patient.matricule, patient.password)
        db.session.remove()
    assert statuses == [400, 400, 429]
    assert locked.status_code == 429
