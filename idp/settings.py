"""Loading settings: defaults, then a settings file, then ``IDP_*`` variables, then tests'.

The defaults live in ``config/default.py`` (installed as data files when the project is
installed, read from the checkout otherwise). Settings that cannot work are refused at
start-up, not at the first login that needs them.
"""

import copy
import fcntl
import ipaddress
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from flask import Flask

from . import key_encryption

CHECKOUT_ROOT = Path(__file__).resolve().parent.parent
INSTALLED_SHARE = Path(sys.prefix) / "share" / "esante-idp"
ENVIRONMENT_PREFIX = "IDP"

# Text settings whose default is None. With those whose default is a string, an ``IDP_*``
# variable sets them verbatim: JSON parsing would turn a password "12345" into a number.
_TEXT_WITHOUT_DEFAULT = frozenset({
    "INSTANCE_PATH", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PAIRWISE_SALT",
    "KEY_ENCRYPTION_KEYS", "KEY_ENCRYPTION_KEYS_FILE",
    "SMTP_USERNAME", "SMTP_PASSWORD", "SMS_GATEWAY_URL", "SMS_GATEWAY_TOKEN",
    "PASSKEY_RP_ID", "ADMIN_PASSKEY_ATTESTATION_ROOTS",
})
_GENERATED_SECRETS = ("SECRET_KEY", "PAIRWISE_SALT", "KEY_ENCRYPTION_KEYS")
_CHOICES = {
    "MAIL_BACKEND": ("outbox", "smtp"),
    "SMS_BACKEND": ("outbox", "http"),
    "SMTP_SECURITY": ("none", "starttls", "tls"),
}

# Housekeeping windows (``idp housekeeping purge``), in seconds.
_RETENTION_SECONDS = (
    "HOUSEKEEPING_TOKEN_RETENTION", "HOUSEKEEPING_SSO_SESSION_RETENTION",
    "HOUSEKEEPING_LOGOUT_DELIVERY_RETENTION", "HOUSEKEEPING_UNKNOWN_LOGIN_RETENTION",
)


class InvalidSettings(ValueError):
    """A setting has a value the provider cannot run with."""


def resource_path(name: str) -> Path:
    """Return the checkout's ``name`` folder (``config``, ``migrations``) or the installed copy."""
    in_checkout = CHECKOUT_ROOT / name
    if in_checkout.is_dir():
        return in_checkout
    return INSTALLED_SHARE / name


def load(app: Flask, overrides: Mapping[str, Any] | None) -> None:
    app.config.from_pyfile(str(resource_path("config") / "default.py"))
    default_features = copy.deepcopy(app.config["FEATURES"])
    if settings_file := os.environ.get(f"{ENVIRONMENT_PREFIX}_CONFIG"):
        app.config.from_pyfile(os.path.abspath(settings_file))
    text_settings = _TEXT_WITHOUT_DEFAULT | {key for key, value in app.config.items() if isinstance(value, str)}
    app.config.from_prefixed_env(ENVIRONMENT_PREFIX)
    for key in text_settings:
        if (raw := os.environ.get(f"{ENVIRONMENT_PREFIX}_{key}")) is not None:
            app.config[key] = raw
    app.config["FEATURES"] = _features(default_features, app.config["FEATURES"])
    if overrides:
        app.config.update({**overrides, "FEATURES": _features(app.config["FEATURES"], overrides.get("FEATURES", {}))})
    _validate(app.config)
    _derive(app)


def _validate(config: Mapping[str, Any]) -> None:
    issuer = urlsplit(config["ISSUER"])
    if issuer.scheme not in ("https", "http") or not issuer.hostname or issuer.query or issuer.fragment:
        raise InvalidSettings("ISSUER must be an https URL without query or fragment (OpenID Connect Discovery §3)")
    if issuer.scheme == "http" and not _is_loopback(issuer.hostname):
        raise InvalidSettings("ISSUER may use plain http only on a loopback address (development)")
    if config["ONE_TIME_CODE_TTL"] > 600:
        raise InvalidSettings("ONE_TIME_CODE_TTL may not exceed 600 seconds")
    if not 0 < config["FEATURES"]["par"]["ttl"] < 600:  # RFC 9126 §2.2 "short-lived"; FAPI 2.0 §5.3.2.2: under 600 s
        raise InvalidSettings("FEATURES['par']['ttl'] must be between 1 and 599 seconds")
    for name, allowed in _CHOICES.items():
        if config[name] not in allowed:
            raise InvalidSettings(f"{name} must be one of {', '.join(allowed)}, not {config[name]!r}")
    if config["SMS_BACKEND"] == "http" and not config.get("SMS_GATEWAY_URL"):
        raise InvalidSettings("SMS_BACKEND=http needs SMS_GATEWAY_URL")
    if (rp_id := config.get("PASSKEY_RP_ID")) and not host_within(issuer.hostname, rp_id):
        raise InvalidSettings("PASSKEY_RP_ID must be the issuer's host or a parent domain of it (WebAuthn Level 3 §5.1.3)")
    if config["ADMIN_PASSKEY_AAGUIDS"] and not config.get("ADMIN_PASSKEY_ATTESTATION_ROOTS"):
        raise InvalidSettings("ADMIN_PASSKEY_AAGUIDS needs ADMIN_PASSKEY_ATTESTATION_ROOTS: an unchained attestation proves no model")
    for name in _RETENTION_SECONDS:
        if isinstance(config[name], bool) or not isinstance(config[name], int) or config[name] < 0:
            raise InvalidSettings(f"{name} must be a whole number of seconds, 0 or more")  # less would purge live rows
    internal_hosts = config["FEATURES"]["backchannel_logout"]["internal_hosts"]
    if not isinstance(internal_hosts, list) or not all(isinstance(host, str) and host for host in internal_hosts):
        raise InvalidSettings("FEATURES['backchannel_logout']['internal_hosts'] must be a list of host names")


