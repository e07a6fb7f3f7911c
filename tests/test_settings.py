"""Settings: defaults, then the ``IDP_CONFIG`` file, then ``IDP_*`` variables, then the app's mapping."""

import json
import os
import stat
from pathlib import Path

import pytest

from idp import create_app, settings
from idp.extensions import db

PRODUCTION_EXAMPLE = settings.CHECKOUT_ROOT / "config" / "production.example.py"
PRODUCTION_SECRETS = {
    "IDP_SECRET_KEY": "a-production-secret-key",
    "IDP_PAIRWISE_SALT": "a-production-pairwise-salt",
    "IDP_KEY_ENCRYPTION_KEYS": "a-production-key-encryption-secret-of-enough-length",
    "IDP_DATABASE_URL": "postgresql+psycopg://idp:secret@db.internal/idp",
    "IDP_SMTP_PASSWORD": "smtp-password",
    "IDP_SMS_GATEWAY_URL": "https://sms.example.lu/v1/messages",
    "IDP_SMS_GATEWAY_TOKEN": "sms-token",
}


@pytest.fixture
def instance(tmp_path, monkeypatch) -> Path:
    """A clean environment (no ``IDP_*`` from the caller's shell) and an instance folder under tmp."""
    for name in list(os.environ):
        if name.startswith("IDP_"):
            monkeypatch.delenv(name)
    folder = tmp_path / "instance"
    monkeypatch.setenv("IDP_INSTANCE_PATH", str(folder))
    return folder


def build(monkeypatch, **environment: str):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return create_app({"TESTING": True})


def test_environment_overrides_issuer_and_database(instance, monkeypatch, tmp_path):
    database = tmp_path / "elsewhere.sqlite3"
    app = build(monkeypatch, IDP_ISSUER="https://idp.example.lu/", IDP_DATABASE_URL=f"sqlite:///{database}")
    assert app.config["ISSUER"] == "https://idp.example.lu"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{database}"
    assert app.test_client().get("/.well-known/openid-configuration").get_json()["issuer"] == "https://idp.example.lu"
    with app.app_context():
        db.create_all()
    assert database.exists()


def test_without_database_url_sqlite_lives_in_the_instance_folder_readable_by_owner_only(instance, monkeypatch):
    app = build(monkeypatch)
    database = instance / "idp.sqlite3"
    assert app.instance_path == str(instance)
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{database}"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_settings_file_is_read_and_environment_wins_over_it(instance, monkeypatch, tmp_path):
    settings_file = tmp_path / "site.py"
    settings_file.write_text('ISSUER = "https://file.example.lu"\nACCESS_TOKEN_TTL = 120\nHELPDESK_EMAIL = "help@file.example.lu"\n')
    app = build(monkeypatch, IDP_CONFIG=str(settings_file), IDP_ISSUER="https://env.example.lu")
    assert app.config["ACCESS_TOKEN_TTL"] == 120
    assert app.config["HELPDESK_EMAIL"] == "help@file.example.lu"
    assert app.config["ISSUER"] == "https://env.example.lu"


def test_application_mapping_wins_over_environment(instance, monkeypatch):
    monkeypatch.setenv("IDP_ACCESS_TOKEN_TTL", "600")
    assert create_app({"TESTING": True, "ACCESS_TOKEN_TTL": 60}).config["ACCESS_TOKEN_TTL"] == 60


def test_environment_values_are_json_except_text_settings(instance, monkeypatch):
    app = build(
        monkeypatch,
        IDP_ACCESS_TOKEN_TTL="600",
        IDP_SIGNING_ALGORITHMS='["ES256"]',
        IDP_SMTP_PASSWORD="12345",
        IDP_SECRET_KEY="true",
        IDP_SMS_SENDER="007",
    )
    assert app.config["ACCESS_TOKEN_TTL"] == 600
    assert app.config["SIGNING_ALGORITHMS"] == ["ES256"]
    assert app.config["SMTP_PASSWORD"] == "12345"
    assert app.config["SECRET_KEY"] == "true"
    assert app.config["SMS_SENDER"] == "007"


def test_secrets_are_generated_once_into_a_private_file_and_reused(instance, monkeypatch):
    first = build(monkeypatch)
    secrets_file = instance / "secrets.json"
    stored = json.loads(secrets_file.read_text())
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert stored == {name: first.config[name] for name in ("SECRET_KEY", "PAIRWISE_SALT", "KEY_ENCRYPTION_KEYS")}
    assert len(stored["SECRET_KEY"]) >= 64 and stored["SECRET_KEY"] != stored["PAIRWISE_SALT"]
    second = build(monkeypatch)
    assert (second.config["SECRET_KEY"], second.config["PAIRWISE_SALT"]) == (stored["SECRET_KEY"], stored["PAIRWISE_SALT"])
    assert json.loads(secrets_file.read_text()) == stored


def test_explicit_secrets_are_not_written_to_the_instance_folder(instance, monkeypatch):
    app = build(monkeypatch, IDP_SECRET_KEY="explicit-key", IDP_PAIRWISE_SALT="explicit-salt",
                IDP_KEY_ENCRYPTION_KEYS="explicit-key-encryption-secret-of-enough-length")
    assert (app.config["SECRET_KEY"], app.config["PAIRWISE_SALT"]) == ("explicit-key", "explicit-salt")
    assert not (instance / "secrets.json").exists()


