"""The ``idp`` console script: its groups, ``db upgrade``, ``run``, and ``--json`` on admin commands."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, inspect

from idp import messaging
from idp.extensions import db

IDP_SCRIPT = Path(sys.executable).parent / "idp"


@pytest.fixture
def script_environment(tmp_path) -> dict[str, str]:
    """The real script on a fresh SQLite file, without the caller's ``IDP_*`` settings."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("IDP_")}
    environment["IDP_INSTANCE_PATH"] = str(tmp_path / "instance")
    environment["IDP_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    return environment


def run_script(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(IDP_SCRIPT), *arguments], env=environment, capture_output=True, text=True, timeout=120)


def test_help_lists_every_command_group(script_environment):
    result = run_script(script_environment, "--help")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert {"run", "db", "patients", "letters", "admins", "outbox", "keys", "clients", "demo"} <= listed


MODULES_REPORT = (
    "import sys; from idp.cli import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    "print('LOADED', ' '.join(sorted(name for name in sys.modules if name.split('.')[0] in {'idp', 'fpdf', 'alembic', 'flask_migrate', 'webauthn', 'OpenSSL'})))"
)


def modules_loaded_by(environment: dict[str, str], *arguments: str) -> set[str]:
    """The modules of ours, and of the slow-to-import libraries, that one ``idp`` command line imports."""
    result = subprocess.run([sys.executable, "-c", MODULES_REPORT, *arguments], env=environment, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.rsplit("LOADED", 1)[1].split())


def test_help_builds_no_app_and_imports_no_command_group(script_environment):
    """Issue 14: ``idp --help`` took seconds because it built the app and imported every group."""
    loaded = modules_loaded_by(script_environment, "--help")
    assert loaded <= {"idp", "idp.cli"}, sorted(loaded)


def test_a_command_imports_neither_alembic_nor_fpdf_nor_webauthn_unless_it_needs_them(script_environment):
    """py_webauthn loads pyOpenSSL (about a third of a second): only a passkey ceremony needs it."""
    assert run_script(script_environment, "db", "upgrade").returncode == 0
    loaded = modules_loaded_by(script_environment, "outbox", "list")
    assert {"idp.messaging", "idp.passkey"} <= loaded
    assert not {name for name in loaded if name.split(".")[0] in {"fpdf", "alembic", "flask_migrate", "webauthn", "OpenSSL"}}, sorted(loaded)


def test_db_upgrade_creates_the_tables(script_environment, tmp_path):
    result = run_script(script_environment, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    engine = create_engine(script_environment["IDP_DATABASE_URL"])
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"alembic_version", "account", "client", "audit_event", "signing_key"} <= tables


def test_a_command_on_a_database_without_tables_says_to_upgrade(script_environment):
    result = run_script(script_environment, "outbox", "list")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no such table" in result.stderr and "run `idp db upgrade` first" in result.stderr, result.stderr


def test_a_command_on_an_empty_postgresql_schema_says_to_upgrade(script_environment, postgres_url):
    """The suite's PostgreSQL seen through a schema of its own with no tables (libpq's ``options``)."""
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA IF EXISTS cli_empty CASCADE; CREATE SCHEMA cli_empty")
    engine.dispose()
    script_environment["IDP_DATABASE_URL"] = f"{postgres_url}{'&' if '?' in postgres_url else '?'}options=-csearch_path%3Dcli_empty"
    result = run_script(script_environment, "outbox", "list")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert 'relation "' in result.stderr and "run `idp db upgrade` first" in result.stderr, result.stderr


def test_a_missing_postgresql_database_is_not_mistaken_for_a_missing_schema(script_environment, postgres_url):
    """PostgreSQL says "database … does not exist" too: upgrading would not help there."""
    base, _, _ = postgres_url.rpartition("/")
    script_environment["IDP_DATABASE_URL"] = f"{base}/no_such_database"
    result = run_script(script_environment, "outbox", "list")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: database error: ") and "no_such_database" in result.stderr, result.stderr
    assert "idp db upgrade" not in result.stderr


def test_an_unreachable_database_gets_the_drivers_reason_in_one_line(script_environment):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    script_environment["IDP_DATABASE_URL"] = f"postgresql+psycopg://idp@127.0.0.1:{closed_port}/idp"
    result = run_script(script_environment, "outbox", "list")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: database error: ") and "refused" in result.stderr, result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_run_serves_on_the_given_host_and_port(script_environment):
    """What ``make run`` does: migrate, seed, then serve on --host/--port."""
    for step in (("db", "upgrade"), ("demo", "seed")):
        prepared = run_script(script_environment, *step)
        assert prepared.returncode == 0, prepared.stderr
    port = _free_port()
    server = subprocess.Popen(
        [str(IDP_SCRIPT), "run", "--host", "127.0.0.1", "--port", str(port)],
        env=script_environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=2)
                break
            except requests.ConnectionError:
                assert server.poll() is None, "idp run exited"
                assert time.monotonic() < deadline, "idp run did not answer within 30 s"
                time.sleep(0.2)
        assert answer.status_code == 200
        assert answer.json()["issuer"] == "http://127.0.0.1:5000"
    finally:
        server.terminate()
        server.wait(timeout=10)


def invoke_json(runner, *arguments: str):
    result = runner.invoke(args=[*arguments, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_patients_import_prints_json(runner, tmp_path):
    extract = tmp_path / "registry.csv"
    extract.write_text("matricule,family_name,given_name,birth_date\n1893120105732,Muller,Anna,1893-12-01\n")
    assert invoke_json(runner, "patients", "import", str(extract)) == {"imported": True, "created": 1, "updated": 0, "unchanged": 0}


def test_letters_issue_prints_json(runner, patients):
    pending = patients.create(status="pending")
    [letter] = invoke_json(runner, "letters", "issue", pending.matricule)
    assert letter["matricule"] == pending.matricule and len(letter["activation_code"]) == 14


def test_outbox_list_prints_json(runner):
    messaging.send("sms", "+352621000999", "", "Votre code : 123456")
    db.session.commit()
    [message] = invoke_json(runner, "outbox", "list")
    assert (message["to"], message["channel"], message["body"]) == ("+352621000999", "sms", "Votre code : 123456")


def test_keys_rotate_and_list_print_json(runner):
    created = invoke_json(runner, "keys", "rotate")
    assert sorted(key["alg"] for key in created) == ["ES256", "RS256"]
    listed = invoke_json(runner, "keys", "list")
    assert {key["kid"] for key in created} <= {key["kid"] for key in listed}


def test_admins_create_prints_json(runner):
    created = invoke_json(runner, "admins", "create", "helpdesk1", "--password", "Helpdesk-2026-secure")
    assert created["username"] == "helpdesk1" and created["totp_uri"].startswith("otpauth://totp/")


def test_demo_seed_prints_json(runner):
    report = invoke_json(runner, "demo", "seed")
    assert [patient["name"] for patient in report["patients"]] == ["Hector Doe", "Rita Doe", "Filat D.", "Claire Weber"]
    assert [registered["client_id"] for registered in report["clients"]] == ["dsp-viewer", "mydsp"]
