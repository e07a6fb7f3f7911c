"""Load and fault on loopback: ``idp serve`` (the production server) + PostgreSQL + Redis.

A bounded run of full logins (password, then the one-time code) and token requests from
several threads, while the database is restarted once. Every answer must be clean (a success,
or a 503 with ``Retry-After`` and a page or RFC-style JSON), and afterwards nothing is lost or
inconsistent: each token a client received has its record, each record its audit event, each
completed login its SSO session and audit event.
"""

import base64
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, func, select, text

from idp import account as accounts, audit, sso_session, token as tokens
from idp.extensions import db
from bench.cluster import IDP_COMMAND
from tests.conftest import PatientFactory
from tests.oauth.conftest import register
from tests.security.conftest import app_on, free_port

ROOT = Path(__file__).resolve().parents[2]
LOGIN_THREADS, TOKEN_THREADS = 3, 2
RUN_SECONDS, OUTAGE_AT, OUTAGE_SECONDS = 6.0, 2.0, 1.5
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@pytest.fixture
def seeded(throwaway_postgres, tmp_path):
    """Schema, one patient per login thread (mobile only: the code goes straight to the outbox), a machine client."""
    application = app_on(throwaway_postgres.url, tmp_path)
    with application.app_context():
        db.drop_all()
        db.create_all()
        factory = PatientFactory(application, None)
        patients = [factory.create(email=None, mobile=f"+35262100{index:04d}") for index in range(LOGIN_THREADS)]
        logins = [(patient.matricule, patient.password, patient.account.mobile) for patient in patients]
        machine = register(name="Annuaire", grant_types=["client_credentials"], scope="openid")
        credentials = (machine.client_id, machine.plain_secret)
        db.session.remove()
        db.engine.dispose()
    return logins, credentials


@pytest.fixture
def server(throwaway_postgres, throwaway_redis, tmp_path, seeded):
    port = free_port()
    environment = {
        **os.environ,
        "IDP_DATABASE_URL": throwaway_postgres.url, "IDP_REDIS_URL": throwaway_redis.url,
        "IDP_ISSUER": f"http://127.0.0.1:{port}", "IDP_INSTANCE_PATH": str(tmp_path / "instance"),
        "IDP_SECRET_KEY": "load-test-secret", "IDP_PAIRWISE_SALT": "load-test-salt",
        "IDP_ARGON2_MEMORY_COST": "1024", "IDP_ARGON2_TIME_COST": "1",
        "IDP_RATE_LIMIT_LOGIN": "100000 per minute", "IDP_RATE_LIMIT_ONE_TIME_CODE": "100000 per minute",
        "IDP_RATE_LIMIT_TOKEN": "100000 per minute", "IDP_LOG_LEVEL": "WARNING",
        # The same patients log in again and again: the per-account bounds would (rightly) stop them.
        "IDP_RATE_LIMIT_LOGIN_PER_ACCOUNT": "100000 per minute", "IDP_RATE_LIMIT_ONE_TIME_CODE_PER_ACCOUNT": "100000 per minute",
        "IDP_ONE_TIME_CODE_RESEND_COOLDOWN": "0", "IDP_ONE_TIME_CODE_DAILY_SENDS": "100000",
        "WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    log = open(tmp_path / "server.log", "wb")
    process = subprocess.Popen([*IDP_COMMAND, "serve", "--bind", f"127.0.0.1:{port}"],
                               cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/login", timeout=10).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or a worker still booting
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGINT)  # quick shutdown: the run is over, nothing to drain
        process.wait(timeout=30)
        log.close()


class Recorder:
    """What the clients saw: every status, and the unclean answers in full."""

    def __init__(self):
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()
        self.unclean: list[str] = []
        self.access_tokens: list[str] = []
        self.logins = 0

    def check(self, response, expected: set[int]) -> bool:
        """True for the expected success; a clean 503 is fine too; anything else is recorded."""
        with self.lock:
            self.statuses[(response.request.method, response.request.path_url.split("?")[0], response.status_code)] += 1
        if response.status_code in expected:
            return True
        if response.status_code == 503 and response.headers.get("Retry-After", "").isdigit():
            json_error = response.headers.get("Content-Type", "").startswith("application/json") and \
                response.json().get("error") == "temporarily_unavailable"
            page = "Service momentanément indisponible" in response.text
            if json_error or page:
                return False
        with self.lock:
            self.unclean.append(f"{response.request.method} {response.request.path_url} {response.status_code}: {response.text[:300]}")
        return False


def last_code(engine, mobile: str) -> str | None:
    try:
        with engine.connect() as connection:
            body = connection.execute(text("SELECT body FROM outbox_message WHERE \"to\" = :to ORDER BY id DESC LIMIT 1"), {"to": mobile}).scalar()
    except Exception:  # the database is being restarted: this attempt is abandoned, like a patient's would be
        return None
    match = re.search(r"\b(\d{6})\b", body or "")
    return match.group(1) if match else None


def login_loop(base: str, login: tuple, recorder: Recorder, engine, stop: threading.Event) -> None:
    matricule, password, mobile = login
    while not stop.is_set():
        browser = requests.Session()
        page = browser.get(base + "/login", timeout=10)
        if not recorder.check(page, {200}):
            continue
        sent = browser.post(base + "/login", data={"csrf_token": CSRF.search(page.text).group(1), "matricule": matricule, "password": password},
                            allow_redirects=False, timeout=10)
        if not recorder.check(sent, {303}) or not sent.headers["Location"].endswith("/login/code"):
            continue
        code = last_code(engine, mobile)
        code_page = browser.get(base + "/login/code", timeout=10)
        if code is None or not recorder.check(code_page, {200}):
            continue
        done = browser.post(base + "/login/code", data={"csrf_token": CSRF.search(code_page.text).group(1), "code": code},
                            allow_redirects=False, timeout=10)
        if recorder.check(done, {303}):
            with recorder.lock:
                recorder.logins += 1


def token_loop(base: str, credentials: tuple, recorder: Recorder, stop: threading.Event) -> None:
    http = requests.Session()
    while not stop.is_set():
        response = http.post(base + "/token", data={"grant_type": "client_credentials"}, auth=credentials, timeout=10)
        if recorder.check(response, {200}):
            with recorder.lock:
                recorder.access_tokens.append(response.json()["access_token"])


def jti_of(access_token: str) -> str:
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]


