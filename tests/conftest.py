"""Fixtures shared by every test: a fresh app and database per test, a client, a runner, patients.

With ``IDP_TEST_DATABASE_URL`` set (``make test`` sets it) every test runs on the real
PostgreSQL: the schema is built once by the Alembic migrations and the tables are emptied
after each test. Without it, each test gets its own SQLite file.
"""

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import date
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, text

from idp import clock, create_app
from idp.extensions import db
from tests.support import services

pytest_plugins = ["tests.support.browser"]

TEST_SETTINGS = {
    "TESTING": True,
    "ISSUER": "http://127.0.0.1:5000",
    "SECRET_KEY": "test-secret-key",
    "PAIRWISE_SALT": "test-pairwise-salt",
    # Cheaper argon2 in tests; test_credential checks the production parameters separately.
    "ARGON2_MEMORY_COST": 1024,
    "ARGON2_TIME_COST": 1,
    "SIGNING_ALGORITHMS": ["RS256", "ES256"],
    "RATELIMIT_ENABLED": True,
}


@pytest.fixture(scope="session")
def postgres_url():
    url = services.database_url()
    if url:
        app = create_app({**TEST_SETTINGS, "DATABASE_URL": url})
        with app.app_context():
            from flask_migrate import upgrade

            db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            db.session.commit()
            upgrade()
            db.engine.dispose()
    return url


@pytest.fixture
def settings(tmp_path, postgres_url):
    """Override per test with ``@pytest.mark.settings(KEY=value)``."""
    values = dict(TEST_SETTINGS)
    values["DATABASE_URL"] = postgres_url or f"sqlite:///{tmp_path / 'idp.sqlite3'}"
    return values


@pytest.fixture
def app(request, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("IDP_INSTANCE_PATH", str(tmp_path))
    marker = request.node.get_closest_marker("settings")
    config = {**settings, **(marker.kwargs if marker else {})}
    application = create_app(config)
    application.instance_path = str(tmp_path)
    application.test_client_class = RequestScopedClient
    with application.app_context():
        if config["DATABASE_URL"].startswith("sqlite"):
            db.create_all()
        yield application
        db.session.rollback()
        if not config["DATABASE_URL"].startswith("sqlite"):
            empty_postgres_tables()
        db.session.remove()
        db.engine.dispose()
    clock.reset()


def empty_postgres_tables() -> None:
    """Leave the suite's PostgreSQL as the migrations made it, for the next test."""
    tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    db.session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only"))
    db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    db.session.execute(text("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only"))
    db.session.commit()


@pytest.fixture
def statements(app):
    """The SQL statements sent while the test runs: what a path reads and writes."""
    seen = []
    listener = lambda *arguments: seen.append(arguments[2])
    event.listen(db.engine, "before_cursor_execute", listener)
    yield seen
    event.remove(db.engine, "before_cursor_execute", listener)


class RequestScopedClient(FlaskClient):
    """Runs each request in its own application context, as in production.

    The ``app`` fixture keeps one application context open for the whole test, and Flask would
    reuse it for every request, leaking per-request state kept in ``g`` (SSO session, locale).
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        db.session.expire_all()  # the test's own session then reads what the request wrote
        return response


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def pytest_configure(config):
    config.addinivalue_line("markers", "settings(**values): app settings for this test")
    config.addinivalue_line("markers", "postgres: needs IDP_TEST_DATABASE_URL; fails, never skips, without it")
    config.addinivalue_line("markers", "fuzz: fuzz run, bounded in the normal suite, long under `make fuzz` (IDP_FUZZ=1)")


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token in page"
    return match.group(1)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class Patient:
    account: object
    password: str

    @property
    def matricule(self) -> str:
        return self.account.matricule


class PatientFactory:
    """Builds patients and drives the login pages, like the tutorial's ``auth`` helper."""

    def __init__(self, app, client):
        self.app, self.client = app, client
        self.sequence = 100

    def create(self, *, email="patient@example.lu", mobile="+352621000111", status="active", birth="19850412",
               password="Sante2026ok", given_name="Marie", family_name="Schmit"):
        from idp import account as accounts, credential, matricule

        self.sequence += 1
        value = matricule.with_check_digits(birth + f"{self.sequence:03d}")
        now = clock.now()
        account = accounts.Account(
            subject=secrets.token_urlsafe(24), matricule=value, family_name=family_name, given_name=given_name,
            birth_date=date(int(birth[:4]), int(birth[4:6]), int(birth[6:8])), email=email, mobile=mobile,
            status=status, created_at=now, updated_at=now,
        )
        db.session.add(account)
        db.session.flush()
        if status == "active":
            credential.set_password(account, password)
        db.session.commit()
        return Patient(account, password)

    def last_code(self, to: str) -> str:
        from idp import messaging

        messages = messaging.outbox_messages(to)
        assert messages, f"no message to {to}"
        return re.search(r"\b(\d{6})\b", messages[-1].body).group(1)

    def submit_password(self, patient: Patient, next_url: str | None = None, password: str | None = None):
        page = self.client.get("/login" + ("?" + urlencode({"next": next_url}) if next_url else ""))
        return self.client.post("/login", data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "matricule": patient.matricule,
            "password": password or patient.password,
            "next": next_url or "",
        })

    def choose_channel(self, channel: str = "sms"):
        page = self.client.get("/login/channel")
        return self.client.post("/login/channel", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "channel": channel})

    def submit_code(self, code: str):
        page = self.client.get("/login/code")
        return self.client.post("/login/code", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "code": code})

    def login(self, patient: Patient, next_url: str | None = None, channel: str = "sms"):
        """Full login; returns the response of the code step (a redirect to ``next_url``)."""
        response = self.submit_password(patient, next_url)
        assert response.status_code == 303, response.get_data(as_text=True)
        if response.headers["Location"].endswith("/login/channel"):
            self.choose_channel(channel)
        destination = patient.account.mobile if channel == "sms" or not patient.account.email else patient.account.email
        return self.submit_code(self.last_code(destination))


@pytest.fixture
def patients(app, client):
    return PatientFactory(app, client)


@pytest.fixture
def rp_client(app):
    """A confidential, first-party relying party (the DSP viewer)."""
    from idp import client as clients

    registered, secret = clients.create(
        name="DSP viewer", redirect_uris=["https://dsp.example.lu/callback"],
        post_logout_redirect_uris=["https://dsp.example.lu/"], first_party=True,
        scope="openid profile email phone offline_access matricule",
    )
    db.session.commit()
    registered.plain_secret = secret
    return registered


def authorization_url(client_id: str, redirect_uri: str, challenge: str, **extra) -> str:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": "openid profile",
              "state": "st-" + secrets.token_hex(4), "nonce": "n-" + secrets.token_hex(8),
              "code_challenge": challenge, "code_challenge_method": "S256", **extra}
    return "/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def query_of(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
