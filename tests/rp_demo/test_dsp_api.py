"""The DSP API verifies the provider's JWT access tokens offline and keeps who read which record;
a token bound to a key (``cnf.jkt``) opens it only with a DPoP proof by that key (RFC 9449 §7.1)."""

import json
import secrets
import time

import pytest
import requests
from joserfc import jwk, jws, jwt

from idp import signing_key
from rp_demo.dsp_api import documents_for
from rp_demo.protocol import access_token_hash


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
    """RFC 6750 §3.1: a request without credentials gets no error code; both schemes are offered
    (RFC 9449 §7.1), DPoP with the proof algorithms."""
    response = read(dsp_api.url, None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="dsp-api", DPoP realm="dsp-api", algs="ES256 RS256 PS256"'


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


# --- DPoP-bound tokens (RFC 9449) ------------------------------------------------------------


class Device:
    """A client's DPoP key and the proofs it signs (§4.2), any claim overridable."""

    def __init__(self, key=None, alg: str = "ES256"):
        self.key, self.alg = key or jwk.ECKey.generate_key("P-256", private=True), alg

    def proof(self, url: str, token: str | None, *, method: str = "GET", header: dict | None = None, **claims) -> str:
        body = {"jti": secrets.token_urlsafe(12), "htm": method, "htu": url, "iat": int(time.time()),
                **({"ath": access_token_hash(token)} if token else {}), **claims}
        body = {name: value for name, value in body.items() if value is not None}
        head = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.key.as_dict(private=False), **(header or {})}
        return jws.serialize_compact(head, json.dumps(body).encode(), self.key, algorithms=[self.alg])


def bound_token(provider, dsp_api, device: Device, **claims) -> str:
    return access_token(provider.url, [provider.url, dsp_api.url], client_id="mydsp", cnf={"jkt": device.key.thumbprint()}, **claims)


def present(url: str, token: str, proof: str | None, scheme: str = "DPoP") -> requests.Response:
    headers = {"Authorization": f"{scheme} {token}", **({"DPoP": proof} if proof else {})}
    return requests.get(url, headers=headers, timeout=10)


def test_a_bound_token_opens_the_record_with_a_proof_by_its_key(provider, dsp_api):
    device = Device()
    token = bound_token(provider, dsp_api, device)
    url = dsp_api.url + "/v1/record"
    response = present(url, token, device.proof(url, token))
    assert response.status_code == 200 and response.json()["subject"] == "patient-sub"
    trail = present(url + "/accesses", token, device.proof(url + "/accesses", token))
    assert trail.status_code == 200 and len(trail.json()["accesses"]) == 1


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_a_proof_by_a_2048_bit_rsa_key_is_accepted(provider, dsp_api, alg):
    """RFC 9449 §4.2: any asymmetric algorithm the API lists; a 2048-bit RSA ``jwk`` makes a longer
    header than joserfc's default bound."""
    device = Device(jwk.RSAKey.generate_key(2048, private=True), alg)
    token = bound_token(provider, dsp_api, device)
    url = dsp_api.url + "/v1/record"
    assert present(url, token, device.proof(url, token)).status_code == 200


def test_a_bound_token_presented_as_bearer_is_refused(provider, dsp_api):
    token = bound_token(provider, dsp_api, Device())
    response = read(dsp_api.url, token)
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('DPoP realm="dsp-api"') and 'error="invalid_token"' in challenge


def test_a_stolen_bound_token_with_a_proof_by_another_key_is_refused(provider, dsp_api):
    token = bound_token(provider, dsp_api, Device())
    url = dsp_api.url + "/v1/record"
    response = present(url, token, Device().proof(url, token))
    assert response.status_code == 401 and response.json()["error"] == "invalid_dpop_proof"
    assert 'error="invalid_dpop_proof"' in response.headers["WWW-Authenticate"]
    assert present(url, token, None).json()["error"] == "invalid_dpop_proof", "no proof at all"


