"""The token endpoint (RFC 6749 §3.2): client authentication, the code, client credentials and
refresh grants, with single-use codes and refresh token rotation (RFC 9700 §4.14)."""

import base64
import hashlib
from datetime import timedelta
from urllib.parse import quote_plus

import pytest
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import ECKey, OctKey, RSAKey

from idp import clock, client as clients
from idp.extensions import db
from tests.conftest import authorization_url, pkce_pair, query_of
from tests.oauth.conftest import DSP_CALLBACK, RESOURCE_AUDIENCE, register

TOKEN_ENDPOINT = "http://127.0.0.1:5000/token"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _basic(client_id: str, secret: str) -> dict:
    """RFC 6749 §2.3.1: both halves are form-urlencoded before they are joined and base64-encoded."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def _set_secret(registered, secret: str) -> None:
    registered.client_secret_hash = hashlib.sha256(secret.encode()).hexdigest()
    db.session.commit()


def _code_request(issued) -> dict:
    return {"grant_type": "authorization_code", "code": issued.code, "redirect_uri": issued.redirect_uri, "code_verifier": issued.verifier}


# --- client authentication -------------------------------------------------------------------


def test_client_secret_basic_credentials_are_form_urlencoded(client, oidc, patients, rp_client):
    secret = "a b+c/d=e:f%g&h"
    _set_secret(rp_client, secret)
    issued = oidc.code(rp_client, patients.create())
    response = client.post("/token", data=_code_request(issued), headers=_basic(rp_client.client_id, secret))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_client_id_with_special_characters_authenticates_with_basic(app, client, oidc, patients):
    special = register(name="Spécial", client_id="dsp:viewer+1/é", redirect_uris=[DSP_CALLBACK], first_party=True)
    issued = oidc.code(special, patients.create())
    response = client.post("/token", data=_code_request(issued), headers=_basic("dsp:viewer+1/é", special.plain_secret))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_client_secret_post_authenticates(app, client, oidc, patients):
    poster = register(name="Poster", redirect_uris=[DSP_CALLBACK], auth_method="client_secret_post", first_party=True)
    issued = oidc.code(poster, patients.create())
    data = {**_code_request(issued), "client_id": poster.client_id, "client_secret": poster.plain_secret}
    response = client.post("/token", data=data)
    assert response.status_code == 200, response.get_data(as_text=True)


def test_client_authenticates_only_with_its_registered_method(client, oidc, patients, rp_client):
    issued = oidc.code(rp_client, patients.create())
    data = {**_code_request(issued), "client_id": rp_client.client_id, "client_secret": rp_client.plain_secret}
    response = client.post("/token", data=data)
    assert response.get_json()["error"] == "invalid_client"


def test_wrong_secret_is_401_invalid_client_with_www_authenticate(client, oidc, patients, rp_client):
    issued = oidc.code(rp_client, patients.create())
    response = client.post("/token", data=_code_request(issued), headers=_basic(rp_client.client_id, "wrong"))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.headers["Cache-Control"] == "no-store"


def test_unknown_client_is_401_invalid_client(client):
    response = client.post("/token", data={"grant_type": "client_credentials"}, headers=_basic("nobody", "secret"))
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in response.headers


def test_confidential_client_cannot_skip_authentication(client, oidc, patients, rp_client):
    issued = oidc.code(rp_client, patients.create())
    response = client.post("/token", data={**_code_request(issued), "client_id": rp_client.client_id})
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


@pytest.fixture
def rsa_key():
    return RSAKey.generate_key(2048, private=True)


@pytest.fixture
def jwt_client(app, rsa_key):
    public = {**rsa_key.as_dict(private=False), "kid": rsa_key.thumbprint(), "use": "sig", "alg": "RS256"}
    return register(name="Laboratoire national", redirect_uris=[DSP_CALLBACK], auth_method="private_key_jwt", first_party=True,
                    grant_types=["authorization_code", "client_credentials"], jwks={"keys": [public]})


def _assertion(key, client_id: str, audience: str = TOKEN_ENDPOINT, **claims) -> str:
    return private_key_jwt_sign(key, client_id, audience, header={"kid": key.thumbprint()}, claims=claims or None)


def test_private_key_jwt_authenticates(client, jwt_client, rsa_key, oidc, patients):
    issued = oidc.code(jwt_client, patients.create())
    data = {**_code_request(issued), "client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": _assertion(rsa_key, jwt_client.client_id)}
    response = client.post("/token", data=data)
    assert response.status_code == 200, response.get_data(as_text=True)


def test_private_key_jwt_may_name_the_issuer_as_audience(client, jwt_client, rsa_key):
    assertion = _assertion(rsa_key, jwt_client.client_id, audience="http://127.0.0.1:5000")
    response = client.post("/token", data={"grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": assertion})
    assert response.status_code == 200, response.get_data(as_text=True)


def test_private_key_jwt_assertion_cannot_be_replayed(client, jwt_client, rsa_key):
    data = {"grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": _assertion(rsa_key, jwt_client.client_id, jti="only-once")}
    assert client.post("/token", data=data).status_code == 200
    replayed = client.post("/token", data=data)
    assert replayed.status_code in (400, 401) and replayed.get_json()["error"] == "invalid_client"


def test_private_key_jwt_signed_with_another_key_fails(client, jwt_client):
    stranger = RSAKey.generate_key(2048, private=True)
    data = {"grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": _assertion(stranger, jwt_client.client_id)}
    assert client.post("/token", data=data).get_json()["error"] == "invalid_client"


def test_private_key_jwt_for_another_audience_fails(client, jwt_client, rsa_key):
    data = {"grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": _assertion(rsa_key, jwt_client.client_id, audience="https://other-idp.example.com/token")}
    assert client.post("/token", data=data).get_json()["error"] == "invalid_client"


def test_private_key_jwt_that_expired_fails(client, jwt_client, rsa_key):
    assertion = private_key_jwt_sign(rsa_key, jwt_client.client_id, TOKEN_ENDPOINT, header={"kid": rsa_key.thumbprint()},
                                     issued_at=clock.timestamp() - 3600, expires_in=600)
    data = {"grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": assertion}
    assert client.post("/token", data=data).get_json()["error"] == "invalid_client"


# --- client credentials ----------------------------------------------------------------------


@pytest.fixture
def machine_client(app):
    return register(name="DSP API batch", grant_types=["client_credentials"], scope="openid profile offline_access matricule")


def test_client_credentials_gets_an_access_token_without_id_token_or_refresh_token(oidc, machine_client):
    response = oidc.token_request(machine_client, {"grant_type": "client_credentials", "scope": "openid profile offline_access"})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["access_token"] and body["token_type"] == "Bearer"
    assert "id_token" not in body and "refresh_token" not in body
    claims = oidc.verify(body["access_token"]).claims
    assert claims["sub"] == machine_client.client_id and claims["client_id"] == machine_client.client_id
    assert not {"openid", "profile", "offline_access", "matricule"} & set(body.get("scope", "").split())


def test_client_credentials_without_a_granted_scope_has_no_scope_member(oidc, machine_client):
    """RFC 6749 §3.3: a scope is one or more scope-tokens, so ``"scope": ""`` is no scope at all;
    nothing granted means no ``scope`` member in the response, the JWT or introspection."""
    clients.update(machine_client, extra_metadata={"access_token_audiences": [RESOURCE_AUDIENCE]})
    api = register(name="DSP API", grant_types=["client_credentials"], scope="openid", resource_audience=RESOURCE_AUDIENCE)
    body = oidc.token_request(machine_client, {"grant_type": "client_credentials"}).get_json()
    assert "scope" not in body, body
    assert "scope" not in oidc.verify(body["access_token"]).claims
    introspected = oidc.introspect(api, body["access_token"]).get_json()
    assert introspected["active"] is True and "scope" not in introspected


def test_client_credentials_token_opens_no_userinfo(oidc, machine_client):
    body = oidc.token_request(machine_client, {"grant_type": "client_credentials"}).get_json()
    assert oidc.userinfo(body["access_token"]).status_code == 401


def test_client_not_registered_for_client_credentials_is_refused(oidc, rp_client):
    response = oidc.token_request(rp_client, {"grant_type": "client_credentials"})
    assert response.status_code == 400 and response.get_json()["error"] == "unauthorized_client"


def test_public_client_cannot_use_client_credentials(app):
    with pytest.raises(clients.InvalidClientMetadata):
        clients.create(name="Native", auth_method="none", grant_types=["client_credentials"])


def test_unknown_grant_type_is_unsupported_grant_type(oidc, rp_client):
    response = oidc.token_request(rp_client, {"grant_type": "password", "username": "x", "password": "y"})
    assert response.status_code == 400 and response.get_json()["error"] == "unsupported_grant_type"


# --- authorization codes ---------------------------------------------------------------------


def test_token_response_is_not_cached(oidc, patients, rp_client):
    response = oidc.exchange(rp_client, oidc.code(rp_client, patients.create()))
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_authorization_code_works_only_once(oidc, patients, rp_client):
    issued = oidc.code(rp_client, patients.create())
    assert oidc.exchange(rp_client, issued).status_code == 200
    again = oidc.exchange(rp_client, issued)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"


def test_authorization_code_reuse_revokes_the_tokens_it_gave(oidc, patients, rp_client, resource_server):
    issued = oidc.code(rp_client, patients.create(), scope="openid profile offline_access")
    tokens = oidc.exchange(rp_client, issued).get_json()
    refreshed = oidc.refresh(rp_client, tokens["refresh_token"]).get_json()
    oidc.exchange(rp_client, issued)
    assert oidc.userinfo(tokens["access_token"]).status_code == 401
    assert oidc.userinfo(refreshed["access_token"]).status_code == 401
    assert oidc.introspect(resource_server, refreshed["access_token"]).get_json() == {"active": False}
    assert oidc.refresh(rp_client, refreshed["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_expired_authorization_code_is_rejected(app, oidc, patients, rp_client):
    issued = oidc.code(rp_client, patients.create())
    clock.advance(timedelta(seconds=app.config["AUTHORIZATION_CODE_TTL"] + 1))
    response = oidc.exchange(rp_client, issued)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_authorization_code_of_another_client_is_rejected(oidc, patients, rp_client, app):
    other = register(name="Autre", redirect_uris=[DSP_CALLBACK], first_party=True)
    issued = oidc.code(rp_client, patients.create())
    assert oidc.exchange(other, issued).get_json()["error"] == "invalid_grant"
    assert "access_token" in oidc.exchange(rp_client, issued).get_json(), "another client's attempt did not use the code up"


def test_token_request_redirect_uri_must_match_the_authorization_request(app, oidc, patients):
    two = register(name="Deux", redirect_uris=[DSP_CALLBACK, "https://dsp.example.lu/other"], first_party=True)
    issued = oidc.code(two, patients.create())
    assert oidc.exchange(two, issued, redirect_uri="https://dsp.example.lu/other").get_json()["error"] == "invalid_grant"


def test_redirect_uri_is_needed_at_the_token_endpoint_only_if_the_request_had_one(oidc, patients, rp_client):
    """RFC 6749 §4.1.3: ``redirect_uri`` is REQUIRED at /token only "if the redirect_uri parameter
    was included in the authorization request"; an OAuth request (no ``openid``) of a client with
    one registered URI may leave it out (§3.1.2.3)."""
    verifier, challenge = pkce_pair()
    url = authorization_url(rp_client.client_id, None, challenge, scope="profile", nonce=None)
    answer = query_of(oidc.authorize(url, patients.create(), decision="allow").headers["Location"])
    assert answer["code"], answer
    response = oidc.token_request(rp_client, {"grant_type": "authorization_code", "code": answer["code"], "code_verifier": verifier})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["scope"] == "profile"


def test_code_flow_response_has_an_id_token_for_openid_only(oidc, patients, rp_client):
    patient = patients.create()
    assert "id_token" in oidc.tokens(rp_client, patient)
    assert "id_token" not in oidc.tokens(rp_client, patient, scope="profile")


def test_id_token_is_bound_to_the_client_and_the_access_token(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create())
    decoded = oidc.verify(tokens["id_token"])
    claims = decoded.claims
    assert claims["iss"] == "http://127.0.0.1:5000" and claims["aud"] == rp_client.client_id and claims["azp"] == rp_client.client_id
    assert claims["exp"] > claims["iat"] >= clock.timestamp() - 5
    digest = hashlib.sha256(tokens["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    assert decoded.header["kid"]


def test_client_may_ask_for_es256_id_tokens(app, oidc, patients):
    ec = register(name="EC", redirect_uris=[DSP_CALLBACK], first_party=True, extra_metadata={"id_token_signed_response_alg": "ES256"})
    tokens = oidc.tokens(ec, patients.create())
    assert oidc.verify(tokens["id_token"]).header["alg"] == "ES256"


# --- refresh tokens --------------------------------------------------------------------------


def test_no_refresh_token_without_offline_access(oidc, patients, rp_client):
    assert "refresh_token" not in oidc.tokens(rp_client, patients.create(), scope="openid profile")


def test_offline_access_gets_a_refresh_token(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid profile offline_access")
    refreshed = oidc.refresh(rp_client, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    body = refreshed.get_json()
    assert body["access_token"] != tokens["access_token"] and oidc.userinfo(body["access_token"]).status_code == 200


def test_refresh_rotates_the_refresh_token(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid offline_access")
    refreshed = oidc.refresh(rp_client, tokens["refresh_token"]).get_json()
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    assert oidc.refresh(rp_client, refreshed["refresh_token"]).status_code == 200


def test_rotated_refresh_token_no_longer_works(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid offline_access")
    oidc.refresh(rp_client, tokens["refresh_token"])
    again = oidc.refresh(rp_client, tokens["refresh_token"])
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"


def test_reuse_of_a_rotated_refresh_token_revokes_the_whole_family(oidc, patients, rp_client, resource_server):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid profile offline_access")
    newest = oidc.refresh(rp_client, tokens["refresh_token"]).get_json()
    assert oidc.userinfo(newest["access_token"]).status_code == 200

    oidc.refresh(rp_client, tokens["refresh_token"])  # the stolen, already rotated token comes back

    assert oidc.userinfo(newest["access_token"]).status_code == 401
    assert oidc.introspect(resource_server, newest["access_token"]).get_json() == {"active": False}
    assert oidc.introspect(resource_server, newest["refresh_token"]).get_json() == {"active": False}
    assert oidc.refresh(rp_client, newest["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_refresh_token_of_another_client_is_refused_and_stays_usable(app, oidc, patients, rp_client):
    other = register(name="Autre", redirect_uris=[DSP_CALLBACK], first_party=True)
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid offline_access")
    assert oidc.refresh(other, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert oidc.refresh(rp_client, tokens["refresh_token"]).status_code == 200


def test_refresh_cannot_widen_the_scope(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid offline_access")
    response = oidc.refresh(rp_client, tokens["refresh_token"], scope="openid offline_access email")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_scope"


def test_refresh_may_narrow_the_scope(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid email offline_access")
    body = oidc.refresh(rp_client, tokens["refresh_token"], scope="openid offline_access").get_json()
    assert body["scope"] == "openid offline_access"
    assert "email" not in oidc.userinfo(body["access_token"]).get_json()


def test_refreshed_id_token_keeps_the_subject_and_auth_time(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid offline_access")
    first = oidc.verify(tokens["id_token"]).claims
    clock.advance(timedelta(minutes=5))
    second = oidc.verify(oidc.refresh(rp_client, tokens["refresh_token"]).get_json()["id_token"]).claims
    assert second["sub"] == first["sub"] and second["auth_time"] == first["auth_time"] and second["aud"] == first["aud"]
    assert second["iat"] > first["iat"] and "nonce" not in second


@pytest.mark.settings(REFRESH_TOKEN_IDLE_TTL=3600, REFRESH_TOKEN_ABSOLUTE_TTL=4 * 3600)
def test_refresh_token_expires_when_left_unused(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid offline_access")
    clock.advance(timedelta(seconds=3601))
    assert oidc.refresh(rp_client, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"


@pytest.mark.settings(REFRESH_TOKEN_IDLE_TTL=3600, REFRESH_TOKEN_ABSOLUTE_TTL=4 * 3600)
def test_refresh_token_family_ends_at_its_absolute_lifetime(oidc, patients, rp_client):
    refresh_token = oidc.tokens(rp_client, patients.create(), scope="openid offline_access")["refresh_token"]
    for _ in range(3):
        clock.advance(timedelta(minutes=50))
        response = oidc.refresh(rp_client, refresh_token)
        assert response.status_code == 200, response.get_data(as_text=True)
        refresh_token = response.get_json()["refresh_token"]
    clock.advance(timedelta(minutes=50))
    refresh_token = oidc.refresh(rp_client, refresh_token).get_json()["refresh_token"]  # 3h20: still inside
    clock.advance(timedelta(minutes=41))  # 4h01 after the login
    assert oidc.refresh(rp_client, refresh_token).get_json()["error"] == "invalid_grant"


def test_refresh_for_a_disabled_account_is_refused(oidc, patients, rp_client):
    patient = patients.create()
    tokens = oidc.tokens(rp_client, patient, scope="openid offline_access")
    patient.account.status = "disabled"
    db.session.commit()
    response = oidc.refresh(rp_client, tokens["refresh_token"])
    assert response.status_code == 400 and "access_token" not in response.get_json()


def test_private_key_jwt_assertion_is_spent_even_when_the_request_fails(client, jwt_client, rsa_key):
    """RFC 7523 §3: a ``jti`` seen once is refused for the assertion's lifetime, whatever became of the request."""
    assertion = _assertion(rsa_key, jwt_client.client_id, jti="spent-on-a-bad-code")
    failed = client.post("/token", data={"grant_type": "authorization_code", "code": "no-such-code", "redirect_uri": DSP_CALLBACK,
                                         "code_verifier": "x" * 43, "client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": assertion})
    assert failed.get_json()["error"] == "invalid_grant"
    replayed = client.post("/token", data={"grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": assertion})
    assert replayed.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
