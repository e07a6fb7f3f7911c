"""Pushed authorization requests (RFC 9126)."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest

from idp import clock
from tests.conftest import pkce_pair, query_of
from tests.oauth.conftest import DSP_CALLBACK, IssuedCode, hidden_fields, is_consent_page, register

URN_PREFIX = "urn:ietf:params:oauth:request_uri:"


def push(client, rp, **overrides):
    """Push an authorization request for ``rp``; returns (response, PKCE verifier)."""
    verifier, challenge = pkce_pair()
    body = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uris[0], "scope": "openid profile",
            "state": "st-1", "nonce": "n-" + verifier[:12], "code_challenge": challenge, "code_challenge_method": "S256", **overrides}
    body = {key: value for key, value in body.items() if value is not None}
    return client.post("/par", data=body, auth=(rp.client_id, rp.plain_secret)), verifier


def authorize_url(rp, request_uri: str, **extra) -> str:
    return "/authorize?" + urlencode({"client_id": rp.client_id, "request_uri": request_uri, **extra})


def error_page_says(response, error: str) -> bool:
    return response.status_code == 400 and "Location" not in response.headers and error in response.get_data(as_text=True)


def test_a_pushed_request_runs_the_whole_code_flow(oidc, patients, rp_client):
    pushed, verifier = push(oidc.client, rp_client)
    assert pushed.status_code == 201 and pushed.headers["Cache-Control"] == "no-store"
    answer = pushed.get_json()
    assert answer["request_uri"].startswith(URN_PREFIX) and answer["expires_in"] == 90

    response = oidc.authorize(authorize_url(rp_client, answer["request_uri"]), patients.create())
    redirect = query_of(response.headers["Location"])
    assert redirect["state"] == "st-1" and redirect["iss"] == "http://127.0.0.1:5000"
    tokens = oidc.exchange(rp_client, IssuedCode(redirect["code"], verifier, DSP_CALLBACK, redirect))
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    assert tokens.get_json()["scope"] == "openid profile"


def test_only_the_pushed_parameters_count(oidc, patients, rp_client):
    pushed, verifier = push(oidc.client, rp_client)
    url = authorize_url(rp_client, pushed.get_json()["request_uri"], scope="openid matricule", state="forged", redirect_uri="https://evil.example.com/cb")
    redirect = query_of(oidc.authorize(url, patients.create()).headers["Location"])
    assert redirect["state"] == "st-1"
    tokens = oidc.exchange(rp_client, IssuedCode(redirect["code"], verifier, DSP_CALLBACK, redirect)).get_json()
    assert tokens["scope"] == "openid profile"


def test_a_request_uri_is_spent_by_the_code_it_produced(oidc, patients, rp_client):
    pushed, _ = push(oidc.client, rp_client)
    url = authorize_url(rp_client, pushed.get_json()["request_uri"])
    assert "code" in query_of(oidc.authorize(url, patients.create()).headers["Location"])
    assert error_page_says(oidc.client.get(url), "invalid_request_uri")


def test_an_expired_request_uri_is_refused(oidc, rp_client):
    pushed, _ = push(oidc.client, rp_client)
    clock.advance(timedelta(seconds=91))
    assert error_page_says(oidc.client.get(authorize_url(rp_client, pushed.get_json()["request_uri"])), "invalid_request_uri")


def test_the_request_uri_belongs_to_its_client_and_first_browser(app, oidc, rp_client, third_party_client):
    pushed, _ = push(oidc.client, rp_client)
    reference = pushed.get_json()["request_uri"]
    assert error_page_says(oidc.client.get(authorize_url(third_party_client, reference)), "invalid_request_uri")
    first = oidc.client.get(authorize_url(rp_client, reference))
    assert first.status_code == 303, "the first browser goes on to the login page"
    assert error_page_says(app.test_client().get(authorize_url(rp_client, reference)), "invalid_request_uri")


def test_login_and_consent_carry_only_the_reference(oidc, patients, third_party_client):
    pushed, verifier = push(oidc.client, third_party_client)
    reference = pushed.get_json()["request_uri"]
    page = oidc.authorize(authorize_url(third_party_client, reference), patients.create())
    assert is_consent_page(page)
    fields = hidden_fields(page.get_data(as_text=True))
    assert {name for name in fields if name != "csrf_token"} == {"client_id", "request_uri"}
    redirect = query_of(oidc.decide(page, "allow").headers["Location"])
    assert redirect["state"] == "st-1" and "code" in redirect


@pytest.mark.parametrize("overrides, error", [
    ({"redirect_uri": "https://evil.example.com/cb"}, "invalid_request"),
    ({"code_challenge": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"request_uri": URN_PREFIX + "nested"}, "invalid_request"),
    ({"client_id": "someone-else"}, "invalid_request"),
    ({"scope": "payments"}, "invalid_scope"),
    ({"prompt": "none login"}, "invalid_request"),
])
def test_invalid_pushed_requests_get_json_errors(client, rp_client, overrides, error):
    response, _ = push(client, rp_client, **overrides)
    assert response.status_code == 400 and response.get_json()["error"] == error
    assert response.headers["Cache-Control"] == "no-store"


def test_pushing_needs_client_authentication(client, rp_client):
    response = client.post("/par", data={"client_id": rp_client.client_id, "response_type": "code"}, auth=(rp_client.client_id, "wrong"))
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


def test_a_client_that_must_push_cannot_use_a_plain_request(oidc, patients):
    strict = register(name="Strict RP", redirect_uris=[DSP_CALLBACK], first_party=True,
                      extra_metadata={"require_pushed_authorization_requests": True})
    verifier, challenge = pkce_pair()
    plain = oidc.client.get("/authorize?" + urlencode({"response_type": "code", "client_id": strict.client_id, "redirect_uri": DSP_CALLBACK,
                                                       "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256"}))
    assert query_of(plain.headers["Location"])["error"] == "invalid_request"
    pushed, _ = push(oidc.client, strict)
    assert "code" in query_of(oidc.authorize(authorize_url(strict, pushed.get_json()["request_uri"]), patients.create()).headers["Location"])


@pytest.mark.settings(FEATURES={"par": {"required_for_all_clients": True}})
def test_discovery_announces_par(client):
    document = client.get("/.well-known/openid-configuration").get_json()
    assert document["pushed_authorization_request_endpoint"] == "http://127.0.0.1:5000/par"
    assert document["require_pushed_authorization_requests"] is True


def test_prompt_create_in_a_pushed_request_goes_to_the_activation_once(oidc, rp_client):
    pushed, _ = push(oidc.client, rp_client, prompt="create")
    url = authorize_url(rp_client, pushed.get_json()["request_uri"])
    first = oidc.client.get(url)
    assert first.headers["Location"].split("?")[0].endswith("/activation")
    with oidc.client.session_transaction() as flow:
        assert flow["activation_return_to"] == url
    again = oidc.client.get(url)
    assert again.headers["Location"].split("?")[0].endswith("/login"), "back from the activation: no loop"
