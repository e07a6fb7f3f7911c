"""Token revocation (RFC 7009) and introspection (RFC 7662)."""

from datetime import timedelta

import pytest

from idp import clock
from tests.oauth.conftest import register


def _revoke(client, rp, token: str, **extra):
    return client.post("/revoke", data={"token": token, **extra}, auth=(rp.client_id, rp.plain_secret))


def _offline_tokens(oidc, patients, rp):
    return oidc.tokens(rp, patients.create(), scope="openid profile offline_access")


# --- revocation ------------------------------------------------------------------------------


def test_revoking_a_refresh_token_revokes_its_family(oidc, patients, rp_client, resource_server, client):
    tokens = _offline_tokens(oidc, patients, rp_client)
    newest = oidc.refresh(rp_client, tokens["refresh_token"]).get_json()
    response = _revoke(client, rp_client, newest["refresh_token"], token_type_hint="refresh_token")
    assert response.status_code == 200
    assert oidc.refresh(rp_client, newest["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert oidc.userinfo(newest["access_token"]).status_code == 401
    assert oidc.introspect(resource_server, newest["access_token"]).get_json() == {"active": False}


def test_revoking_an_access_token_makes_it_inactive(oidc, patients, rp_client, resource_server, client):
    token = _offline_tokens(oidc, patients, rp_client)["access_token"]
    assert oidc.introspect(resource_server, token).get_json()["active"] is True
    assert _revoke(client, rp_client, token, token_type_hint="access_token").status_code == 200
    assert oidc.introspect(resource_server, token).get_json() == {"active": False}


def test_revocation_works_without_a_token_type_hint(oidc, patients, rp_client, client):
    tokens = _offline_tokens(oidc, patients, rp_client)
    assert _revoke(client, rp_client, tokens["refresh_token"]).status_code == 200
    assert oidc.refresh(rp_client, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_revoking_an_unknown_token_is_200(client, rp_client):
    response = _revoke(client, rp_client, "never-issued")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_revoking_an_already_revoked_token_is_200(oidc, patients, rp_client, client):
    token = _offline_tokens(oidc, patients, rp_client)["refresh_token"]
    _revoke(client, rp_client, token)
    assert _revoke(client, rp_client, token).status_code == 200


def test_revocation_requires_client_authentication(oidc, patients, rp_client, client):
    token = _offline_tokens(oidc, patients, rp_client)["refresh_token"]
    response = client.post("/revoke", data={"token": token}, auth=(rp_client.client_id, "wrong"))
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    assert oidc.refresh(rp_client, token).status_code == 200


def test_client_cannot_revoke_another_clients_token(app, oidc, patients, rp_client, client):
    other = register(name="Autre", redirect_uris=["https://other.example.lu/cb"], first_party=True)
    token = _offline_tokens(oidc, patients, rp_client)["refresh_token"]
    _revoke(client, other, token)
    assert oidc.refresh(rp_client, token).status_code == 200


def test_public_client_revokes_with_its_client_id(oidc, patients, public_client, client):
    tokens = oidc.tokens(public_client, patients.create(), scope="openid offline_access")
    response = client.post("/revoke", data={"token": tokens["refresh_token"], "client_id": public_client.client_id})
    assert response.status_code == 200
    assert oidc.refresh(public_client, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"


# --- introspection ---------------------------------------------------------------------------


def test_active_access_token_introspects_with_its_details(oidc, patients, rp_client, resource_server):
    tokens = _offline_tokens(oidc, patients, rp_client)
    response = oidc.introspect(resource_server, tokens["access_token"])
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    claims = oidc.verify(tokens["access_token"]).claims
    assert body["active"] is True
    assert body["scope"] == "openid profile offline_access"
    assert body["sub"] == claims["sub"] and body["client_id"] == rp_client.client_id
    assert body["exp"] == claims["exp"] and body["iss"] == "http://127.0.0.1:5000"
    assert body["token_type"] == "Bearer"


def test_active_refresh_token_introspects_with_its_own_expiry(app, oidc, patients, rp_client, resource_server):
    tokens = _offline_tokens(oidc, patients, rp_client)
    body = oidc.introspect(resource_server, tokens["refresh_token"]).get_json()
    assert body["active"] is True and body["client_id"] == rp_client.client_id
    assert body["exp"] >= clock.timestamp() + app.config["REFRESH_TOKEN_IDLE_TTL"] - 5
    assert body.get("token_type") != "Bearer"


def test_refresh_token_stays_active_after_its_access_token_expired(app, oidc, patients, rp_client, resource_server):
    tokens = _offline_tokens(oidc, patients, rp_client)
    clock.advance(timedelta(seconds=app.config["ACCESS_TOKEN_TTL"] + 1))
    assert oidc.introspect(resource_server, tokens["access_token"]).get_json() == {"active": False}
    assert oidc.introspect(resource_server, tokens["refresh_token"]).get_json()["active"] is True


def test_expired_access_token_is_inactive(app, oidc, patients, rp_client, resource_server):
    token = _offline_tokens(oidc, patients, rp_client)["access_token"]
    clock.advance(timedelta(seconds=app.config["ACCESS_TOKEN_TTL"] + 1))
    assert oidc.introspect(resource_server, token).get_json() == {"active": False}


def test_revoked_token_is_inactive(oidc, patients, rp_client, resource_server, client):
    tokens = _offline_tokens(oidc, patients, rp_client)
    _revoke(client, rp_client, tokens["refresh_token"])
    assert oidc.introspect(resource_server, tokens["access_token"]).get_json() == {"active": False}
    assert oidc.introspect(resource_server, tokens["refresh_token"]).get_json() == {"active": False}


def test_rotated_refresh_token_is_inactive(oidc, patients, rp_client, resource_server):
    tokens = _offline_tokens(oidc, patients, rp_client)
    oidc.refresh(rp_client, tokens["refresh_token"])
    assert oidc.introspect(resource_server, tokens["refresh_token"]).get_json() == {"active": False}


def test_unknown_token_is_inactive(resource_server, oidc):
    assert oidc.introspect(resource_server, "never-issued").get_json() == {"active": False}


def test_introspection_requires_client_authentication(oidc, patients, rp_client, client):
    token = _offline_tokens(oidc, patients, rp_client)["access_token"]
    assert client.post("/introspect", data={"token": token}).status_code == 401
    assert client.post("/introspect", data={"token": token}, auth=(rp_client.client_id, "wrong")).status_code == 401


def test_public_clients_cannot_introspect(oidc, patients, public_client, client):
    tokens = oidc.tokens(public_client, patients.create())
    response = client.post("/introspect", data={"token": tokens["access_token"], "client_id": public_client.client_id})
    assert response.status_code == 401 and "active" not in response.get_json()