def test_a_proof_is_accepted_only_once(provider, dsp_api):
    device = Device()
    token = bound_token(provider, dsp_api, device)
    url = dsp_api.url + "/v1/record"
    proof = device.proof(url, token)
    assert present(url, token, proof).status_code == 200
    replayed = present(url, token, proof)
    assert replayed.status_code == 401 and "already used" in replayed.json()["error_description"]


@pytest.mark.parametrize("change, message", [
    ({"method": "POST"}, "htm"),
    ({"htu": "http://127.0.0.1:1/v1/record"}, "htu"),
    ({"ath": access_token_hash("another-token")}, "ath"),
    ({"ath": None}, "ath"),
    ({"iat": int(time.time()) - 3600}, "iat"),
    ({"iat": int(time.time()) + 3600}, "iat"),
    ({"header": {"typ": "JWT"}}, "typ"),
    ({"jti": None}, "jti"),
])
def test_a_proof_that_does_not_fit_the_request_is_refused(provider, dsp_api, change, message):
    """§4.3: signature, typ, htm, htu, iat window, ath."""
    device = Device()
    token = bound_token(provider, dsp_api, device)
    url = dsp_api.url + "/v1/record"
    proof = device.proof(change.pop("htu", url), token, **change)
    response = present(url, token, proof)
    assert response.status_code == 401 and response.json()["error"] == "invalid_dpop_proof"
    assert message in response.json()["error_description"]


def test_a_proof_carrying_a_private_key_is_refused(provider, dsp_api):
    device = Device()
    token = bound_token(provider, dsp_api, device)
    url = dsp_api.url + "/v1/record"
    response = present(url, token, device.proof(url, token, header={"jwk": device.key.as_dict(private=True)}))
    assert response.status_code == 401 and response.json()["error"] == "invalid_dpop_proof"


def test_an_unbound_token_under_the_dpop_scheme_is_refused_but_works_as_bearer(provider, dsp_api):
    device = Device()
    token = access_token(provider.url, [provider.url, dsp_api.url])
    url = dsp_api.url + "/v1/record"
    response = present(url, token, device.proof(url, token))
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("DPoP ")
    assert read(dsp_api.url, token).status_code == 200


def test_an_invalid_token_under_the_dpop_scheme_gets_a_dpop_challenge(provider, dsp_api):
    device = Device()
    token = bound_token(provider, dsp_api, device, expires_in=-120)
    url = dsp_api.url + "/v1/record"
    response = present(url, token, device.proof(url, token))
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith('DPoP realm="dsp-api", error="invalid_token"')


@pytest.mark.parametrize("dsp_api_config", [{"DPOP_NONCE_REQUIRED": True}])
def test_with_nonces_the_api_asks_for_its_own_and_takes_it(provider, dsp_api):
    """§9: a proof without the API's nonce gets 401 ``use_dpop_nonce`` and a ``DPoP-Nonce``."""
    device = Device()
    token = bound_token(provider, dsp_api, device)
    url = dsp_api.url + "/v1/record"
    first = present(url, token, device.proof(url, token))
    assert first.status_code == 401 and first.json()["error"] == "use_dpop_nonce"
    assert 'error="use_dpop_nonce"' in first.headers["WWW-Authenticate"]
    nonce = first.headers["DPoP-Nonce"]
    assert present(url, token, device.proof(url, token, nonce="made-up")).json()["error"] == "use_dpop_nonce"
    second = present(url, token, device.proof(url, token, nonce=nonce))
    assert second.status_code == 200 and second.headers["DPoP-Nonce"]
    assert read(dsp_api.url, access_token(provider.url, [provider.url, dsp_api.url])).status_code == 200, \
        "bearer tokens need no nonce"


def test_every_sample_document_is_plausible_at_any_age():
    """Issue 14, item 16: a record picks its documents whatever the patient's age, so none may be
    a child's only (a 42-year-old parent had a paediatric MMR vaccination certificate)."""
    from rp_demo.dsp_api import DOCUMENTS

    childhood_only = [document for document in DOCUMENTS
                      if "pédiatr" in document["author"].lower() or "rougeole" in document["title"].lower()]
    assert not childhood_only, childhood_only
