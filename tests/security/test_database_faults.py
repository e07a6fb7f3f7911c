"""Database unavailable: 503 with Retry-After, a clean page or RFC-style JSON, nothing half-written,
and recovery by itself once the database is back.

The first tests make the suite's database refuse statements (through SQLAlchemy's cursor
events, raising the driver's own ``OperationalError`` as a dead connection does), which also
lets them fail a transaction half-way. The last ones stop and restart a real PostgreSQL.
"""

import re
from contextlib import contextmanager

from sqlalchemy import event, func, select

from idp import account as accounts, activation_letter, audit, cgu_acceptance, token as tokens
from idp.extensions import db
from tests.conftest import PatientFactory, csrf_token
from tests.flows.test_activation import Wizard
from tests.oauth.conftest import OidcDriver, authorization_request, register

UNAVAILABLE_PAGE = "Service momentanément indisponible"


@contextmanager
def database_refuses(engine, statement_pattern: str = r""):
    """Every statement matching ``statement_pattern`` fails as on a lost connection."""
    pattern = re.compile(statement_pattern, re.IGNORECASE)

    def refuse(connection, cursor, statement, parameters, context, executemany):
        if pattern.search(statement):
            raise engine.dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")

    event.listen(engine, "before_cursor_execute", refuse)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", refuse)


def login_post(client, matricule: str, password: str):
    page = client.get("/login")
    assert page.status_code == 200, "the login page itself needs no database"
    return client.post("/login", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "matricule": matricule, "password": password})


def exchange(client, rp, issued):
    """Redeem ``issued`` as ``rp`` (credentials read from ``rp`` before the database goes away)."""
    credentials = (rp.client_id, rp.plain_secret)
    return lambda: client.post("/token", auth=credentials, data={
        "grant_type": "authorization_code", "code": issued.code, "redirect_uri": issued.redirect_uri, "code_verifier": issued.verifier,
    })


def assert_clean_unavailable_page(response):
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    page = response.get_data(as_text=True)
    assert UNAVAILABLE_PAGE in page and "<html" in page
    assert "Traceback" not in page and "OperationalError" not in page and "sqlalchemy" not in page.lower()


def assert_rfc_unavailable_json(response):
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json()["error"] == "temporarily_unavailable"


def test_login_with_the_database_down_is_a_503_page_and_works_again_after(app, client, patients):
    patient = patients.create()
    matricule, password = patient.matricule, patient.password
    with database_refuses(db.engine):
        down = login_post(client, matricule, password)
    assert_clean_unavailable_page(down)
    assert login_post(client, matricule, password).status_code == 303, "recovers by itself"


def test_token_endpoint_with_the_database_down_answers_json_503(app, client, patients, rp_client):
    oidc = OidcDriver(client, patients)
    access_token = oidc.tokens(rp_client, patients.create())["access_token"]
    redeem = exchange(client, rp_client, oidc.code(rp_client, patients.create(mobile="+352621000222")))
    bearer = {"Authorization": "Bearer " + access_token, "Accept": "*/*"}
    with database_refuses(db.engine):
        down = redeem()
        userinfo = client.get("/userinfo", headers=bearer)
        api = client.get("/api/v1/delegations", headers=bearer)
    assert_rfc_unavailable_json(down)
    assert_rfc_unavailable_json(userinfo)
    assert_rfc_unavailable_json(api)


def test_a_grant_interrupted_by_the_database_is_not_half_written(app, client, patients, rp_client):
    """The code's redemption and the token it buys commit together: a failure keeps the code usable."""
    oidc = OidcDriver(client, patients)
    issued = oidc.code(rp_client, patients.create(), scope="openid offline_access")
    redeem = exchange(client, rp_client, issued)
    with database_refuses(db.engine, r"\bINSERT INTO token\b"):
        assert_rfc_unavailable_json(redeem())
    code = db.session.get(tokens.AuthorizationCode, tokens.digest(issued.code))
    assert code.used_at is None, "the redemption was rolled back with the token"
    assert db.session.scalar(select(func.count()).select_from(tokens.Token)) == 0
    assert audit.recent(name=audit.Event.TOKEN_ISSUED.value) == []
    retried = redeem()
    assert retried.status_code == 200, retried.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(tokens.Token)) == 1


def test_an_authorization_interrupted_by_the_database_issues_no_code(app, client, patients, rp_client):
    oidc = OidcDriver(client, patients)
    patient = patients.create()
    request = authorization_request(rp_client)
    oidc.authorize(request.url, patient)  # logged in; the first code is delivered
    codes_before = db.session.scalar(select(func.count()).select_from(tokens.AuthorizationCode))
    again = authorization_request(rp_client)
    with database_refuses(db.engine, r"^\s*INSERT INTO authorization_code\b"):
        assert_clean_unavailable_page(client.get(again.url))
    assert db.session.scalar(select(func.count()).select_from(tokens.AuthorizationCode)) == codes_before
    assert again.issued(client.get(again.url)).code


