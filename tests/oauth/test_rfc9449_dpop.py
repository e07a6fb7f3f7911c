"""DPoP-bound tokens (RFC 9449) at the token, userinfo and introspection endpoints."""

from urllib.parse import urlencode

import pytest

from idp import client as clients
from idp.oauth import rfc9449_dpop as dpop
from tests.conftest import pkce_pair, query_of
from tests.oauth.conftest import DSP_CALLBACK, NATIVE_CALLBACK, RESOURCE_AUDIENCE, IssuedCode, register
from tests.oauth.test_rfc9449_dpop_proofs import Holder

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


@pytest.mark.settings(FEATURES={"dpop": {"nonce_required": True}})
def test_the_server_nonce_dance(oidc, patients, native_app, holder):
    issued = oidc.code(native_app, patients.create())
    data = {"grant_type": "authorization_code", "code": issued.code, "redirect_uri": issued.redirect_uri, "code_verifier": issued.verifier}
    first = token_request(oidc, native_app, data, holder.proof(url=ISSUER + "/token"))
    assert first.status_code == 400 and first.get_json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    second = token_request(oidc, native_app, data, holder.proof(url=ISSUER + "/token", nonce=nonce))
    assert second.status_code == 200 and second.headers["DPoP-Nonce"]


def test_introspection_reports_the_binding(oidc, patients, native_app, holder):
    clients.update(native_app, extra_metadata={**native_app.extra_metadata, "access_token_audiences": [RESOURCE_AUDIENCE]})
    api = register(name="DSP API", grant_types=["client_credentials"], scope="openid", resource_audience=RESOURCE_AUDIENCE)
    token = bound_tokens(oidc, patients, native_app, holder)["access_token"]
    answer = oidc.introspect(api, token).get_json()
    assert answer["active"] is True and answer["token_type"] == "DPoP" and answer["cnf"] == {"jkt": holder.key.thumbprint()}


def test_discovery_lists_the_dpop_algorithms(client):
    assert client.get("/.well-known/openid-configuration").get_json()["dpop_signing_alg_values_supported"] == ["ES256", "RS256", "PS256"]


# --- authorization code binding (RFC 9449 §10, §10.1) ------------------------------------------


def code_request(issued) -> dict:
    return {"grant_type": "authorization_code", "code": issued.code, "redirect_uri": issued.redirect_uri, "code_verifier": issued.verifier}


def test_dpop_jkt_binds_the_code_to_that_key(oidc, patients, native_app, holder):
    """§10: the token request's proof must be by the key ``dpop_jkt`` named, or it is refused."""
    patient = patients.create()
    thief = Holder()
    stolen = oidc.code(native_app, patient, dpop_jkt=holder.key.thumbprint())
    refused = token_request(oidc, native_app, code_request(stolen), thief.proof(url=ISSUER + "/token"))
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"

    unproven = oidc.code(native_app, patient, dpop_jkt=holder.key.thumbprint())
    refused = token_request(oidc, native_app, code_request(unproven), None)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"

    issued = oidc.code(native_app, patient, dpop_jkt=holder.key.thumbprint())
    granted = token_request(oidc, native_app, code_request(issued), holder.proof(url=ISSUER + "/token"))
    assert granted.status_code == 200, granted.get_data(as_text=True)
    assert oidc.verify(granted.get_json()["access_token"]).claims["cnf"] == {"jkt": holder.key.thumbprint()}


def test_a_malformed_dpop_jkt_is_refused_at_the_authorization_endpoint(oidc, patients, native_app):
    from tests.oauth.conftest import authorization_request

    request = authorization_request(native_app, dpop_jkt="not a thumbprint")
    answer = query_of(oidc.authorize(request.url, patients.create()).headers["Location"])
    assert answer["error"] == "invalid_request"


@pytest.fixture
def pushing_client(app):
    return register(name="DSP viewer", redirect_uris=[DSP_CALLBACK], first_party=True, scope="openid profile")


def push_with(oidc, rp, proof: str | None, **extra):
    verifier, challenge = pkce_pair()
    body = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": DSP_CALLBACK, "scope": "openid profile",
            "state": "st-1", "nonce": "n-" + verifier[:12], "code_challenge": challenge, "code_challenge_method": "S256", **extra}
    response = oidc.client.post("/par", data=body, auth=(rp.client_id, rp.plain_secret), headers={"DPoP": proof} if proof else {})
    return response, verifier


def pushed_code(oidc, patient, rp, proof: str | None, **extra) -> IssuedCode:
    pushed, verifier = push_with(oidc, rp, proof, **extra)
    assert pushed.status_code == 201, pushed.get_data(as_text=True)
    url = "/authorize?" + urlencode({"client_id": rp.client_id, "request_uri": pushed.get_json()["request_uri"]})
    answer = query_of(oidc.authorize(url, patient).headers["Location"])
    return IssuedCode(answer["code"], verifier, DSP_CALLBACK, answer)


def test_a_proof_sent_with_the_pushed_request_binds_the_code(oidc, patients, pushing_client, holder):
    """§10.1: a DPoP proof at the PAR endpoint binds the code to its key, as ``dpop_jkt`` would."""
    patient = patients.create()
    unproven = pushed_code(oidc, patient, pushing_client, holder.proof(url=ISSUER + "/par"))
    refused = token_request(oidc, pushing_client, code_request(unproven), None)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"

    other_key = pushed_code(oidc, patient, pushing_client, holder.proof(url=ISSUER + "/par"))
    refused = token_request(oidc, pushing_client, code_request(other_key), Holder().proof(url=ISSUER + "/token"))
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"

    issued = pushed_code(oidc, patient, pushing_client, holder.proof(url=ISSUER + "/par"))
    granted = token_request(oidc, pushing_client, code_request(issued), holder.proof(url=ISSUER + "/token"))
    assert granted.status_code == 200 and granted.get_json()["token_type"] == "DPoP"


def test_dpop_jkt_and_the_pushed_proof_must_name_the_same_key(oidc, pushing_client, holder):
    """§10.1: with both mechanisms, a thumbprint that does not match the proof's key is refused."""
    response, _ = push_with(oidc, pushing_client, holder.proof(url=ISSUER + "/par"), dpop_jkt=Holder().key.thumbprint())
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"
    same, _ = push_with(oidc, pushing_client, holder.proof(url=ISSUER + "/par"), dpop_jkt=holder.key.thumbprint())
    assert same.status_code == 201


def test_a_bad_proof_with_the_pushed_request_is_refused(oidc, pushing_client, holder):
    response, _ = push_with(oidc, pushing_client, holder.proof(url=ISSUER + "/token"))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_dpop_proof"