def test_private_key_jwt_accepts_every_advertised_signing_algorithm(app, client, alg):
    advertised = client.get("/.well-known/openid-configuration").get_json()["token_endpoint_auth_signing_alg_values_supported"]
    assert alg in advertised
    key = ECKey.generate_key("P-256", private=True) if alg == "ES256" else RSAKey.generate_key(2048, private=True)
    registered = register(name="Signer", grant_types=["client_credentials"], auth_method="private_key_jwt",
                          jwks={"keys": [{**key.as_dict(private=False), "kid": key.thumbprint()}]})
    assertion = private_key_jwt_sign(key, registered.client_id, TOKEN_ENDPOINT, alg=alg, header={"kid": key.thumbprint()})
    response = client.post("/token", data={"grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": assertion})
    assert response.status_code == 200, response.get_data(as_text=True)


def test_private_key_jwt_refuses_an_hmac_assertion(app, client):
    """An assertion MACed with a shared secret is not ``private_key_jwt``, even when the client registered an ``oct`` key."""
    secret = OctKey.generate_key(256)
    registered = register(name="Shared secret", grant_types=["client_credentials"], auth_method="private_key_jwt",
                          jwks={"keys": [{**secret.as_dict(private=True), "kid": "shared"}]})
    assertion = private_key_jwt_sign(secret, registered.client_id, TOKEN_ENDPOINT, alg="HS256", header={"kid": "shared"})
    response = client.post("/token", data={"grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": assertion})
    assert response.get_json()["error"] == "invalid_client"