def _features(defaults: dict[str, dict], given: Mapping[str, Any]) -> dict[str, dict]:
    """Each feature's defaults, overlaid with what the settings name (they may name only a few)."""
    if not isinstance(given, Mapping):
        raise InvalidSettings("FEATURES must map feature names to their settings")
    if unknown := set(given) - set(defaults):
        raise InvalidSettings(f"FEATURES has no feature {', '.join(sorted(unknown))} (known: {', '.join(defaults)})")
    merged = {}
    for name, options in defaults.items():
        chosen = given.get(name, {})
        if not isinstance(chosen, Mapping) or (unknown := set(chosen) - set(options)):
            raise InvalidSettings(f"FEATURES[{name!r}] takes {', '.join(options)}")
        merged[name] = {**options, **chosen}
        if not isinstance(merged[name]["enabled"], bool):
            raise InvalidSettings(f"FEATURES[{name!r}]['enabled'] must be true or false")
    return merged


def host_within(host: str, rp_id: str) -> bool:
    """``rp_id`` is ``host`` or a parent domain of it: a WebAuthn RP ID the origin may use (no IP addresses)."""
    host, rp_id = host.lower(), rp_id.lower()
    return (host == rp_id or host.endswith("." + rp_id)) and "." in rp_id or rp_id == host == "localhost"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _derive(app: Flask) -> None:
    config = app.config
    if config.get("INSTANCE_PATH"):
        app.instance_path = config.root_path = os.path.abspath(config["INSTANCE_PATH"])
    config["ISSUER"] = config["ISSUER"].rstrip("/")
    if not config.get("DATABASE_URL"):
        config["DATABASE_URL"] = "sqlite:///" + str(_private_database(Path(app.instance_path)))
    config["SQLALCHEMY_DATABASE_URI"] = config["DATABASE_URL"]
    # No pool_pre_ping: a round trip per request; idp.database recovers from a restart instead.
    if config.get("KEY_ENCRYPTION_KEYS_FILE") and not config.get("KEY_ENCRYPTION_KEYS"):
        config["KEY_ENCRYPTION_KEYS"] = _read_secret_file(config["KEY_ENCRYPTION_KEYS_FILE"])
    missing = [name for name in _GENERATED_SECRETS if not config.get(name)]
    if missing:
        config.update(_instance_secrets(Path(app.instance_path), missing))
    try:
        key_encryption.parse_secrets(config["KEY_ENCRYPTION_KEYS"])
    except ValueError as error:
        raise InvalidSettings(str(error)) from None
    secure = config["ISSUER"].startswith("https://")
    config["SESSION_COOKIE_SECURE"] = secure
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SESSION_COOKIE_NAME"] = "esante_flow"
    config["BABEL_DEFAULT_LOCALE"] = config["LANGUAGES"][0]
    config["RATELIMIT_STORAGE_URI"] = config.get("REDIS_URL") or "memory://"
    config["RATELIMIT_HEADERS_ENABLED"] = False  # a Redis round trip per limited request; see extensions.retry_after
    config["WTF_CSRF_TIME_LIMIT"] = None  # the flow cookie's lifetime bounds the token


def _read_secret_file(path: str) -> str:
    try:
        value = Path(path).read_text().strip()
    except OSError as error:
        raise InvalidSettings(f"KEY_ENCRYPTION_KEYS_FILE cannot be read: {error}") from None
    if not value:
        raise InvalidSettings(f"KEY_ENCRYPTION_KEYS_FILE {path} is empty")
    return value


def _private_database(instance: Path) -> Path:
    """The embedded SQLite file, readable by its owner only: it holds the private signing keys."""
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = instance / "idp.sqlite3"
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    return path


def _instance_secrets(instance: Path, names: list[str]) -> dict[str, str]:
    """Secrets generated on first start into ``<instance>/secrets.json`` (mode 0600) and reused.

    Workers that start together take a lock, so they all end up with the same values. A
    damaged file stops the start: silently new values would change every pairwise ``sub``.
    """
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = instance / "secrets.json"
    lock = os.open(instance / "secrets.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            stored = json.loads(path.read_text()) if path.exists() else {}
        except ValueError as error:
            raise InvalidSettings(f"{path} is damaged ({error}); restore it or set the secrets explicitly") from None
        if any(name not in stored for name in names):
            stored.update({name: secrets.token_urlsafe(48) for name in names if name not in stored})
            partial = path.with_name("secrets.json.new")
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(stored, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)
        path.chmod(0o600)
        return {name: stored[name] for name in names}
    finally:
        os.close(lock)
