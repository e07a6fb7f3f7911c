"""Redirect URIs: exact matching (RFC 9700 §2.1), https except on loopback, and the RFC 8252 §7.3
port exception for native apps. Before the redirect URI is known good, errors are a page, never a
redirect (RFC 6749 §4.1.2.1)."""

import pytest

from idp import client as clients
from idp.extensions import db
from tests.conftest import authorization_url, pkce_pair, query_of
from tests.oauth.conftest import DSP_CALLBACK, register


def _authorize(client, client_id: str, redirect_uri: str, **extra):
    _, challenge = pkce_pair()
    return client.get(authorization_url(client_id, redirect_uri, challenge, **extra))


def _is_error_page(response) -> bool:
    return response.status_code == 400 and "Location" not in response.headers and response.mimetype == "text/html"


def test_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(client, rp_client):
    assert _is_error_page(_authorize(client, rp_client.client_id, "https://attacker.example.com/callback"))


def test_unknown_client_gets_an_error_page(client):
    response = _authorize(client, "no-such-client", DSP_CALLBACK)
    assert _is_error_page(response)
    assert "invalid_client" in response.get_data(as_text=True)


def test_missing_client_id_gets_an_error_page(client):
    response = _authorize(client, None, DSP_CALLBACK)
    assert _is_error_page(response)


def test_disabled_client_gets_an_error_page(client, rp_client):
    clients.disable(rp_client)
    db.session.commit()
    assert _is_error_page(_authorize(client, rp_client.client_id, DSP_CALLBACK))


@pytest.mark.parametrize("variant", [
    DSP_CALLBACK + "/",
    DSP_CALLBACK + "/../evil",
    DSP_CALLBACK + "?next=https://attacker.example.com",
    DSP_CALLBACK[:-1],
    "https://dsp.example.lu.attacker.example.com/callback",
    "https://DSP.example.lu/callback",
    "http://dsp.example.lu/callback",
    "https://dsp.example.lu:443/callback",
])
def test_redirect_uri_must_match_exactly(client, rp_client, variant):
    assert _is_error_page(_authorize(client, rp_client.client_id, variant))


def test_registered_redirect_uri_is_accepted(client, rp_client):
    response = _authorize(client, rp_client.client_id, DSP_CALLBACK)
    assert response.status_code == 303 and response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("uri", ["http://dsp.example.lu/callback", "http://10.0.0.5/callback", "https://dsp.example.lu/callback#fragment"])
def test_registration_refuses_http_except_loopback_and_fragments(app, uri):
    with pytest.raises(clients.InvalidClientMetadata):
        clients.create(name="Web", redirect_uris=[uri])


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8080/callback", "http://[::1]:8080/callback", "http://localhost:8080/callback"])
def test_registration_accepts_http_on_loopback(app, uri):
    registered, _ = clients.create(name="Developer", redirect_uris=[uri])
    assert registered.redirect_uris == [uri]


def test_native_client_may_use_any_loopback_port(client, public_client):
    response = _authorize(client, public_client.client_id, "http://127.0.0.1:51004/callback", prompt="none", state="s1")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("http://127.0.0.1:51004/callback?")
    assert query_of(response.headers["Location"])["error"] == "login_required"


def test_native_client_loopback_path_must_still_match(client, public_client):
    assert _is_error_page(_authorize(client, public_client.client_id, "http://127.0.0.1:51004/other"))


def test_native_client_may_not_swap_loopback_for_another_host(client, public_client):
    assert _is_error_page(_authorize(client, public_client.client_id, "http://127.0.0.2:51004/callback"))
    assert _is_error_page(_authorize(client, public_client.client_id, "http://localhost:51004/callback"))


@pytest.mark.parametrize("uri", ["http://127.0.0.1:99999/callback", "http://127.0.0.1:port/callback", "http://[::1/callback"])
def test_malformed_loopback_redirect_uri_gets_an_error_page(client, public_client, uri):
    assert _is_error_page(_authorize(client, public_client.client_id, uri))


def test_confidential_client_may_not_vary_the_loopback_port(app, client):
    developer = register(name="Developer", redirect_uris=["http://127.0.0.1:8080/callback"])
    assert _is_error_page(_authorize(client, developer.client_id, "http://127.0.0.1:9090/callback"))
    response = _authorize(client, developer.client_id, "http://127.0.0.1:8080/callback", prompt="none")
    assert response.headers["Location"].startswith("http://127.0.0.1:8080/callback?")


def test_native_client_may_use_a_private_use_scheme(app, client):
    native = register(name="MyDSP", redirect_uris=["lu.esante.mydsp:/oauth/callback"], auth_method="none", first_party=True)
    response = _authorize(client, native.client_id, "lu.esante.mydsp:/oauth/callback", prompt="none")
    assert response.headers["Location"].startswith("lu.esante.mydsp:/oauth/callback?")


def test_web_client_may_not_use_a_private_use_scheme(app):
    with pytest.raises(clients.InvalidClientMetadata):
        clients.create(name="Web", redirect_uris=["lu.esante.mydsp:/oauth/callback"])


def test_openid_request_must_name_its_redirect_uri(client, rp_client):
    _, challenge = pkce_pair()
    response = client.get(authorization_url(rp_client.client_id, None, challenge))
    assert query_of(response.headers["Location"])["error"] == "invalid_request"
