"""Response headers that harden every page and protocol response (RFC 9700 §4.16, §4.2.4; RFC 6749 §5.1)."""

import pytest

from tests.conftest import authorization_url, pkce_pair


def csp_directives(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize("path", ["/login", "/activation", "/cgu", "/account", "/does-not-exist"])
def test_pages_forbid_inline_script_framing_referrer_and_caching(client, path):
    response = client.get(path)
    directives = csp_directives(response)
    assert directives["script-src"] == "script-src 'self'", "no 'unsafe-inline' or 'unsafe-eval'"
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_authorization_pages_and_errors_send_no_referrer(client, rp_client):
    _, challenge = pkce_pair()
    login_redirect = client.get(authorization_url(rp_client.client_id, rp_client.redirect_uris[0], challenge))
    assert login_redirect.status_code in (302, 303)
    error_page = client.get("/authorize?client_id=unknown&response_type=code")
    assert error_page.status_code == 400
    for response in (client.get(login_redirect.headers["Location"]), error_page):
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert csp_directives(response)["frame-ancestors"] == "frame-ancestors 'none'"


def test_token_and_userinfo_responses_are_never_cached(client, rp_client):
    token = client.post("/token", data={"grant_type": "authorization_code", "code": "nope"}, auth=(rp_client.client_id, rp_client.plain_secret))
    userinfo = client.get("/userinfo", headers={"Authorization": "Bearer nope"})
    for response in (token, userinfo):
        assert response.headers["Cache-Control"] == "no-store"


def test_no_hsts_on_a_loopback_http_issuer(client):
    assert "Strict-Transport-Security" not in client.get("/login").headers


@pytest.mark.settings(ISSUER="https://login.esante.lu")
def test_hsts_on_every_response_of_an_https_issuer(client):
    for response in (client.get("/login"), client.get("/.well-known/openid-configuration"), client.get("/jwks.json")):
        assert response.headers["Strict-Transport-Security"] == "max-age=63072000; includeSubDomains"


def test_redirects_after_post_are_303(client, patients):
    patient = patients.create()
    response = patients.submit_password(patient)
    assert response.status_code == 303
