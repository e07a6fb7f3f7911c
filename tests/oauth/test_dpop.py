"""DPoP-bound tokens (RFC 9449) at the token, userinfo and introspection endpoints."""

import pytest

from idp import dpop
from tests.oauth.conftest import NATIVE_CALLBACK, register
from tests.test_dpop_proofs import Holder

ISSUER = "http://127.0.0.1:5000"


@pytest.fixture
def native_app(app):
    """MyDSP: a public client, refresh tokens, no secret."""
    return register(name="MyDSP", redirect_uris=[NATIVE_CALLBACK], auth_method="none", first_party=True,
                    scope="openid profile offline_access")


@pytest.fixture
def holder(app):
    return Holder()


def token_request(oidc, rp, data: dict, proof: str | None):
    headers = {"DPoP": proof} if proof else {}
    if rp.is_public:
        return oidc.client.post("/token", data={"client_id": rp.client_id, **data}, headers=headers)
    return oidc.client.post("/token", data=data, headers=headers, auth=(rp.client_id, rp.plain_secret))


def bound_tokens(oidc, patients, rp, holder) -> dict:
    issued = oidc.code(rp, patients.create(), scope="openid profile offline_access")
    data = {"grant_type": "authorization_code", "code": issued.code, "redirect_uri": issued.redirect_uri, "code_verifier": issued.verifier}
    response = token_request(oidc, rp, data, holder.proof(url=ISSUER + "/token"))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def userinfo(oidc, token: str, scheme: str, proof: str | None):
    headers = {"Authorization": f"{scheme} {token}", **({"DPoP": proof} if proof else {})}
    return oidc.client.get("/userinfo", headers=headers)


def test_a_proof_at_the_token_endpoint_binds_the_access_token(oidc, patients, native_app, holder):
    tokens = bound_tokens(oidc, patients, native_app, holder)
    assert tokens["token_type"] == "DPoP"
    assert oidc.verify(tokens["access_token"]).claims["cnf"] == {"jkt": holder.key.thumbprint()}


def test_userinfo_needs_the_dpop_scheme_and_a_proof_by_the_bound_key(oidc, patients, native_app, holder):
    token = bound_tokens(oidc, patients, native_app, holder)["access_token"]
    url = ISSUER + "/userinfo"
    good = userinfo(oidc, token, "DPoP", holder.proof("GET", url, ath=dpop.access_token_hash(token)))
    assert good.status_code == 200 and good.get_json()["sub"]

    as_bearer = userinfo(oidc, token, "Bearer", None)
    assert as_bearer.status_code == 401 and as_bearer.headers["WWW-Authenticate"].startswith("DPoP ")
    assert 'error="invalid_dpop_proof"' in as_bearer.headers["WWW-Authenticate"]

    thief = Holder()
    stolen = userinfo(oidc, token, "DPoP", thief.proof("GET", url, ath=dpop.access_token_hash(token)))
    assert stolen.status_code == 401, "a proof by another key does not unlock the token"
    assert userinfo(oidc, token, "DPoP", None).status_code == 401, "no proof"


def test_a_bearer_token_is_not_accepted_under_the_dpop_scheme(oidc, patients, rp_client, holder):
    token = oidc.tokens(rp_client, patients.create())["access_token"]
    response = userinfo(oidc, token, "DPoP", holder.proof("GET", ISSUER + "/userinfo", ath=dpop.access_token_hash(token)))
    assert response.status_code == 401
    assert userinfo(oidc, token, "Bearer", None).status_code == 200


def test_a_public_clients_refresh_token_works_only_with_its_key(oidc, patients, native_app, holder):
    tokens = bound_tokens(oidc, patients, native_app, holder)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert token_request(oidc, native_app, refresh, Holder().proof(url=ISSUER + "/token")).get_json()["error"] == "invalid_grant"
    assert token_request(oidc, native_app, refresh, None).get_json()["error"] == "invalid_grant"
    renewed = token_request(oidc, native_app, refresh, holder.proof(url=ISSUER + "/token"))
    assert renewed.status_code == 200, "a failed attempt with another key does not burn the token"
    assert renewed.get_json()["token_type"] == "DPoP"


def test_a_bad_proof_at_the_token_endpoint_is_refused_before_the_grant(oidc, patients, native_app, holder):
    issued = oidc.code(native_app, patients.create())
    data = {"grant_type": "authorization_code", "code": issued.code, "redirect_uri": issued.redirect_uri, "code_verifier": issued.verifier}
    refused = token_request(oidc, native_app, data, holder.proof(url=ISSUER + "/userinfo"))
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_dpop_proof"
    assert refused.headers["Cache-Control"] == "no-store"
    assert token_request(oidc, native_app, data, holder.proof(url=ISSUER + "/token")).status_code == 200, "the code was not spent"


def test_a_client_registered_for_dpop_gets_no_bearer_token(oidc, patients, holder):
    strict = register(name="MyDSP strict", redirect_uris=[NATIVE_CALLBACK], auth_method="none", first_party=True,
                      scope="openid profile", extra_metadata={"dpop_bound_access_tokens": True})
    issued = oidc.code(strict, patients.create())
    data = {"grant_type": "authorization_code", "code": issued.code, "redirect_uri": issued.redirect_uri, "code_verifier": issued.verifier}
    assert token_request(oidc, strict, data, None).get_json()["error"] == "invalid_dpop_proof"


@pytest.mark.settings(DPOP_NONCE_REQUIRED=True)
def test_the_server_nonce_dance(oidc, patients, native_app, holder):
    issued = oidc.code(native_app, patients.create())
    data = {"grant_type": "authorization_code", "code": issued.code, "redirect_uri": issued.redirect_uri, "code_verifier": issued.verifier}
    first = token_request(oidc, native_app, data, holder.proof(url=ISSUER + "/token"))
    assert first.status_code == 400 and first.get_json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    second = token_request(oidc, native_app, data, holder.proof(url=ISSUER + "/token", nonce=nonce))
    assert second.status_code == 200 and second.headers["DPoP-Nonce"]


def test_introspection_reports_the_binding(oidc, patients, native_app, rp_client, holder):
    token = bound_tokens(oidc, patients, native_app, holder)["access_token"]
    answer = oidc.introspect(rp_client, token).get_json()
    assert answer["active"] is True and answer["token_type"] == "DPoP" and answer["cnf"] == {"jkt": holder.key.thumbprint()}


def test_discovery_lists_the_dpop_algorithms(client):
    assert client.get("/.well-known/openid-configuration").get_json()["dpop_signing_alg_values_supported"] == ["ES256", "RS256", "PS256"]
