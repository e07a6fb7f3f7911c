"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

Each PostgreSQL test works in a database of its own (``idp_migrations_<random>``), created
next to the shared test database and dropped afterwards, so the suite's schema is untouched.
"""

import secrets
from collections.abc import Iterator

import pyotp
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from idp import account as accounts, admin_account, audit, client as clients, clock, create_app, credential, signing_key
from idp.extensions import db
from tests.conftest import TEST_SETTINGS
from tests.support import services


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request, tmp_path) -> Iterator[str]:
    """The URL of an empty database; the PostgreSQL one fails loudly when there is no server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
        return
    server = make_url(services.database_url(required=True))
    name = f"idp_migrations_{secrets.token_hex(6)}"
    maintenance = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with maintenance.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with maintenance.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        maintenance.dispose()


def app_on(url: str, tmp_path) -> Flask:
    return create_app({**TEST_SETTINGS, "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance")})


def schema_differences() -> list:
    """What ``flask db migrate`` would generate: nothing, when the migrations are complete."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(context, db.metadata)


def user_tables() -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_builds_the_schema_of_the_models(empty_database, tmp_path):
    app = app_on(empty_database, tmp_path)
    with app.app_context():
        upgrade()
        assert user_tables() == set(db.metadata.tables)
        assert schema_differences() == []
        db.engine.dispose()


def test_downgrade_to_base_and_upgrade_again(empty_database, tmp_path):
    app = app_on(empty_database, tmp_path)
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        assert user_tables() == set()
        upgrade()
        assert schema_differences() == []
        db.engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("empty_database", ["postgresql"], indirect=True)
def test_audit_trigger_goes_with_downgrade_and_returns_with_upgrade(empty_database, tmp_path):
    app = app_on(empty_database, tmp_path)
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        assert db.session.scalar(text("SELECT count(*) FROM pg_proc WHERE proname = 'audit_event_append_only'")) == 0
        db.session.commit()
        upgrade()
        audit.record(audit.Event.CLIENT_CREATED, actor="cli")
        db.session.commit()
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text("DELETE FROM audit_event"))
        db.session.rollback()
        db.session.remove()
        db.engine.dispose()


def test_app_starts_on_an_existing_database_and_keeps_its_data(empty_database, tmp_path):
    first = app_on(empty_database, tmp_path)
    with first.app_context():
        upgrade()
        accounts.import_registry("matricule,family_name,given_name,birth_date\n1893120105732,Muller,Anna,1893-12-01\n")
        clients.create(name="Existing RP", redirect_uris=["https://rp.example.lu/cb"], client_id="existing-rp")
        db.session.commit()
        published = sorted(key["kid"] for key in signing_key.published_keys_until()[0])
        db.engine.dispose()

    restarted = app_on(empty_database, tmp_path)
    with restarted.app_context():
        upgrade()  # nothing to do: already at head
        served = restarted.test_client().get("/jwks.json").get_json()["keys"]
        assert sorted(key["kid"] for key in served) == published, "the signing keys survive a restart"
        assert restarted.test_client().get("/.well-known/openid-configuration").status_code == 200
        assert accounts.find_by_matricule("1893120105732").given_name == "Anna"
        assert clients.get("existing-rp").name == "Existing RP"
        assert db.session.scalar(text("SELECT count(*) FROM alembic_version")) == 1
        assert schema_differences() == []
        db.session.remove()
        db.engine.dispose()


def test_an_existing_admins_totp_seed_is_sealed_by_the_upgrade_and_still_logs_in(empty_database, tmp_path):
    """0006 seals the clear seeds of admins created before it; the same authenticator app keeps working."""
    app = app_on(empty_database, tmp_path)
    with app.app_context():
        upgrade(revision="0005_security")
        seed = pyotp.random_base32()
        db.session.execute(text(
            "INSERT INTO admin_account (username, password_hash, totp_secret, last_totp_step, disabled, created_at) "
            "VALUES ('alice', :hash, :seed, 0, false, :now)"), {"hash": credential.hash_password("Correct-Horse-42-battery"),
                                                                 "seed": seed, "now": clock.now()})
        db.session.commit()
        upgrade()
        row = db.session.execute(text("SELECT * FROM admin_account")).mappings().one()
        assert seed not in str(dict(row)), "no column holds the seed in clear"
        admin = admin_account.authenticate("alice", "Correct-Horse-42-battery", pyotp.TOTP(seed).now())
        assert admin.username == "alice"
        db.session.commit()
        downgrade(revision="0005_security")
        assert db.session.execute(text("SELECT totp_secret FROM admin_account")).scalar() == seed, "downgrading opens it again"
        db.session.remove()
        db.engine.dispose()


def test_every_revision_id_fits_alembics_version_column():
    """Alembic keeps the current revision in ``alembic_version.version_num``, a VARCHAR(32):
    a longer id makes the upgrade fail on PostgreSQL after the migration has run."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from idp.settings import resource_path

    config = Config()
    config.set_main_option("script_location", str(resource_path("migrations")))
    revisions = [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()]
    assert revisions and all(len(revision) <= 32 for revision in revisions), revisions
