"""PKCE (RFC 7636): S256 only, required for every client by default, no downgrade (RFC 9700 §2.1.1, §4.8)."""

import pytest

from tests.conftest import authorization_url, pkce_pair, query_of
from tests.oauth.conftest import DSP_CALLBACK, NATIVE_CALLBACK, IssuedCode


def _error_of(response) -> dict:
    assert response.status_code == 303, response.get_data(as_text=True)
    return query_of(response.headers["Location"])


def test_plain_code_challenge_method_is_rejected(oidc, patients, rp_client):
    patient = patients.create()
    verifier, _ = pkce_pair()
    url = authorization_url(rp_client.client_id, DSP_CALLBACK, verifier, code_challenge_method="plain")
    answer = _error_of(oidc.authorize(url, patient))
    assert answer["error"] == "invalid_request" and "code" not in answer


def test_code_challenge_without_method_is_rejected(oidc, patients, rp_client):
    """RFC 7636 would default to ``plain``; we accept S256 only, so the method must be named."""
    _, challenge = pkce_pair()
    url = authorization_url(rp_client.client_id, DSP_CALLBACK, challenge, code_challenge_method=None)
    answer = _error_of(oidc.authorize(url, patients.create()))
    assert answer["error"] == "invalid_request"


def test_public_client_must_send_a_code_challenge(oidc, patients, public_client):
    url = authorization_url(public_client.client_id, NATIVE_CALLBACK, None, code_challenge_method=None)
    answer = _error_of(oidc.authorize(url, patients.create()))
    assert answer["error"] == "invalid_request"


@pytest.mark.settings(PKCE_REQUIRED_FOR_ALL_CLIENTS=False)
def test_public_client_needs_pkce_even_when_confidential_clients_may_skip_it(oidc, patients, public_client):
    url = authorization_url(public_client.client_id, NATIVE_CALLBACK, None, code_challenge_method=None)
    assert _error_of(oidc.authorize(url, patients.create()))["error"] == "invalid_request"


def test_confidential_client_must_send_a_code_challenge_by_default(oidc, patients, rp_client):
    url = authorization_url(rp_client.client_id, DSP_CALLBACK, None, code_challenge_method=None)
    answer = _error_of(oidc.authorize(url, patients.create()))
    assert answer["error"] == "invalid_request" and "code_challenge" in answer["error_description"]


@pytest.mark.settings(PKCE_REQUIRED_FOR_ALL_CLIENTS=False)
def test_confidential_client_may_skip_pkce_when_configured(oidc, patients, rp_client):
    url = authorization_url(rp_client.client_id, DSP_CALLBACK, None, code_challenge_method=None)
    answer = _error_of(oidc.authorize(url, patients.create()))
    response = oidc.token_request(rp_client, {"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": DSP_CALLBACK})
    assert response.status_code == 200, response.get_data(as_text=True)


def test_token_request_without_verifier_for_a_code_issued_with_a_challenge_fails(oidc, patients, rp_client):
    issued = oidc.code(rp_client, patients.create())
    response = oidc.token_request(rp_client, {"grant_type": "authorization_code", "code": issued.code, "redirect_uri": DSP_CALLBACK})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


@pytest.mark.settings(PKCE_REQUIRED_FOR_ALL_CLIENTS=False)
def test_verifier_for_a_code_issued_without_a_challenge_fails(oidc, patients, rp_client):
    """RFC 9700 §4.8.2: a verifier with no challenge on record is a downgrade attempt."""
    url = authorization_url(rp_client.client_id, DSP_CALLBACK, None, code_challenge_method=None)
    answer = _error_of(oidc.authorize(url, patients.create()))
    verifier, _ = pkce_pair()
    response = oidc.exchange(rp_client, IssuedCode(answer["code"], verifier, DSP_CALLBACK, answer))
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_wrong_verifier_is_invalid_grant(oidc, patients, rp_client):
    issued = oidc.code(rp_client, patients.create())
    issued.verifier, _ = pkce_pair()
    response = oidc.exchange(rp_client, issued)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_right_verifier_gets_tokens(oidc, patients, public_client):
    issued = oidc.code(public_client, patients.create())
    response = oidc.exchange(public_client, issued)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["token_type"] == "Bearer"


def test_public_client_without_verifier_gets_nothing(oidc, patients, public_client):
    issued = oidc.code(public_client, patients.create())
    response = oidc.token_request(public_client, {"grant_type": "authorization_code", "code": issued.code, "redirect_uri": NATIVE_CALLBACK})
    assert response.status_code == 400
    assert "access_token" not in response.get_json()
