"""Interoperability with an independent relying party library: idpyoidc (IdentityPython).

The provider runs on a live server; idpyoidc does discovery, builds the authorization request
(with PKCE), checks the response (state, RFC 9207 ``iss``), redeems the code, validates the ID
token (signature against the JWKS, ``iss``, ``aud``, ``nonce``, ``at_hash``), calls userinfo,
refreshes, builds the revocation request and the logout URL. Only the patient's browser is
played by ``requests``.
"""

import html
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from cryptojwt.key_jar import build_keyjar
from idpyoidc.client.defaults import DEFAULT_KEY_DEFS
from idpyoidc.client.exception import OidcServiceError
from idpyoidc.client.oauth2.stand_alone_client import StandAloneClient
from idpyoidc.client.rp_handler import RPHandler
from idpyoidc.message.oauth2 import is_error_message

from idp import client as clients, messaging
from idp.extensions import db
from tests.support.browser import LiveServer

RP_BASE = "https://rp.example.org"
RP_CALLBACK = RP_BASE + "/authz_cb"
RP_HOME = RP_BASE + "/"
SCOPES = ["openid", "profile", "email", "offline_access"]
SERVICES = {
    "discovery": {"class": "idpyoidc.client.oidc.provider_info_discovery.ProviderInfoDiscovery"},
    "authorization": {"class": "idpyoidc.client.oidc.authorization.Authorization"},
    "access_token": {"class": "idpyoidc.client.oidc.access_token.AccessToken"},
    "refresh_access_token": {"class": "idpyoidc.client.oidc.refresh_access_token.RefreshAccessToken"},
    "userinfo": {"class": "idpyoidc.client.oidc.userinfo.UserInfo"},
    "token_revocation": {"class": "idpyoidc.client.oauth2.token_revocation.TokenRevocation"},
    "end_session": {"class": "idpyoidc.client.oidc.end_session.EndSession"},
}
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
HIDDEN_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


@pytest.fixture
def live_provider(app):
    """The provider on 127.0.0.1:<free port>, its issuer set to that URL."""
    server = LiveServer(app)
    app.config["ISSUER"] = server.url
    yield server
    server.stop()


class PatientBrowser:
    """The patient's browser: follows redirects, logs in with the one-time code, consents."""

    def __init__(self, provider: LiveServer, patient):
        self.provider, self.patient = provider, patient
        self.session = requests.Session()

    def visit(self, url: str) -> str:
        """Open ``url`` and go wherever the provider sends us until it sends us back to the RP."""
        response = self.session.get(url, allow_redirects=False)
        for _ in range(12):
            if response.status_code == 200 and 'name="decision"' in response.text:
                response = self._post("/authorize", {**self._hidden_fields(response.text), "decision": "allow"})
                continue
            assert response.status_code in (302, 303), response.text
            target = urljoin(response.url, response.headers["Location"])
            if target.startswith(RP_BASE):
                return target
            response = self._step(target)
        raise AssertionError("the provider never sent the browser back")

    def _step(self, target: str):
        path = urlsplit(target).path
        if path == "/login":
            page = self.session.get(target)
            return self._post("/login", {"csrf_token": self._csrf(page.text), "matricule": self.patient.matricule,
                                         "password": self.patient.password, "next": parse_qs(urlsplit(target).query)["next"][0]})
        if path == "/login/channel":
            return self._post(path, {"csrf_token": self._csrf(self.session.get(target).text), "channel": "sms"})
        if path == "/login/code":
            page = self.session.get(target)
            text = messaging.outbox_messages(self.patient.account.mobile)[-1].body
            return self._post(path, {"csrf_token": self._csrf(page.text), "code": re.search(r"\b(\d{6})\b", text).group(1)})
        return self.session.get(target, allow_redirects=False)

    def _post(self, path: str, data: dict):
        return self.session.post(self.provider.url + path, data=data, allow_redirects=False)

    @staticmethod
    def _csrf(page: str) -> str:
        return CSRF_FIELD.search(page).group(1)

    @staticmethod
    def _hidden_fields(page: str) -> dict:
        return {name: html.unescape(value) for name, value in HIDDEN_FIELD.findall(page)}


@dataclass
class RelyingParty:
    handler: RPHandler
    client: StandAloneClient
    issuer: str

    def sign_in(self, browser: PatientBrowser, **request_args) -> dict:
        """The whole code flow, idpyoidc's side of it: build the request, finish with ``finalize``."""
        url = self.handler.init_authorization(client=self.client, req_args=request_args or None)
        return self.handler.finalize(self.issuer, _query(browser.visit(url)))


def _query(url: str) -> dict:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def _relying_party(provider: LiveServer, *, auth_method: str, first_party: bool = False) -> RelyingParty:
    keyjar = build_keyjar(DEFAULT_KEY_DEFS)
    registered, secret = clients.create(
        name=f"idpyoidc ({auth_method})", redirect_uris=[RP_CALLBACK], post_logout_redirect_uris=[RP_HOME],
        scope=" ".join(SCOPES), auth_method=auth_method, first_party=first_party,
        jwks=keyjar.export_jwks() if auth_method == "private_key_jwt" else None,
    )
    db.session.commit()
    configuration = {
        "issuer": provider.url,
        "client_id": registered.client_id,
        "client_type": "oidc",
        "client_authn_methods": [auth_method],
        "redirect_uris": [RP_CALLBACK],
        "post_logout_redirect_uris": [RP_HOME],
        "preference": {"response_types": ["code"], "scopes_supported": SCOPES, "token_endpoint_auth_methods_supported": [auth_method]},
        "add_ons": {"pkce": {"function": "idpyoidc.client.oauth2.add_on.pkce.add_support",
                             "kwargs": {"code_challenge_length": 64, "code_challenge_method": "S256"}}},
        "services": SERVICES,
    }
    if secret:
        configuration["client_secret"] = secret
    handler = RPHandler(base_url=RP_BASE, client_configs={"esante": configuration}, keyjar=keyjar)
    client = handler.client_setup("esante")
    return RelyingParty(handler, client, client.get_context().provider_info["issuer"])