def test_logins_and_token_requests_through_a_database_restart(throwaway_postgres, server, seeded, tmp_path):
    logins, credentials = seeded
    recorder, stop = Recorder(), threading.Event()
    engine = create_engine(throwaway_postgres.url, pool_pre_ping=True)
    threads = [threading.Thread(target=login_loop, args=(server, login, recorder, engine, stop)) for login in logins]
    threads += [threading.Thread(target=token_loop, args=(server, credentials, recorder, stop)) for _ in range(TOKEN_THREADS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(OUTAGE_AT)
        throwaway_postgres.stop()
        time.sleep(OUTAGE_SECONDS)
        throwaway_postgres.start()
        time.sleep(RUN_SECONDS - OUTAGE_AT - OUTAGE_SECONDS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    engine.dispose()

    assert recorder.unclean == [], recorder.unclean[:5]
    assert any(status == 503 for (_, _, status) in recorder.statuses), f"the restart was not felt: {recorder.statuses}"
    assert recorder.logins > 0 and recorder.access_tokens, recorder.statuses
    final = requests.post(server + "/token", data={"grant_type": "client_credentials"}, auth=credentials, timeout=10)
    assert final.status_code == 200, "recovered by itself"
    recorder.access_tokens.append(final.json()["access_token"])

    application = app_on(throwaway_postgres.url, tmp_path)
    with application.app_context():
        recorded = set(db.session.scalars(select(tokens.Token.jti)))
        assert {jti_of(value) for value in recorder.access_tokens} <= recorded, "a token a client received has no record"
        issued_events = db.session.scalar(select(func.count()).where(audit.AuditEvent.name == audit.Event.TOKEN_ISSUED.value))
        assert issued_events == len(recorded), "every token record has its audit event, and no event is without one"
        sessions = db.session.scalar(select(func.count()).select_from(sso_session.SsoSession))
        login_events = db.session.scalar(select(func.count()).where(audit.AuditEvent.name == audit.Event.LOGIN_SUCCEEDED.value))
        assert sessions == login_events >= recorder.logins, "each completed login has its session and its event"
        statuses = list(db.session.scalars(select(accounts.Account.status)))
        assert statuses == ["active"] * LOGIN_THREADS, "no account was lost or changed"
        db.session.remove()
        db.engine.dispose()
