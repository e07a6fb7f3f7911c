"""The userinfo endpoint (OpenID Connect Core §5.3) as an RFC 6750 protected resource."""

import json
from datetime import timedelta

from idp import client as clients, clock
from idp.extensions import db


def _tokens(oidc, patients, rp, scope="openid profile email phone"):
    return oidc.tokens(rp, patients.create(), scope=scope)


def test_userinfo_get_with_a_bearer_header(oidc, patients, rp_client):
    tokens = _tokens(oidc, patients, rp_client)
    response = oidc.userinfo(tokens["access_token"])
    assert response.status_code == 200
    body = response.get_json()
    assert body["sub"] == oidc.verify(tokens["id_token"]).claims["sub"]
    assert body["given_name"] == "Marie" and body["email"] == "patient@example.lu" and body["phone_number"] == "+352621000111"
    assert body["phone_number_verified"] is True


def test_userinfo_post_with_a_bearer_header(oidc, patients, rp_client, client):
    tokens = _tokens(oidc, patients, rp_client)
    response = client.post("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert response.status_code == 200 and response.get_json()["family_name"] == "Schmit"


def test_userinfo_post_with_the_token_in_the_form_body(oidc, patients, rp_client, client):
    tokens = _tokens(oidc, patients, rp_client)
    response = client.post("/userinfo", data={"access_token": tokens["access_token"]})
    assert response.status_code == 200 and response.get_json()["family_name"] == "Schmit"


def test_userinfo_ignores_a_token_in_the_query_string(oidc, patients, rp_client, client):
    tokens = _tokens(oidc, patients, rp_client)
    response = client.get("/userinfo?access_token=" + tokens["access_token"])
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")


def test_userinfo_releases_only_the_granted_scopes(oidc, patients, rp_client):
    body = oidc.userinfo(_tokens(oidc, patients, rp_client, scope="openid email")["access_token"]).get_json()
    assert set(body) == {"sub", "email", "email_verified"}


def test_matricule_only_for_clients_allowed_the_matricule_scope(oidc, patients, rp_client, third_party_client, client):
    patient = patients.create()
    allowed = oidc.tokens(rp_client, patient, scope="openid matricule")
    assert oidc.userinfo(allowed["access_token"]).get_json()["matricule"] == patient.matricule
    refused = oidc.tokens(third_party_client, patient, scope="openid profile matricule")
    assert "matricule" not in refused["scope"].split()
    assert "matricule" not in oidc.userinfo(refused["access_token"]).get_json()


def test_matricule_needs_the_scope_even_for_an_allowed_client(oidc, patients, rp_client):
    body = oidc.userinfo(_tokens(oidc, patients, rp_client, scope="openid profile")["access_token"]).get_json()
    assert "matricule" not in body


def test_missing_token_is_401_with_www_authenticate(client):
    response = client.get("/userinfo")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="http://127.0.0.1:5000"')


def test_invalid_token_is_401_invalid_token(client):
    response = client.get("/userinfo", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_tampered_token_is_401(oidc, patients, rp_client):
    token = _tokens(oidc, patients, rp_client)["access_token"]
    header, payload, signature = token.split(".")
    tampered = ".".join([header, payload, signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")])
    assert oidc.userinfo(tampered).status_code == 401


def test_id_token_is_not_an_access_token(oidc, patients, rp_client):
    assert oidc.userinfo(_tokens(oidc, patients, rp_client)["id_token"]).status_code == 401


def test_revoked_token_is_401(oidc, patients, rp_client, client):
    token = _tokens(oidc, patients, rp_client)["access_token"]
    client.post("/revoke", data={"token": token}, auth=(rp_client.client_id, rp_client.plain_secret))
    response = oidc.userinfo(token)
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_expired_token_is_401(app, oidc, patients, rp_client):
    token = _tokens(oidc, patients, rp_client)["access_token"]
    clock.advance(timedelta(seconds=app.config["ACCESS_TOKEN_TTL"] + 1))
    response = oidc.userinfo(token)
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_token_without_openid_is_403_insufficient_scope(oidc, patients, rp_client):
    token = _tokens(oidc, patients, rp_client, scope="profile email")["access_token"]
    response = oidc.userinfo(token)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_token_of_a_disabled_account_is_401(oidc, patients, rp_client):
    patient = patients.create()
    token = oidc.tokens(rp_client, patient)["access_token"]
    patient.account.status = "disabled"
    db.session.commit()
    assert oidc.userinfo(token).status_code == 401


def test_userinfo_is_not_cached(oidc, patients, rp_client, client):
    assert oidc.userinfo(_tokens(oidc, patients, rp_client)["access_token"]).headers["Cache-Control"] == "no-store"
    assert client.get("/userinfo").headers["Cache-Control"] == "no-store"


def test_userinfo_answers_claims_requested_for_it(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid", claims=json.dumps({"userinfo": {"email": None}}))
    assert oidc.userinfo(tokens["access_token"]).get_json()["email"] == "patient@example.lu"


def test_matricule_stops_when_the_client_loses_the_scope(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid matricule offline_access")
    clients.update(rp_client, scope="openid profile email phone offline_access")
    db.session.commit()
    assert "matricule" not in oidc.userinfo(tokens["access_token"]).get_json()
    refreshed = oidc.refresh(rp_client, tokens["refresh_token"]).get_json()
    assert "matricule" not in refreshed["scope"].split()
    assert "matricule" not in oidc.verify(refreshed["access_token"]).claims["scope"].split()
    assert "matricule" not in oidc.userinfo(refreshed["access_token"]).get_json()
