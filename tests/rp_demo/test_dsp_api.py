"""The DSP API verifies the provider's JWT access tokens offline and keeps who read which record."""

import time

import requests
from joserfc import jwt

from idp import signing_key
from rp_demo.dsp_api import documents_for


def access_token(issuer: str, audience, *, typ: str = "at+jwt", expires_in: int = 300, **claims) -> str:
    """Signed with the provider's active key, as its token endpoint would."""
    kid, key = signing_key.active_key("RS256")
    now = int(time.time())
    payload = {"iss": issuer, "sub": "patient-sub", "aud": audience, "client_id": "dsp-viewer", "iat": now,
               "exp": now + expires_in, "jti": f"jti-{now}", "scope": "openid", **claims}
    return jwt.encode({"typ": typ, "alg": "RS256", "kid": kid}, payload, key)


def read(url: str, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(url + "/v1/record", headers=headers, timeout=10)


def test_a_token_for_the_api_opens_the_record_with_its_sample_documents(provider, dsp_api):
    response = read(dsp_api.url, access_token(provider.url, [provider.url, dsp_api.url]))
    assert response.status_code == 200
    body = response.json()
    assert body["subject"] == "patient-sub" and body["acting"] is None
    assert body["documents"] == documents_for("patient-sub")
    assert len(body["documents"]) == 5
    assert [d["date"] for d in body["documents"]] == sorted((d["date"] for d in body["documents"]), reverse=True)


def test_records_differ_between_patients():
    assert documents_for("one-patient") != documents_for("another-patient")


def test_a_token_for_another_audience_is_refused(provider, dsp_api):
    response = read(dsp_api.url, access_token(provider.url, [provider.url, "https://other-api.example.lu"]))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert "aud" in response.json()["error_description"]


def test_an_expired_token_is_refused(provider, dsp_api):
    response = read(dsp_api.url, access_token(provider.url, dsp_api.url, expires_in=-120))
    assert response.status_code == 401 and "exp" in response.json()["error_description"]


def test_a_token_from_another_issuer_is_refused(provider, dsp_api):
    response = read(dsp_api.url, access_token("https://other-idp.example.lu", dsp_api.url))
    assert response.status_code == 401 and "iss" in response.json()["error_description"]


def test_an_id_token_is_not_an_access_token(provider, dsp_api):
    """RFC 9068 §4: the ``typ`` header keeps an ID token (``JWT``) from passing as an access token."""
    response = read(dsp_api.url, access_token(provider.url, dsp_api.url, typ="JWT"))
    assert response.status_code == 401 and "typ" in response.json()["error_description"]


def test_a_token_signed_with_another_key_is_refused(provider, dsp_api):
    from joserfc.jwk import RSAKey

    kid, _ = signing_key.active_key("RS256")
    now = int(time.time())
    forged = jwt.encode({"typ": "at+jwt", "alg": "RS256", "kid": kid},
                        {"iss": provider.url, "sub": "patient-sub", "aud": dsp_api.url, "exp": now + 300}, RSAKey.generate_key(2048))
    response = read(dsp_api.url, forged)
    assert response.status_code == 401 and "signature" in response.json()["error_description"]


def test_no_token_gets_a_challenge_without_error_code(dsp_api):
    """RFC 6750 §3.1: a request without credentials gets no error code."""
    response = read(dsp_api.url, None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="dsp-api"'


def test_the_trail_tells_an_assistant_from_the_owner(provider, dsp_api):
    audience = [provider.url, dsp_api.url]
    read(dsp_api.url, access_token(provider.url, audience))
    read(dsp_api.url, access_token(provider.url, audience, act={"sub": "parent-sub"}))
    trail = requests.get(dsp_api.url + "/v1/record/accesses", timeout=10,
                         headers={"Authorization": f"Bearer {access_token(provider.url, audience)}"}).json()["accesses"]
    assert [(entry["subject"], entry["actor"]) for entry in trail] == [("patient-sub", "parent-sub"), ("patient-sub", None)]
    other = requests.get(dsp_api.url + "/v1/record/accesses", timeout=10,
                         headers={"Authorization": f"Bearer {access_token(provider.url, audience, sub='someone-else')}"})
    assert other.json()["accesses"] == []


def test_without_the_providers_keys_the_api_answers_503_not_500():
    from rp_demo.dsp_api import create_app

    api = create_app({"ISSUER": "http://127.0.0.1:9", "AUDIENCE": "http://127.0.0.1:5002"})  # nothing listens on port 9
    response = api.test_client().get("/v1/record", headers={"Authorization": "Bearer a.b.c"})
    assert response.status_code == 503 and response.json["error"] == "temporarily_unavailable"


def test_garbage_is_an_invalid_token(provider, dsp_api):
    for garbage in ("not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.e30."):
        response = read(dsp_api.url, garbage)
        assert response.status_code == 401 and response.json()["error"] == "invalid_token", garbage
