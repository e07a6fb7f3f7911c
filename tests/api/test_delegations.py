"""/api/v1/delegations: the JSON API relying parties manage assistants with, and its OpenAPI document."""

from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from idp import audit, clock, delegation as delegations, messaging
from idp.extensions import db
from tests.delegation.conftest import access_token, assist, majority_of

API = "/api/v1/delegations"


def bearer(value: str) -> dict:
    return {"Authorization": "Bearer " + value}


def delegated_token(oidc, rp, owner, assistant) -> str:
    """The assistant's token for the owner's record, by token exchange."""
    response = oidc.token_request(rp, {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": access_token(rp, assistant),
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token", "requested_subject": owner.account.subject})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["access_token"]


def test_the_owner_adds_lists_and_removes_an_assistant(client, viewer, child, parent):
    token = access_token(viewer, child)
    found = client.post(API + "/lookup", json={"matricule": parent.matricule}, headers=bearer(token))
    assert (found.status_code, found.get_json()) == (200, {"display_name": "H. Doe"})
    created = client.post(API, json={"matricule": parent.matricule, "type": "assistant_dsp", "role": None, "valid_until": None},
                          headers=bearer(token))
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert body["type"] == "assistant_dsp" and body["role"] is None
    assert body["owner"] == {"sub": child.account.subject, "display_name": "R. Doe"}
    assert body["assistant"] == {"sub": parent.account.subject, "display_name": "H. Doe"}
    assert body["valid_until"] == (majority_of(child) - timedelta(days=1)).isoformat()
    assert body["created_at"].endswith("Z")
    listed = client.get(API, headers=bearer(token))
    assert listed.get_json() == {"delegations": [body]} and listed.headers["Cache-Control"] == "no-store"
    assert client.post(API, json={"matricule": parent.matricule}, headers=bearer(token)).status_code == 409
    assert client.delete(f"{API}/{body['id']}", headers=bearer(token)).status_code == 204
    assert client.get(API, headers=bearer(token)).get_json() == {"delegations": []}
    assert client.delete(f"{API}/{body['id']}", headers=bearer(token)).status_code == 404
    names = [e.name for e in audit.trail(child.account.id)]
    assert {"delegation:lookup", "delegation:granted", "delegation:revoked"} <= set(names)
    assert audit.trail(child.account.id, assistant_id=parent.account.id)[0].client_id == viewer.client_id


def test_the_lookup_shows_only_a_masked_name_and_is_exact(client, viewer, child, parent):
    token = access_token(viewer, child)
    answer = client.post(API + "/lookup", json={"matricule": parent.matricule}, headers=bearer(token)).get_data(as_text=True)
    assert "Hector" not in answer and parent.matricule not in answer
    partial = client.post(API + "/lookup", json={"matricule": parent.matricule[:8]}, headers=bearer(token))
    assert (partial.status_code, partial.get_json()["error"]) == (400, "invalid_request")
    unknown = client.post(API + "/lookup", json={"matricule": "1893120105732"}, headers=bearer(token))
    assert (unknown.status_code, unknown.get_json()["error"]) == (404, "not_found")


@pytest.mark.settings(RATE_LIMIT_DELEGATION_LOOKUP="3 per minute")
def test_the_lookup_is_rate_limited(client, viewer, child, parent):
    token = access_token(viewer, child)
    statuses = [client.post(API + "/lookup", json={"matricule": parent.matricule}, headers=bearer(token)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.post(API + "/lookup", json={"matricule": parent.matricule}, headers=bearer(token))
    assert limited.get_json()["error"] == "too_many_requests"
    assert 0 < int(limited.headers["Retry-After"]) <= 60  # RFC 6585 §4: when the window resets


def test_the_lookup_finds_only_active_accounts(client, viewer, child, patients):
    """Before: a pending account was found, telling who has not activated yet (and it cannot log in to assist)."""
    pending = patients.create(status="pending", given_name="Paul", family_name="Doe", birth="19780707", email=None, mobile=None)
    token = access_token(viewer, child)
    found = client.post(API + "/lookup", json={"matricule": pending.matricule}, headers=bearer(token))
    assert (found.status_code, found.get_json()["error"]) == (404, "not_found")
    assert client.post(API, json={"matricule": pending.matricule}, headers=bearer(token)).status_code == 404


@pytest.mark.settings(RATE_LIMIT_DELEGATION_LOOKUP_PER_ACCOUNT="2 per minute")
def test_the_lookup_is_limited_per_account_too(client, viewer, child, parent):
    token = access_token(viewer, child)
    statuses = [client.post(API + "/lookup", json={"matricule": parent.matricule}, headers=bearer(token),
                            environ_base={"REMOTE_ADDR": f"127.0.9.{index}"}).status_code for index in range(3)]
    assert statuses == [200, 200, 429], "three addresses, one account: one budget"
    limited = client.post(API + "/lookup", json={"matricule": parent.matricule}, headers=bearer(token),
                          environ_base={"REMOTE_ADDR": "127.0.9.9"})
    assert limited.get_json()["error"] == "too_many_requests" and 0 < int(limited.headers["Retry-After"]) <= 60


def test_adding_an_assistant_needs_a_recent_login(app, client, viewer, child, parent):
    """RFC 9470: a token from an older login (kept alive by refreshes) gets a step-up challenge, not the record."""
    max_age = app.config["DELEGATION_REAUTHENTICATION_MAX_AGE"]
    old = access_token(viewer, child, logged_in_ago=timedelta(seconds=max_age + 1))
    refused = client.post(API, json={"matricule": parent.matricule}, headers=bearer(old))
    assert (refused.status_code, refused.get_json()["error"]) == (401, "insufficient_user_authentication")
    challenge = refused.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="insufficient_user_authentication"' in challenge and f'max_age="{max_age}"' in challenge
    assert delegations.for_owner(child.account) == []
    fresh = access_token(viewer, child)
    assert client.post(API, json={"matricule": parent.matricule}, headers=bearer(fresh)).status_code == 201


def test_the_owner_is_told_of_a_new_assistant_in_their_language(client, viewer, child, parent):
    child.account.locale = "de"
    db.session.commit()
    assert client.post(API, json={"matricule": parent.matricule}, headers=bearer(access_token(viewer, child))).status_code == 201
    for destination in (child.account.mobile, child.account.email):
        (notice,) = [m.body for m in messaging.outbox_messages(destination)]
        assert "H. Doe" in notice and "Assistent" in notice, notice


def test_token_errors_follow_rfc_6750(client, viewer, child):
    missing = client.get(API)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer realm=")
    assert "error=" not in missing.headers["WWW-Authenticate"]
    invalid = client.get(API, headers=bearer("garbage"))
    assert invalid.status_code == 401 and 'error="invalid_token"' in invalid.headers["WWW-Authenticate"]
    narrow = client.get(API, headers=bearer(access_token(viewer, child, "openid profile")))
    assert narrow.status_code == 403 and narrow.get_json()["error"] == "insufficient_scope"
    assert 'scope="delegations"' in narrow.headers["WWW-Authenticate"]
    token = access_token(viewer, child)
    clock.advance(timedelta(seconds=301))
    assert client.get(API, headers=bearer(token)).status_code == 401


@pytest.mark.parametrize("body", [
    None, [], {"matricule": 123}, {"type": "assistant_dsp"}, {"matricule": "x", "extra": 1},
    {"matricule": "MATRICULE", "valid_until": "2020-13-01"}, {"matricule": "MATRICULE", "valid_until": "20300101"},
    {"matricule": "MATRICULE", "type": "guardian"}, {"matricule": "MATRICULE", "role": 5},
    {"matricule": "MATRICULE", "valid_until": "2001-01-01"},
])
def test_bad_bodies_are_invalid_request(client, viewer, child, parent, body):
    if isinstance(body, dict) and body.get("matricule") == "MATRICULE":
        body = {**body, "matricule": parent.matricule}
    response = client.post(API, json=body, headers=bearer(access_token(viewer, child))) if body is not None else \
        client.post(API, data="matricule=1", headers=bearer(access_token(viewer, child)))
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_request"), response.get_data(as_text=True)
    assert delegations.for_owner(child.account) == []


def test_an_assistant_manages_a_minors_assistants(client, oidc, viewer, child, parent, patients):
    mother = patients.create(given_name="Anna", family_name="Doe", birth="19820303", email="anna@example.lu", mobile="+352621000003")
    assist(child, parent)
    token = delegated_token(oidc, viewer, child, parent)
    created = client.post(API, json={"matricule": mother.matricule}, headers=bearer(token))
    assert created.status_code == 201, created.get_data(as_text=True)
    granted = audit.trail(child.account.id)[0]
    assert (granted.name, granted.actor) == ("delegation:granted", f"account:{parent.account.id}")
    assert len(client.get(API, headers=bearer(token)).get_json()["delegations"]) == 2


def test_an_assistant_cannot_manage_an_adults_assistants(client, oidc, viewer, parent, patients):
    friend = patients.create(given_name="Jean", family_name="Weber", birth="19750202", email="jean@example.lu", mobile="+352621000004")
    other = patients.create(given_name="Anna", family_name="Muller", birth="19790101", email="anna@example.lu", mobile="+352621000003")
    found = assist(parent, friend)
    token = delegated_token(oidc, viewer, parent, friend)
    assert client.get(API, headers=bearer(token)).status_code == 200  # same rights as the owner to see them
    for response in (client.post(API, json={"matricule": other.matricule}, headers=bearer(token)),
                     client.post(API + "/lookup", json={"matricule": other.matricule}, headers=bearer(token)),
                     client.delete(f"{API}/{found.id}", headers=bearer(token))):
        assert (response.status_code, response.get_json()["error"]) == (403, "access_denied")


def test_removing_an_assistant_revokes_the_tokens_they_hold_for_the_record(client, oidc, viewer, child, parent):
    found = assist(child, parent)
    delegated = delegated_token(oidc, viewer, child, parent)
    assert client.delete(f"{API}/{found.id}", headers=bearer(access_token(viewer, child))).status_code == 204
    assert client.get(API, headers=bearer(delegated)).status_code == 401


def test_another_records_delegation_cannot_be_removed(client, viewer, child, parent, patients):
    friend = patients.create(given_name="Jean", family_name="Weber", birth="19750202", email="jean@example.lu", mobile="+352621000004")
    theirs = assist(parent, friend)
    assert client.delete(f"{API}/{theirs.id}", headers=bearer(access_token(viewer, child))).status_code == 404
    db.session.refresh(theirs)
    assert theirs.is_in_force()


def test_the_openapi_document_describes_every_operation(client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(document)
    operations = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert {operation for operation in operations if operation[1].startswith(API)} == {
        ("GET", API), ("POST", API), ("POST", API + "/lookup"), ("DELETE", API + "/{id}")}


def test_every_response_conforms_to_the_openapi_document(app, viewer, child, parent):
    """Schemathesis against the app. Left out: "schema-valid data accepted", since a valid_until in
    the past is well-formed yet refused (400), which no JSON Schema can express."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    token = access_token(viewer, child)
    for result in schema.get_all_operations():
        @given(case=result.ok().as_strategy())
        @settings(max_examples=25, suppress_health_check=list(HealthCheck), deadline=None)
        def conforms(case):
            case.call_and_validate(headers={"Authorization": "Bearer " + token}, excluded_checks=[positive_data_acceptance])

        conforms()
