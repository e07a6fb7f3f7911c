"""Userinfo, introspection and the refresh grant read what they need in one statement, as plain
rows (issue 15): the answers stay exactly what OpenID Connect Core §5.3 and RFC 7662 §2.2 say,
with fewer statements and no ORM entity loaded per request."""

from types import SimpleNamespace

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from idp import account as accounts, clock, delegation as delegations
from idp.extensions import db
from tests.oauth.conftest import RESOURCE_AUDIENCE


@pytest.fixture
def loaded_entities(app):
    """The ORM entities loaded from the database while the test runs (class names)."""
    seen = []
    listener = lambda session, instance: seen.append(type(instance).__name__)
    event.listen(Session, "loaded_as_persistent", listener)
    yield seen
    event.remove(Session, "loaded_as_persistent", listener)


def _plain(rp) -> SimpleNamespace:
    """What the driver needs of a registered client, read now: reading the test's own (expired)
    entity later would add its own statement to those counted."""
    return SimpleNamespace(client_id=rp.client_id, plain_secret=rp.plain_secret, is_public=rp.is_public)


def _is_postgresql() -> bool:
    return db.engine.dialect.name == "postgresql"


# --- userinfo (OpenID Connect Core §5.3) -----------------------------------------------------


def test_userinfo_answers_exactly_the_claims_of_the_granted_scopes(oidc, patients, rp_client, client):
    patient = patients.create()
    tokens = oidc.tokens(rp_client, patient, scope="openid profile email phone")
    response = oidc.userinfo(tokens["access_token"])
    account = db.session.get(accounts.Account, patient.account.id)
    # Core §5.4: profile, email and phone stand for these claims; §5.1 gives their forms; a claim
    # without a value (locale: the patient chose no language) is left out (§5.3.2).
    assert response.get_json() == {
        "sub": oidc.verify(tokens["id_token"]).claims["sub"],
        "name": "Marie Schmit", "given_name": "Marie", "family_name": "Schmit", "birthdate": "1985-04-12",
        "updated_at": clock.to_timestamp(account.updated_at),
        "email": "patient@example.lu", "email_verified": False,
        "phone_number": "+352621000111", "phone_number_verified": True,
    }
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"


def test_userinfo_reads_token_account_and_claims_request_in_one_statement_without_the_client(oidc, patients, rp_client,
                                                                                          statements, loaded_entities):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid profile")
    assert oidc.userinfo(tokens["access_token"]).status_code == 200  # the client is now in this worker's cache
    statements.clear()
    loaded_entities.clear()
    assert oidc.userinfo(tokens["access_token"]).status_code == 200
    assert len(statements) == 1
    assert "client" not in statements[0].split("WHERE")[0].replace("client_id", "")  # the client comes from the cache
    assert loaded_entities == []


# --- introspection (RFC 7662) ----------------------------------------------------------------


def test_introspection_of_an_access_token_answers_exactly_its_claims(oidc, patients, rp_client, resource_server):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid profile offline_access")
    claims = oidc.verify(tokens["access_token"]).claims
    response = oidc.introspect(resource_server, tokens["access_token"])
    # RFC 7662 §2.2: the token's own claims (RFC 9068 §2.2), its type (RFC 6749 §7.1); ``aud`` the
    # resource server's own audience, the one the introspecting client serves (§4).
    assert response.get_json() == {
        "active": True, "iss": claims["iss"], "client_id": claims["client_id"], "sub": claims["sub"], "aud": RESOURCE_AUDIENCE,
        "iat": claims["iat"], "exp": claims["exp"], "scope": claims["scope"], "auth_time": claims["auth_time"],
        "acr": claims["acr"], "jti": claims["jti"], "token_type": "Bearer",
    }


def test_introspection_of_a_refresh_token_answers_its_own_lifetime(app, oidc, patients, rp_client, resource_server):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid profile offline_access")
    claims = oidc.verify(tokens["access_token"]).claims
    body = oidc.introspect(resource_server, tokens["refresh_token"]).get_json()
    assert body == {
        "active": True, "iss": claims["iss"], "client_id": claims["client_id"], "sub": claims["sub"], "aud": RESOURCE_AUDIENCE,
        "iat": claims["iat"], "exp": claims["iat"] + app.config["REFRESH_TOKEN_IDLE_TTL"], "scope": claims["scope"],
        "auth_time": claims["auth_time"], "acr": claims["acr"],
    }


@pytest.mark.parametrize("which", ["access_token", "refresh_token"])
def test_introspection_reads_the_token_in_one_statement_and_loads_no_entity(oidc, patients, rp_client, resource_server,
                                                                            statements, loaded_entities, which):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid profile offline_access")
    resource_server = _plain(resource_server)
    assert oidc.introspect(resource_server, tokens[which]).get_json()["active"] is True  # the resource server is now cached
    statements.clear()
    loaded_entities.clear()
    assert oidc.introspect(resource_server, tokens[which]).get_json()["active"] is True
    assert len(statements) == 1 and statements[0].lstrip().startswith("SELECT")
    assert loaded_entities == []


# --- the refresh grant (RFC 6749 §6) -----------------------------------------------------------


def test_a_refresh_claims_the_token_and_reads_its_patient_in_one_statement(oidc, patients, rp_client, statements, loaded_entities):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid profile offline_access")
    rp_client = _plain(rp_client)
    statements.clear()
    loaded_entities.clear()
    response = oidc.refresh(rp_client, tokens["refresh_token"])
    assert response.status_code == 200, response.get_data(as_text=True)
    # The claim (with the patient and whether they have assistants), then the new token with its
    # audit event: one statement on PostgreSQL, two elsewhere. No read of the account or of
    # delegations of its own, and ``may_act`` not asked for a patient without assistants.
    assert statements[0].lstrip().startswith("UPDATE token")
    assert len(statements) == (2 if _is_postgresql() else 3)
    assert not [sql for sql in statements if sql.lstrip().startswith("SELECT")]
    assert loaded_entities == []
    assert "may_act" not in oidc.verify(response.get_json()["access_token"]).claims


def test_a_patient_with_an_assistant_still_gets_may_act_on_refresh(oidc, patients, rp_client):
    owner = patients.create()
    assistant = patients.create(email="aide@example.lu", mobile="+352621000222", given_name="Paul")
    owner_account = db.session.get(accounts.Account, owner.account.id)
    delegations.grant(owner_account, db.session.get(accounts.Account, assistant.account.id), created_by=owner_account)
    db.session.commit()
    tokens = oidc.tokens(rp_client, owner, scope="openid profile offline_access")
    first = oidc.verify(tokens["access_token"]).claims["may_act"]
    refreshed = oidc.refresh(rp_client, tokens["refresh_token"])
    assert refreshed.status_code == 200
    assert oidc.verify(refreshed.get_json()["access_token"]).claims["may_act"] == first
    assert set(first) == {"sub"}  # RFC 8693 §4.4: one party, named by its sub


def test_a_refresh_for_a_disabled_patient_is_refused(oidc, patients, rp_client):
    patient = patients.create()
    tokens = oidc.tokens(rp_client, patient, scope="openid profile offline_access")
    db.session.get(accounts.Account, patient.account.id).status = accounts.AccountStatus.DISABLED.value
    db.session.commit()
    refused = oidc.refresh(rp_client, tokens["refresh_token"])
    assert (refused.status_code, refused.get_json()["error"]) == (400, "invalid_grant")
