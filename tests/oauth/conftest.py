"""Relying parties and a small driver for the authorization code flow, shared by the OAuth tests."""

import html
import re
from dataclasses import dataclass

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp import client as clients
from idp.extensions import db
from tests.conftest import authorization_url, pkce_pair, query_of

DSP_CALLBACK = "https://dsp.example.lu/callback"
PHARMACY_CALLBACK = "https://pharmacy.example.com/callback"
LAB_CALLBACK = "https://lab.example.org/callback"
NATIVE_CALLBACK = "http://127.0.0.1/callback"


def register(**metadata):
    """Register a client and keep its one-time secret on it as ``plain_secret``."""
    registered, secret = clients.create(**metadata)
    db.session.commit()
    registered.plain_secret = secret
    return registered


@pytest.fixture
def third_party_client(app):
    """A confidential relying party that is not ours: the patient must consent."""
    return register(
        name="Pharmacie du Centre", redirect_uris=[PHARMACY_CALLBACK], post_logout_redirect_uris=["https://pharmacy.example.com/"],
        scope="openid profile email offline_access",
    )


@pytest.fixture
def second_third_party_client(app):
    return register(name="Laboratoire", redirect_uris=[LAB_CALLBACK], scope="openid profile email")


RESOURCE_AUDIENCE = "https://api.dsp.example.lu"


@pytest.fixture
def resource_server(app, rp_client):
    """The DSP API: registered as the resource server of the audience ``rp_client``'s tokens carry,
    it may introspect them (RFC 7662 §4; nobody else may, tests/oauth/test_resource_servers.py)."""
    clients.update(rp_client, extra_metadata={**rp_client.extra_metadata, "access_token_audiences": [RESOURCE_AUDIENCE]})
    return register(name="DSP API", grant_types=["client_credentials"], scope="openid", resource_audience=RESOURCE_AUDIENCE)


@pytest.fixture
def public_client(app):
    """A native app (MyDSP): no secret, loopback redirect, PKCE."""
    return register(
        name="MyDSP", redirect_uris=[NATIVE_CALLBACK], auth_method="none", first_party=True,
        scope="openid profile offline_access",
    )


@dataclass
class IssuedCode:
    """A code delivered to the client, with what the client needs to redeem it."""

    code: str
    verifier: str
    redirect_uri: str
    answer: dict


@dataclass
class AuthorizationRequest:
    """An authorization request URL with the PKCE verifier the client keeps for it."""

    url: str
    verifier: str
    redirect_uri: str

    def issued(self, response) -> IssuedCode:
        """The code the provider's redirect (``response``) delivered for this request."""
        assert response.status_code == 303, response.get_data(as_text=True)
        answer = query_of(response.headers["Location"])
        assert "code" in answer, answer
        return IssuedCode(answer["code"], self.verifier, self.redirect_uri, answer)


def authorization_request(rp, redirect_uri: str | None = None, **params) -> AuthorizationRequest:
    verifier, challenge = pkce_pair()
    redirect_uri = redirect_uri or rp.redirect_uris[0]
    return AuthorizationRequest(authorization_url(rp.client_id, redirect_uri, challenge, **params), verifier, redirect_uri)


HIDDEN_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def hidden_fields(page: str) -> dict:
    """The hidden inputs of an HTML page (the consent form, the form_post page), unescaped."""
    return {name: html.unescape(value) for name, value in HIDDEN_FIELD.findall(page)}


class OidcDriver:
    """Drives the browser side of the code flow with the Flask test client."""

    def __init__(self, client, patients):
        self.client, self.patients = client, patients

    def authorize(self, url: str, patient=None, decision: str | None = None):
        """GET ``url``; log ``patient`` in when the provider asks, then answer the consent page with ``decision``."""
        response = self.client.get(url)
        if patient is not None and is_login_redirect(response):
            done = self.patients.login(patient, next_url=query_of(response.headers["Location"])["next"])
            assert done.status_code == 303, done.get_data(as_text=True)
            response = self.client.get(done.headers["Location"])
        if decision is not None and is_consent_page(response):
            response = self.decide(response, decision)
        return response

    def decide(self, consent_page, decision: str):
        """Submit the consent form with ``decision`` ("allow" or "deny")."""
        return self.client.post("/authorize", data={**hidden_fields(consent_page.get_data(as_text=True)), "decision": decision})

    def code(self, rp, patient=None, redirect_uri: str | None = None, **params) -> IssuedCode:
        """Run the authorization request to its end (consenting if asked) and return the code it delivered."""
        request = authorization_request(rp, redirect_uri, **params)
        return request.issued(self.authorize(request.url, patient, decision="allow"))

    def exchange(self, rp, issued: IssuedCode, **extra):
        data = {"grant_type": "authorization_code", "code": issued.code, "redirect_uri": issued.redirect_uri,
                "code_verifier": issued.verifier, **extra}
        return self.token_request(rp, data)

    def token_request(self, rp, data: dict):
        """POST to the token endpoint, authenticating as ``rp`` does (Basic, or client_id for public clients)."""
        if rp.is_public:
            return self.client.post("/token", data={"client_id": rp.client_id, **data})
        return self.client.post("/token", data=data, auth=(rp.client_id, rp.plain_secret))

    def tokens(self, rp, patient=None, **params) -> dict:
        response = self.exchange(rp, self.code(rp, patient, **params))
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def refresh(self, rp, refresh_token: str, **extra):
        return self.token_request(rp, {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra})

    def userinfo(self, access_token: str):
        return self.client.get("/userinfo", headers={"Authorization": "Bearer " + access_token})

    def introspect(self, rp, token: str):
        return self.client.post("/introspect", data={"token": token}, auth=(rp.client_id, rp.plain_secret))

    def jwks(self) -> KeySet:
        return KeySet.import_key_set(self.client.get("/jwks.json").get_json())

    def verify(self, token: str) -> jwt.Token:
        """Decode a JWT the provider issued, checking its signature against the published JWKS."""
        return jwt.decode(token, self.jwks(), algorithms=["RS256", "ES256"])


def is_login_redirect(response) -> bool:
    return response.status_code in (302, 303) and response.headers["Location"].split("?")[0].endswith("/login")


def is_consent_page(response) -> bool:
    return response.status_code == 200 and 'name="decision" value="allow"' in response.get_data(as_text=True)


@pytest.fixture
def oidc(client, patients):
    return OidcDriver(client, patients)