def test_an_activation_interrupted_by_the_database_is_not_half_written(app, client, patients, pending):
    """Step 4 activates the account, redeems the letter and records the CGU in one transaction."""
    account, code = pending
    wizard = Wizard(client, patients)
    wizard.to_last_step(account, code)
    with database_refuses(db.engine, r"^\s*INSERT INTO cgu_acceptance\b"):
        assert_clean_unavailable_page(wizard.finish())
    db.session.refresh(account)
    assert account.status == "pending" and account.activated_at is None
    assert activation_letter.current_letter(account) is not None, "the letter was not consumed"
    assert db.session.scalar(select(func.count()).select_from(cgu_acceptance.CguAcceptance)) == 0
    assert audit.recent(name=audit.Event.ACCOUNT_ACTIVATED.value) == []
    assert client.get("/activation/other-means").status_code == 200, "the wizard waits at step 4"
    finished = wizard.finish()
    assert finished.status_code == 303 and finished.headers["Location"].endswith("/activation/done")
    db.session.refresh(account)
    assert account.status == accounts.AccountStatus.ACTIVE.value
    assert len(audit.recent(name=audit.Event.ACCOUNT_ACTIVATED.value)) == 1


# --- a real PostgreSQL that goes away and comes back -------------------------------------------


def test_postgresql_stopped_then_restarted(throwaway_postgres, postgres_app):
    client = postgres_app.test_client()
    patients = PatientFactory(postgres_app, client)
    patient = patients.create()
    matricule, password = patient.matricule, patient.password
    machine = register(name="Annuaire", grant_types=["client_credentials"], scope="openid")
    client_id, secret = machine.client_id, machine.plain_secret
    assert login_post(client, matricule, password).status_code == 303, "the pool holds live connections"
    db.session.remove()

    throwaway_postgres.stop()
    try:
        assert_clean_unavailable_page(login_post(client, matricule, password))
        assert_rfc_unavailable_json(client.post("/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)))
    finally:
        throwaway_postgres.start()

    assert login_post(client, matricule, password).status_code == 303, "recovers by itself"
    assert client.post("/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)).status_code == 200
    names = list(db.session.scalars(select(audit.AuditEvent.name)))
    assert names.count(audit.Event.LOGIN_PASSWORD_OK.value) == 2, "the refused attempt left nothing behind"
    assert names.count(audit.Event.TOKEN_ISSUED.value) == 1


def test_a_database_lost_after_the_answer_was_built_does_not_turn_it_into_an_error(app, client, patients, monkeypatch):
    """The closing rollback fails when the server went away meanwhile (seen under load with a restart)."""
    patient = patients.create(email=None)  # one channel: the code is sent at once
    matricule, password = patient.matricule, patient.password
    assert login_post(client, matricule, password).status_code == 303
    dialect = db.engine.dialect
    real_rollback = dialect.do_rollback
    failures = []

    def lost(dbapi_connection):
        # End the transaction for real first: on PostgreSQL a connection left "idle in transaction"
        # would hold its locks and block the suite's TRUNCATE between tests.
        real_rollback(dbapi_connection)
        failures.append(True)
        raise dialect.loaded_dbapi.OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(dialect, "do_rollback", lost)
    answered = client.get("/login/code")  # reads the pending login, then closes its transaction
    monkeypatch.setattr(dialect, "do_rollback", real_rollback)
    assert failures, "the closing rollback was attempted"
    assert answered.status_code == 200
    assert client.get("/login/code").status_code == 200, "the next request gets a working connection"


def test_a_restart_between_two_requests_costs_no_request(throwaway_postgres, postgres_app):
    """The pooled connections died with the server: the first statement meets one, and the
    request runs again on a new connection (idp.database) instead of answering 503."""
    client = postgres_app.test_client()
    machine = register(name="Annuaire", grant_types=["client_credentials"], scope="openid")
    credentials = (machine.client_id, machine.plain_secret)
    assert client.post("/token", data={"grant_type": "client_credentials"}, auth=credentials).status_code == 200
    db.session.remove()  # the connection goes back to the pool, alive

    throwaway_postgres.stop()
    throwaway_postgres.start()

    assert client.post("/token", data={"grant_type": "client_credentials"}, auth=credentials).status_code == 200
    assert db.session.scalar(select(func.count()).where(audit.AuditEvent.name == audit.Event.TOKEN_ISSUED.value)) == 2
    assert db.session.scalar(select(func.count()).select_from(tokens.Token)) == 2, "issued once, not twice"


def test_no_connection_is_pinged_before_a_request(app, client, monkeypatch):
    """No pre-ping (a round trip per request): a dead connection is found by its first statement."""
    machine = register(name="Annuaire", grant_types=["client_credentials"], scope="openid")
    credentials = (machine.client_id, machine.plain_secret)
    pings = []
    real_ping = db.engine.dialect.do_ping
    monkeypatch.setattr(db.engine.dialect, "do_ping", lambda connection: pings.append(connection) or real_ping(connection))
    for _ in range(3):
        assert client.post("/token", data={"grant_type": "client_credentials"}, auth=credentials).status_code == 200
        db.session.remove()
    assert pings == []
