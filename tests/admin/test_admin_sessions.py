"""Admin authentication and sessions (issue 13, medium 6): a lockout per admin account, sessions kept
on the server (revoked at logout, idle and absolute timeouts), TOTP seeds sealed with the
key-encryption keys."""

import json
from datetime import timedelta

import pyotp
import pytest
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import text

from idp import admin_account, audit, clock, key_encryption
from idp.extensions import db
from tests.admin.test_admin_ui import PASSWORD, AdminBrowser, events, is_login_redirect
from tests.conftest import csrf_token


@pytest.fixture
def admin(client):
    return AdminBrowser(client)


def test_a_copied_admin_cookie_stops_working_at_logout(app, client, admin):
    """Before: the session was the signed cookie itself; a copy taken before logout kept working."""
    admin.login()
    copied = app.test_client()
    copied.set_cookie("esante_admin", client.get_cookie("esante_admin", path="/admin").value, path="/admin")
    assert copied.get("/admin/").status_code == 200, "the copy works while the session lives"
    admin.post("/admin/logout")
    assert is_login_redirect(copied.get("/admin/")), "revoked on the server: the copy opens nothing"


def test_holding_the_secret_key_does_not_mint_an_admin_session(app, client, admin):
    """Before: anyone with SECRET_KEY could sign {"admin_id": 1, "admin_seen_at": now} and be an admin."""
    signer = SecureCookieSessionInterface().get_signing_serializer(app)
    forged = signer.dumps({"admin_id": admin.account.id, "admin_seen_at": clock.timestamp()})
    client.set_cookie("esante_flow", forged)
    assert is_login_redirect(client.get("/admin/"))


def test_the_admin_session_ends_after_its_absolute_lifetime_even_when_active(app, client, admin):
    admin.login()
    lifetime = app.config["ADMIN_SESSION_ABSOLUTE_TIMEOUT"]
    step = timedelta(seconds=app.config["ADMIN_SESSION_IDLE_TIMEOUT"] - 60)
    elapsed = timedelta(0)
    while elapsed + step < timedelta(seconds=lifetime):
        clock.advance(step)
        elapsed += step
        assert client.get("/admin/").status_code == 200, elapsed
    clock.advance(timedelta(seconds=lifetime) - elapsed)
    expired = client.get("/admin/")
    assert is_login_redirect(expired)
    assert "expiré" in client.get("/admin/login").get_data(as_text=True)


def test_the_admin_cookie_is_http_only_strict_and_ends_with_the_browser(client, admin):
    response = admin.login()
    (header,) = [value for value in response.headers.getlist("Set-Cookie") if value.startswith("esante_admin=")]
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert {"httponly", "path"} <= attributes and "samesite=strict" in header.lower().replace(" ", "")
    assert "max-age" not in attributes and "expires" not in attributes


def test_a_disabled_admin_loses_the_session_at_once(client, admin):
    admin.login()
    admin.account.disabled = True
    db.session.commit()
    assert is_login_redirect(client.get("/admin/"))


def test_wrong_totp_codes_lock_the_admin_account(app, client, admin):
    """Before: thirty wrong TOTP codes in a row, and still no lock."""
    wrong = "000000" if admin.code() != "000000" else "111111"
    failures = app.config["PASSWORD_MAX_FAILURES"]
    statuses = [admin.submit_login(code=wrong).status_code for _ in range(failures)]
    assert statuses == [400] * failures
    clock.advance(timedelta(seconds=30))  # a TOTP step nobody used yet
    locked = admin.submit_login()
    assert locked.status_code == 400 and "Identifiant, mot de passe ou code incorrect." in locked.get_data(as_text=True), \
        "the lock answers like a wrong code: it tells nobody which names exist"
    assert [e.actor for e in events(audit.Event.ADMIN_LOGIN_LOCKED)] == ["alice"]
    clock.advance(timedelta(seconds=app.config["PASSWORD_LOCKOUT_SECONDS"]))
    assert admin.submit_login().status_code == 303, "backoff, not a hard lock"


def test_the_totp_seed_is_stored_sealed(app, admin):
    seed = admin_account.totp_seed(admin.account)
    row = db.session.execute(text("SELECT * FROM admin_account")).mappings().one()
    assert seed not in json.dumps({key: str(value) for key, value in row.items()}), "no column holds the seed in clear"
    assert row["totp_kek_id"] == key_encryption.current_kek_id()


def test_a_sealed_seed_moved_to_another_admin_does_not_open(admin):
    other = admin_account.create("bob", PASSWORD)
    db.session.commit()
    other.totp_seed_sealed, other.totp_kek_id = admin.account.totp_seed_sealed, admin.account.totp_kek_id
    with pytest.raises(key_encryption.KeyEncryptionError):
        admin_account.totp_seed(other)


def test_keys_rewrap_reseals_the_totp_seeds_under_the_new_key(app, runner, admin):
    seed = admin_account.totp_seed(admin.account)
    old_kek = admin.account.totp_kek_id
    app.config["KEY_ENCRYPTION_KEYS"] = "a-brand-new-key-encryption-secret-0123456789," + app.config["KEY_ENCRYPTION_KEYS"]
    result = runner.invoke(args=["keys", "rewrap", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["totp_seeds_rewrapped"] == 1
    db.session.expire_all()
    assert admin.account.totp_kek_id != old_kek
    app.config["KEY_ENCRYPTION_KEYS"] = app.config["KEY_ENCRYPTION_KEYS"].split(",")[0]  # the old secret dropped
    assert admin_account.totp_seed(admin.account) == seed
    assert pyotp.TOTP(seed).now() == pyotp.TOTP(admin_account.totp_seed(admin.account)).now()


def test_the_logout_needs_the_csrf_token(client, admin):
    admin.login()
    assert client.post("/admin/logout").status_code == 400
    assert client.get("/admin/").status_code == 200, "a forged logout ends nothing"
    token = csrf_token(client.get("/admin/").get_data(as_text=True))
    assert is_login_redirect(client.post("/admin/logout", data={"csrf_token": token}))
