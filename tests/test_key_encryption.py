"""Private signing keys are sealed at rest with a key-encryption key (KEK), which rotates."""

import json

import pytest
from flask_migrate import downgrade, upgrade
from joserfc import jwk, jwt
from sqlalchemy import text

from idp import create_app, key_encryption, settings, signing_key
from idp.extensions import db
from tests.conftest import TEST_SETTINGS

FIRST = "a" * 40
SECOND = "b" * 40


def app_with(tmp_path, kek: str | None, **extra):
    values = {**TEST_SETTINGS, "DATABASE_URL": f"sqlite:///{tmp_path / 'kek.sqlite3'}", "INSTANCE_PATH": str(tmp_path / "instance"), **extra}
    if kek is not None:
        values["KEY_ENCRYPTION_KEYS"] = kek
    return create_app(values)


def stored_rows() -> list[dict]:
    return [dict(row._mapping) for row in db.session.execute(text("SELECT * FROM signing_key"))]


def signs_and_verifies() -> bool:
    kid, key = signing_key.active_key("RS256")
    token = jwt.encode({"alg": "RS256", "kid": kid}, {"sub": "x"}, key)
    return jwt.decode(token, signing_key.verification_keys()).claims["sub"] == "x"


def test_the_database_holds_no_private_key_in_the_clear(tmp_path):
    app = app_with(tmp_path, FIRST)
    with app.app_context():
        db.create_all()
        signing_key.ensure_keys()
        rows = stored_rows()
        assert rows and all("PRIVATE KEY" not in json.dumps(row, default=str) for row in rows)
        assert {row["kek_id"] for row in rows} == {key_encryption.current_kek_id()}
        assert signs_and_verifies()


def test_rotation_rewraps_under_the_new_kek_and_the_old_one_can_then_go(tmp_path):
    with app_with(tmp_path, FIRST).app_context():
        db.create_all()
        signing_key.ensure_keys()
        before = {row["kid"]: row["private_key_sealed"] for row in stored_rows()}
        signing_key._import_private.cache_clear()
    rotating = app_with(tmp_path, f"{SECOND},{FIRST}")
    with rotating.app_context():
        assert signs_and_verifies(), "keys sealed with an older KEK still open during the rotation"
        result = rotating.test_cli_runner().invoke(args=["keys", "rewrap", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["rewrapped"] == len(before)
        rows = stored_rows()
        assert {row["kek_id"] for row in rows} == {key_encryption.current_kek_id()}
        assert all(row["private_key_sealed"] != before[row["kid"]] for row in rows)
        signing_key._import_private.cache_clear()
    with app_with(tmp_path, SECOND).app_context():
        assert signs_and_verifies(), "after rewrap the old KEK is no longer needed"
        signing_key._import_private.cache_clear()


def test_a_missing_kek_is_a_clear_error_not_a_silent_new_key(tmp_path):
    with app_with(tmp_path, FIRST).app_context():
        db.create_all()
        signing_key.ensure_keys()
        signing_key._import_private.cache_clear()
    app = app_with(tmp_path, SECOND)
    with app.app_context():
        with pytest.raises(key_encryption.KeyEncryptionError, match="not configured"):
            signing_key.active_key("RS256")
        result = app.test_cli_runner().invoke(args=["keys", "rewrap"])
        assert result.exit_code != 0 and "not configured" in result.output


def test_a_sealed_key_moved_to_another_row_does_not_open(tmp_path):
    with app_with(tmp_path, FIRST).app_context():
        db.create_all()
        signing_key.ensure_keys()
        rsa, ec = sorted(stored_rows(), key=lambda row: row["alg"], reverse=True)
        with pytest.raises(key_encryption.KeyEncryptionError, match="altered"):
            key_encryption.open_sealed(ec["kek_id"], rsa["private_key_sealed"], f"{ec['kid']}|{ec['alg']}")


def test_kek_from_a_file_and_short_or_empty_secrets_refused(tmp_path):
    path = tmp_path / "kek.txt"
    path.write_text(FIRST + "\n")
    app = app_with(tmp_path, None, KEY_ENCRYPTION_KEYS_FILE=str(path))
    assert app.config["KEY_ENCRYPTION_KEYS"] == FIRST
    with pytest.raises(settings.InvalidSettings, match="at least 32"):
        app_with(tmp_path, "short-secret")
    path.write_text("")
    with pytest.raises(settings.InvalidSettings, match="empty"):
        app_with(tmp_path, None, KEY_ENCRYPTION_KEYS_FILE=str(path))
    with pytest.raises(settings.InvalidSettings, match="cannot be read"):
        app_with(tmp_path, None, KEY_ENCRYPTION_KEYS_FILE=str(tmp_path / "absent"))


def test_embedded_setup_generates_a_kek_once_and_reuses_it(tmp_path):
    first = app_with(tmp_path, None)
    again = app_with(tmp_path, None)
    assert first.config["KEY_ENCRYPTION_KEYS"] == again.config["KEY_ENCRYPTION_KEYS"]
    assert len(first.config["KEY_ENCRYPTION_KEYS"]) >= key_encryption.MINIMUM_SECRET_LENGTH


def test_upgrade_seals_the_plaintext_keys_of_an_existing_database(tmp_path):
    app = app_with(tmp_path, FIRST)
    with app.app_context():
        upgrade(revision="0004_delegation")
        pem = jwk.RSAKey.generate_key(2048, private=True)
        public = {**pem.as_dict(private=False), "kid": "legacy", "alg": "RS256", "use": "sig"}
        db.session.execute(
            text("INSERT INTO signing_key (kid, alg, private_pem, public_jwk, created_at) VALUES ('legacy', 'RS256', :pem, :jwk, '2026-01-01')"),
            {"pem": pem.as_pem(private=True).decode(), "jwk": json.dumps(public)},
        )
        db.session.commit()
        upgrade()
        (row,) = stored_rows()
        assert "PRIVATE KEY" not in row["private_key_sealed"] and row["kek_id"] == key_encryption.current_kek_id()
        kid, key = signing_key.active_key("RS256")
        assert kid == "legacy" and key.as_dict(private=False)["n"] == public["n"]
        downgrade(revision="0004_delegation")
        assert "PRIVATE KEY" in db.session.scalar(text("SELECT private_pem FROM signing_key"))
        db.session.remove()
        db.engine.dispose()
        signing_key._import_private.cache_clear()
