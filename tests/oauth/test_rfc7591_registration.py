"""Dynamic client registration (RFC 7591) and client configuration (RFC 7592)."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from idp import audit, client as clients, clock
from idp.extensions import db

ISSUER = "http://127.0.0.1:5000"
WEB_CLIENT = {
    "client_name": "Pharmacie du Centre",
    "redirect_uris": ["https://pharmacie.example.lu/callback"],
    "post_logout_redirect_uris": ["https://pharmacie.example.lu/"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "scope": "openid profile email offline_access",
    "token_endpoint_auth_method": "client_secret_basic",
    "logo_uri": "https://pharmacie.example.lu/logo.png",
}
MACHINE_CLIENT = {
    "client_name": "Laboratoire — import des résultats",
    "grant_types": ["client_credentials"],
    "response_types": [],
    "scope": "openid",
    "token_endpoint_auth_method": "client_secret_post",
}


@pytest.fixture
def initial_token(app) -> str:
    token = clients.issue_initial_access_token(clock.now() + timedelta(hours=1), note="tests")
    db.session.commit()
    return token


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def register(client, token: str, metadata: dict):
    return client.post("/register", json=metadata, headers=bearer(token))


def approved(body: dict) -> dict:
    """An admin approves what the registration asked for that only an admin may give
    (``client_credentials`` for the machine client; tests/oauth/test_registration_approval.py)."""
    clients.approve(clients.get_any(body["client_id"]), actor="test")
    db.session.commit()
    return body


def client_count() -> int:
    return db.session.scalar(select(func.count()).select_from(clients.Client))


def test_registration_returns_client_information_and_management_credentials(client, initial_token):
    response = register(client, initial_token, WEB_CLIENT)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["client_name"] == "Pharmacie du Centre"
    assert body["redirect_uris"] == ["https://pharmacie.example.lu/callback"]
    assert body["post_logout_redirect_uris"] == ["https://pharmacie.example.lu/"]
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["response_types"] == ["code"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["logo_uri"] == "https://pharmacie.example.lu/logo.png"
    assert body["client_secret"] and body["client_secret_expires_at"] == 0
    assert abs(body["client_id_issued_at"] - clock.timestamp()) < 5
    assert body["registration_client_uri"] == f"{ISSUER}/register/{body['client_id']}"
    assert body["registration_access_token"]
    stored = clients.get(body["client_id"])
    assert stored.check_client_secret(body["client_secret"])
    assert stored.client_secret_hash != body["client_secret"]


def test_dynamically_registered_clients_are_third_parties_with_pairwise_subjects(client, initial_token):
    body = register(client, initial_token, {**WEB_CLIENT, "first_party": True}).get_json()
    stored = clients.get(body["client_id"])
    assert stored.first_party is False
    assert stored.subject_type == "pairwise" and body["subject_type"] == "pairwise"


def test_registration_is_audited(client, initial_token):
    body = register(client, initial_token, WEB_CLIENT).get_json()
    assert [(e.name, e.actor) for e in audit.recent(name=audit.Event.CLIENT_CREATED.value)] == [("client:created", "registration")]
    assert audit.recent(name=audit.Event.CLIENT_CREATED.value)[0].client_id == body["client_id"]


def test_registration_without_initial_access_token_is_refused(client):
    response = client.post("/register", json=WEB_CLIENT)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert response.headers["Cache-Control"] == "no-store"
    assert client_count() == 0


def test_registration_with_unknown_or_expired_initial_access_token_is_refused(client, initial_token):
    assert register(client, "not-a-token", WEB_CLIENT).status_code == 401
    clock.advance(timedelta(hours=2))
    response = register(client, initial_token, WEB_CLIENT)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
    assert client_count() == 0


def test_initial_access_token_works_only_once(client, initial_token):
    assert register(client, initial_token, WEB_CLIENT).status_code == 201
    again = register(client, initial_token, WEB_CLIENT)
    assert again.status_code == 401 and again.get_json()["error"] == "invalid_token"
    assert client_count() == 1


def test_rejected_metadata_does_not_spend_the_initial_access_token(client, initial_token):
    assert register(client, initial_token, {**WEB_CLIENT, "redirect_uris": ["http://pharmacie.example.lu/cb"]}).status_code == 400
    assert register(client, initial_token, WEB_CLIENT).status_code == 201


@pytest.mark.parametrize("redirect_uris", [
    ["http://pharmacie.example.lu/callback"],
    ["https://pharmacie.example.lu/callback#fragment"],
    "https://pharmacie.example.lu/callback",
    [],
])
def test_invalid_redirect_uris_get_invalid_redirect_uri(client, initial_token, redirect_uris):
    response = register(client, initial_token, {**WEB_CLIENT, "redirect_uris": redirect_uris})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_redirect_uri"
    assert response.headers["Cache-Control"] == "no-store"
    assert client_count() == 0


@pytest.mark.parametrize("change", [
    {"response_types": ["token"]},
    {"response_types": ["code", "id_token"]},
    {"grant_types": ["implicit"]},
    {"grant_types": ["password"]},
    {"scope": "openid admin"},
    {"token_endpoint_auth_method": "tls_client_auth"},
    {"token_endpoint_auth_method": "private_key_jwt"},
    {"subject_type": "global"},
    {"client_name": ""},
    {"client_name": 42},
    {"jwks_uri": "https://pharmacie.example.lu/jwks.json"},
    {"logo_uri": "http://pharmacie.example.lu/logo.png"},
])
def test_invalid_metadata_gets_invalid_client_metadata(client, initial_token, change):
    response = register(client, initial_token, {**WEB_CLIENT, **change})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_client_metadata"
    assert client_count() == 0


def test_body_must_be_a_json_object(client, initial_token):
    response = client.post("/register", data="client_name=x", headers=bearer(initial_token),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_client_metadata"


def test_unknown_metadata_never_reaches_the_registry(client, initial_token):
    body = register(client, initial_token, {**WEB_CLIENT, "sector_identifier": "dsp.example.lu"}).get_json()
    stored = clients.get(body["client_id"])
    assert "sector_identifier" not in stored.extra_metadata
    assert stored.sector_identifier == "pharmacie.example.lu"


FAPI_CLIENT = {
    **WEB_CLIENT,
    "token_endpoint_auth_method": "private_key_jwt",
    "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                       "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]},
    "security_profile": "fapi2",
}


def test_a_client_may_register_for_the_fapi2_profile_and_is_told_what_it_implies(client, initial_token):
    """``security_profile`` (this server's metadata name): the answer (§3.2.1) states what the
    FAPI 2.0 Security Profile implies: PAR (RFC 9126 §6), DPoP (RFC 9449 §5.2), ES256 tokens."""
    response = register(client, initial_token, FAPI_CLIENT)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["security_profile"] == "fapi2"
    assert body["require_pushed_authorization_requests"] is True and body["dpop_bound_access_tokens"] is True
    assert body["id_token_signed_response_alg"] == "ES256"
    configuration = client.get(body["registration_client_uri"][len(ISSUER):], headers=bearer(body["registration_access_token"]))
    assert configuration.get_json()["security_profile"] == "fapi2"


@pytest.mark.parametrize("change, error", [
    ({"token_endpoint_auth_method": "client_secret_basic", "jwks": None}, "invalid_client_metadata"),
    ({"redirect_uris": ["http://pharmacie.example.lu/callback"]}, "invalid_redirect_uri"),
    ({"dpop_bound_access_tokens": False}, "invalid_client_metadata"),
    ({"security_profile": "fapi1"}, "invalid_client_metadata"),
    ({"security_profile": ["fapi2"]}, "invalid_client_metadata"),
])
def test_a_registration_that_departs_from_the_fapi2_profile_is_refused(client, initial_token, change, error):
    metadata = {name: value for name, value in {**FAPI_CLIENT, **change}.items() if value is not None}
    response = register(client, initial_token, metadata)
    assert response.status_code == 400 and response.get_json()["error"] == error
    assert client_count() == 0


def test_registered_machine_client_gets_tokens_with_client_credentials(client, initial_token):
    body = approved(register(client, initial_token, MACHINE_CLIENT).get_json())
    assert body["response_types"] == []
    token = client.post("/token", data={
        "grant_type": "client_credentials", "client_id": body["client_id"], "client_secret": body["client_secret"],
    })
    assert token.status_code == 200, token.get_data(as_text=True)
    assert token.get_json()["access_token"]


def test_client_that_did_not_ask_for_client_credentials_cannot_use_it(client, initial_token):
    body = register(client, initial_token, WEB_CLIENT).get_json()
    token = client.post("/token", data={"grant_type": "client_credentials"}, auth=(body["client_id"], body["client_secret"]))
    assert token.status_code == 400 and token.get_json()["error"] == "unauthorized_client"


def test_read_returns_the_registration_without_the_secret(client, initial_token):
    registered = register(client, initial_token, WEB_CLIENT).get_json()
    response = client.get(f"/register/{registered['client_id']}", headers=bearer(registered["registration_access_token"]))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["client_id"] == registered["client_id"]
    assert body["client_name"] == "Pharmacie du Centre"
    assert body["registration_client_uri"] == registered["registration_client_uri"]
    assert body["registration_access_token"] == registered["registration_access_token"]
    assert "client_secret" not in body


def test_configuration_endpoint_needs_that_clients_registration_access_token(client, initial_token, rp_client):
    registered = register(client, initial_token, WEB_CLIENT).get_json()
    for headers in ({}, bearer("wrong"), bearer(initial_token)):
        response = client.get(f"/register/{registered['client_id']}", headers=headers)
        assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    other = client.get(f"/register/{rp_client.client_id}", headers=bearer(registered["registration_access_token"]))
    assert other.status_code == 401


def test_update_replaces_the_registration(client, initial_token):
    registered = register(client, initial_token, WEB_CLIENT).get_json()
    replacement = {
        "client_id": registered["client_id"],
        "client_name": "Pharmacie du Centre (Esch)",
        "redirect_uris": ["https://esch.pharmacie.example.lu/callback"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    response = client.put(f"/register/{registered['client_id']}", json=replacement,
                          headers=bearer(registered["registration_access_token"]))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["client_name"] == "Pharmacie du Centre (Esch)"
    assert body["redirect_uris"] == ["https://esch.pharmacie.example.lu/callback"]
    assert body["post_logout_redirect_uris"] == [] and body["grant_types"] == ["authorization_code"]
    assert "logo_uri" not in body
    stored = clients.get(registered["client_id"])
    assert stored.name == "Pharmacie du Centre (Esch)"
    assert stored.check_client_secret(registered["client_secret"])
    assert [e.actor for e in audit.recent(name=audit.Event.CLIENT_UPDATED.value)] == [f"client:{registered['client_id']}"]


def test_update_must_name_the_same_client_and_secret(client, initial_token):
    registered = register(client, initial_token, WEB_CLIENT).get_json()
    url, headers = f"/register/{registered['client_id']}", bearer(registered["registration_access_token"])
    for wrong in ({**WEB_CLIENT}, {**WEB_CLIENT, "client_id": "someone-else"},
                  {**WEB_CLIENT, "client_id": registered["client_id"], "client_secret": "not-the-secret"}):
        response = client.put(url, json={**wrong, "client_name": "Changed"}, headers=headers)
        assert response.status_code == 400
    assert clients.get(registered["client_id"]).name == "Pharmacie du Centre"


def test_update_with_invalid_metadata_changes_nothing(client, initial_token):
    registered = register(client, initial_token, WEB_CLIENT).get_json()
    response = client.put(f"/register/{registered['client_id']}", headers=bearer(registered["registration_access_token"]),
                          json={**WEB_CLIENT, "client_id": registered["client_id"], "redirect_uris": ["http://evil.example/cb"]})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_redirect_uri"
    db.session.expire_all()
    assert clients.get(registered["client_id"]).redirect_uris == WEB_CLIENT["redirect_uris"]
    assert audit.recent(name=audit.Event.CLIENT_UPDATED.value) == []


def test_update_to_secret_authentication_issues_a_secret(client, initial_token):
    native = {"client_name": "MyDSP", "redirect_uris": ["lu.esante.mydsp:/callback"], "token_endpoint_auth_method": "none"}
    registered = register(client, initial_token, native).get_json()
    assert "client_secret" not in registered
    response = client.put(f"/register/{registered['client_id']}", headers=bearer(registered["registration_access_token"]),
                          json={**MACHINE_CLIENT, "client_id": registered["client_id"]})
    assert response.status_code == 200, response.get_data(as_text=True)
    secret = response.get_json()["client_secret"]
    assert clients.get_any(registered["client_id"]).check_client_secret(secret)


def test_delete_makes_the_client_unusable(client, initial_token):
    registered = approved(register(client, initial_token, MACHINE_CLIENT).get_json())
    url, headers = f"/register/{registered['client_id']}", bearer(registered["registration_access_token"])
    response = client.delete(url, headers=headers)
    assert response.status_code == 204
    assert response.headers["Cache-Control"] == "no-store"
    token = client.post("/token", data={
        "grant_type": "client_credentials", "client_id": registered["client_id"], "client_secret": registered["client_secret"],
    })
    assert token.status_code in (400, 401) and token.get_json()["error"] == "invalid_client"
    assert client.get(url, headers=headers).status_code == 401
    assert client.delete(url, headers=headers).status_code == 401
    assert [e.client_id for e in audit.recent(name=audit.Event.CLIENT_DELETED.value)] == [registered["client_id"]]


def test_discovery_advertises_the_registration_endpoint(client):
    assert client.get("/.well-known/openid-configuration").get_json()["registration_endpoint"] == f"{ISSUER}/register"


@pytest.mark.parametrize("field, value", [("scope", "\x1b"), ("scope", "dossier-médical"), ("redirect_uris", ['http://é"\\.example/cb'])])
def test_metadata_errors_quote_the_input_in_printable_ascii_only(client, initial_token, field, value):
    """RFC 6749 §5.2: error_description is printable ASCII without quote or backslash, whatever was sent
    (found by the schemathesis run: a control character in ``scope`` was a 500)."""
    response = register(client, initial_token, {**WEB_CLIENT, field: value})
    assert response.status_code == 400
    description = response.get_json()["error_description"]
    assert description and all(" " <= char <= "~" and char not in '"\\' for char in description)
    assert client_count() == 0