@pytest.fixture
def relying_party(live_provider) -> RelyingParty:
    """A third-party web RP authenticating with client_secret_basic (consent, pairwise ``sub``)."""
    return _relying_party(live_provider, auth_method="client_secret_basic")


@pytest.fixture
def browser(live_provider, patients) -> PatientBrowser:
    return PatientBrowser(live_provider, patients.create())


def test_idpyoidc_accepts_the_discovery_document_and_the_jwks(live_provider, relying_party):
    provider_info = relying_party.client.get_context().provider_info
    assert relying_party.issuer == live_provider.url
    assert provider_info["code_challenge_methods_supported"] == ["S256"]
    assert provider_info["authorization_response_iss_parameter_supported"] is True
    keys = relying_party.client.keyjar.get_issuer_keys(live_provider.url)
    assert {key.kty for key in keys} >= {"RSA", "EC"}


def test_idpyoidc_sends_pkce_s256_and_a_nonce(relying_party):
    url = relying_party.handler.init_authorization(client=relying_party.client)
    request = _query(url)
    assert request["code_challenge_method"] == "S256" and len(request["code_challenge"]) == 43
    assert request["nonce"] and request["state"] and request["redirect_uri"] == RP_CALLBACK


def test_idpyoidc_completes_the_code_flow_and_validates_the_id_token(live_provider, relying_party, browser):
    result = relying_party.sign_in(browser)
    assert "error" not in result, result
    id_token = result["id_token"]  # verified by idpyoidc: signature (JWKS), iss, aud, nonce, at_hash
    assert id_token["iss"] == live_provider.url
    assert relying_party.client.get_client_id() in id_token["aud"]
    assert id_token["acr"] == "http://eidas.europa.eu/LoA/substantial"
    session = relying_party.client.get_session_information(result["state"])
    assert id_token["nonce"] == session["nonce"]
    assert result["userinfo"]["sub"] == id_token["sub"] != browser.patient.account.subject
    assert result["userinfo"]["family_name"] == "Schmit" and result["userinfo"]["email"] == "patient@example.lu"
    assert "matricule" not in result["userinfo"]


def test_idpyoidc_refreshes_and_the_provider_rotates_the_refresh_token(relying_party, browser):
    result = relying_party.sign_in(browser)
    first = relying_party.client.get_context().cstate.get_set(result["state"], claim=["refresh_token"])["refresh_token"]
    refreshed = relying_party.handler.refresh_access_token(result["state"], client=relying_party.client)
    assert not is_error_message(refreshed)
    assert refreshed["access_token"] != result["token"] and refreshed["refresh_token"] != first
    assert refreshed["__verified_id_token"]["sub"] == result["id_token"]["sub"]
    userinfo = relying_party.handler.get_user_info(result["state"], client=relying_party.client, access_token=refreshed["access_token"])
    assert userinfo["sub"] == result["id_token"]["sub"]


def test_revocation_request_built_by_idpyoidc_revokes_the_refresh_token(relying_party, browser):
    """idpyoidc builds and authenticates the RFC 7009 request; its parser insists on a non-empty
    text body, which RFC 7009 §2.2 does not promise, so the answer is read by status."""
    result = relying_party.sign_in(browser)
    refresh_token = relying_party.client.get_context().cstate.get_set(result["state"], claim=["refresh_token"])["refresh_token"]
    revocation = relying_party.client.get_service("token_revocation").get_request_parameters(
        request_args={"token": refresh_token, "token_type_hint": "refresh_token"}, authn_method="client_secret_basic",
    )
    response = requests.request(revocation["method"], revocation["url"], data=revocation["body"], headers=revocation["headers"])
    assert response.status_code == 200
    with pytest.raises(OidcServiceError, match="invalid_grant"):
        relying_party.handler.refresh_access_token(result["state"], client=relying_party.client)


def test_logout_url_built_by_idpyoidc_ends_the_session(relying_party, browser):
    result = relying_party.sign_in(browser)
    logout = relying_party.client.logout(result["state"], post_logout_redirect_uri=RP_HOME)
    assert "id_token_hint" in logout["request"]
    back = browser.visit(logout["url"])
    assert back == RP_HOME + "?state=" + logout["request"]["state"]

    url = relying_party.handler.init_authorization(client=relying_party.client, req_args={"prompt": "none", "scope": "openid"})
    answer = relying_party.handler.finalize_auth(relying_party.client, relying_party.issuer, _query(browser.visit(url)))
    assert is_error_message(answer) and answer["error"] == "login_required"


def test_idpyoidc_authenticates_with_private_key_jwt(live_provider, browser):
    relying_party = _relying_party(live_provider, auth_method="private_key_jwt", first_party=True)
    result = relying_party.sign_in(browser)
    assert "error" not in result, result
    assert result["id_token"]["sub"] == browser.patient.account.subject
    refreshed = relying_party.handler.refresh_access_token(result["state"], client=relying_party.client)
    assert not is_error_message(refreshed) and refreshed["access_token"]