def test_a_damaged_secrets_file_stops_the_start(instance, monkeypatch):
    """New secrets in its place would silently change every pairwise subject."""
    instance.mkdir()
    (instance / "secrets.json").write_text('{"PAIRWISE_SALT": "trunc')
    with pytest.raises(settings.InvalidSettings, match="damaged"):
        build(monkeypatch)


@pytest.mark.parametrize("seconds, accepted", [(600, True), (601, False)])
def test_one_time_codes_live_at_most_ten_minutes(instance, monkeypatch, seconds, accepted):
    monkeypatch.setenv("IDP_ONE_TIME_CODE_TTL", str(seconds))
    if accepted:
        assert create_app({"TESTING": True}).config["ONE_TIME_CODE_TTL"] == 600
    else:
        with pytest.raises(settings.InvalidSettings, match="ONE_TIME_CODE_TTL"):
            create_app({"TESTING": True})


@pytest.mark.parametrize("seconds, accepted", [(599, True), (600, False), (0, False)])
def test_a_pushed_request_uri_lives_less_than_ten_minutes(instance, monkeypatch, seconds, accepted):
    """FAPI 2.0 §5.3.2.2: ``request_uri`` values with ``expires_in`` under 600 s (RFC 9126 §2.2: short-lived)."""
    monkeypatch.setenv("IDP_FEATURES__par__ttl", str(seconds))
    if accepted:
        assert create_app({"TESTING": True}).config["FEATURES"]["par"]["ttl"] == 599
    else:
        with pytest.raises(settings.InvalidSettings, match="ttl"):
            create_app({"TESTING": True})


@pytest.mark.parametrize(
    "issuer",
    ["http://idp.esante.lu", "https://idp.esante.lu/?tenant=1", "https://idp.esante.lu/#top", "idp.esante.lu"],
)
def test_issuer_must_be_https_except_on_loopback(instance, monkeypatch, issuer):
    with pytest.raises(settings.InvalidSettings, match="ISSUER"):
        build(monkeypatch, IDP_ISSUER=issuer)


@pytest.mark.parametrize("issuer", ["http://127.0.0.1:5000", "http://localhost:8080", "http://[::1]:5000"])
def test_plain_http_issuer_is_accepted_on_loopback(instance, monkeypatch, issuer):
    assert build(monkeypatch, IDP_ISSUER=issuer).config["ISSUER"] == issuer


@pytest.mark.parametrize(
    "environment, message",
    [
        ({"IDP_MAIL_BACKEND": "sendmail"}, "MAIL_BACKEND"),
        ({"IDP_SMS_BACKEND": "carrier-pigeon"}, "SMS_BACKEND"),
        ({"IDP_SMTP_SECURITY": "ssl"}, "SMTP_SECURITY"),
        ({"IDP_SMS_BACKEND": "http"}, "SMS_GATEWAY_URL"),
    ],
)
def test_messaging_settings_that_cannot_work_stop_the_start(instance, monkeypatch, environment, message):
    with pytest.raises(settings.InvalidSettings, match=message):
        build(monkeypatch, **environment)


@pytest.mark.parametrize("issuer, secure", [("https://idp.esante.lu", True), ("http://127.0.0.1:5000", False)])
def test_cookies_are_secure_when_the_issuer_is_https(instance, monkeypatch, issuer, secure):
    app = build(monkeypatch, IDP_ISSUER=issuer)
    assert app.config["SESSION_COOKIE_SECURE"] is secure
    with app.app_context():
        db.create_all()
    response = app.test_client().get("/login", base_url=issuer)
    flow_cookie = next(value for value in response.headers.getlist("Set-Cookie") if value.startswith("esante_flow="))
    assert ("; Secure" in flow_cookie) is secure
    assert "; HttpOnly" in flow_cookie and "SameSite=Lax" in flow_cookie


def test_production_example_loads_with_its_secrets_from_the_environment(instance, monkeypatch):
    app = build(monkeypatch, IDP_CONFIG=str(PRODUCTION_EXAMPLE), **PRODUCTION_SECRETS)
    config = app.config
    assert config["ISSUER"].startswith("https://") and config["SESSION_COOKIE_SECURE"] is True
    assert config["SQLALCHEMY_DATABASE_URI"] == PRODUCTION_SECRETS["IDP_DATABASE_URL"]
    assert (config["MAIL_BACKEND"], config["SMTP_SECURITY"], config["SMTP_PORT"]) == ("smtp", "starttls", 587)
    assert (config["SMS_BACKEND"], config["SMS_GATEWAY_TOKEN"]) == ("http", "sms-token")
    assert config["RATELIMIT_STORAGE_URI"] == config["REDIS_URL"]
    assert config["SECRET_KEY"] == "a-production-secret-key"
    assert not instance.exists(), "production keeps nothing in the instance folder"


@pytest.mark.parametrize("missing", sorted(PRODUCTION_SECRETS))
def test_production_example_refuses_to_start_without_a_secret(instance, monkeypatch, missing):
    environment = {name: value for name, value in PRODUCTION_SECRETS.items() if name != missing}
    with pytest.raises(RuntimeError, match=missing):
        build(monkeypatch, IDP_CONFIG=str(PRODUCTION_EXAMPLE), **environment)
