"""Interoperability with a strict, independent client library: oauth4webapi (panva), on Node.js.

oauth4webapi is installed, pinned, by ``scripts/install-oauth4webapi.sh`` (``make test-tools``)
into the gitignored ``.test-tools/interop/``; without it, or without ``node``, these tests fail
loudly, never skip. ``oauth4webapi_client.mjs`` is the relying party: the library makes every
request and checks every answer (discovery, PAR with client authentication and a DPoP proof, the
authorization response's ``state`` and RFC 9207 ``iss``, PKCE, the ID token's claims and nonce,
DPoP-bound tokens and userinfo, refresh, the server's DPoP nonces). The provider runs on a live
server; the patient's browser is played by ``requests`` (``PatientBrowser``).
"""

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from joserfc import jwk, jwt

from idp import client as clients, token as tokens
from idp.extensions import db
from tests.interop.test_idpyoidc import RP_CALLBACK, PatientBrowser, live_provider  # noqa: F401  (fixture)

REPO_ROOT = Path(__file__).resolve().parents[2]
LIBRARY = REPO_ROOT / ".test-tools" / "interop" / "node_modules" / "oauth4webapi" / "build" / "index.js"
DRIVER = Path(__file__).with_name("oauth4webapi_client.mjs")
SCOPE = "openid profile email offline_access"
CONVERSATION_TIMEOUT = 120  # seconds for the whole flow


class RelyingParty:
    """``oauth4webapi_client.mjs`` in a Node.js process, one JSON document per line each way."""

    def __init__(self, scenario: dict):
        node = shutil.which("node")
        if node is None or not LIBRARY.is_file():
            pytest.fail(f"node or oauth4webapi missing ({LIBRARY}): run `make test-tools`", pytrace=False)
        self.process = subprocess.Popen([node, str(DRIVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env={"OAUTH4WEBAPI": str(LIBRARY), "PATH": "/usr/bin:/bin"})
        self.watchdog = threading.Timer(CONVERSATION_TIMEOUT, self.process.kill)
        self.watchdog.start()
        self.tell(scenario)

    def tell(self, message: dict) -> None:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def hear(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise AssertionError(f"the relying party stopped (exit {self.process.returncode}): {self.process.stderr.read()}")
        return json.loads(line)

    def run(self, browser: PatientBrowser) -> dict:
        """The flow to its end: each authorization URL the library builds is opened in the patient's browser."""
        try:
            while (message := self.hear())["step"] == "authorize":
                self.tell({"callback": browser.visit(message["url"])})
            assert message["step"] == "done", message
            return message
        finally:
            self.watchdog.cancel()
            self.process.kill()
            self.process.wait()


def claims_of(token: str) -> tuple[dict, dict]:
    """(header, claims) of a JWT the provider signed, verified against its JWKS."""
    decoded = jwt.decode(token, jwk.KeySet.import_key_set({"keys": _published_keys()}), algorithms=["RS256", "ES256"])
    return decoded.header, decoded.claims


def _published_keys() -> list[dict]:
    from idp import signing_key

    return signing_key.published_keys_until()[0]


@pytest.fixture
def browser(live_provider, patients) -> PatientBrowser:
    return PatientBrowser(live_provider, patients.create())


def test_a_code_pushed_with_a_dpop_proof_is_bound_to_that_key(live_provider, browser):
    """RFC 9449 §10.1 through oauth4webapi: the proof it sends with the pushed request binds the
    code; redeemed with another key the code is refused (§10), with the pushing key it gives
    DPoP-bound tokens that open userinfo."""
    registered, secret = clients.create(name="oauth4webapi (PAR + DPoP)", redirect_uris=[RP_CALLBACK], scope=SCOPE)
    db.session.commit()
    result = RelyingParty({"scenario": "par_dpop_binding", "issuer": live_provider.url, "client_id": registered.client_id,
                           "client_secret": secret, "redirect_uri": RP_CALLBACK, "scope": SCOPE}).run(browser)
    assert result["other_key"] == {"error": "invalid_grant", "status": 400}
    assert result["token_type"] == "dpop"  # oauth4webapi lower-cases it
    _, claims = claims_of(result["access_token"])
    assert claims["cnf"] == {"jkt": jwk.import_key(result["dpop_jwk"]).thumbprint()}
    assert result["userinfo"]["sub"] == result["sub"] and result["userinfo"]["family_name"] == "Schmit"


@pytest.mark.settings(FEATURES={"dpop": {"nonce_required": True}})
def test_a_fapi2_client_end_to_end(live_provider, browser):
    """FAPI 2.0 Security Profile as a strict client sees it: PAR with private_key_jwt (``aud`` the
    issuer, as a string), PKCE S256, ``iss`` checked, DPoP with the server's nonces, an ES256 ID
    token, userinfo with DPoP, refresh without rotation (the same refresh token twice)."""
    key = jwk.ECKey.generate_key("P-256", private=True)
    private = {**key.as_dict(private=True), "kid": key.thumbprint()}
    registered, _ = clients.create(name="oauth4webapi (FAPI 2.0)", redirect_uris=[RP_CALLBACK], scope=SCOPE,
                                   auth_method="private_key_jwt", security_profile="fapi2",
                                   jwks={"keys": [{**key.as_dict(private=False), "kid": key.thumbprint()}]})
    db.session.commit()
    result = RelyingParty({"scenario": "fapi2", "issuer": live_provider.url, "client_id": registered.client_id,
                           "client_jwk": private, "redirect_uri": RP_CALLBACK, "scope": SCOPE}).run(browser)
    assert result["token_type"] == "dpop"
    dpop_key = jwk.import_key(result["dpop_jwk"]).thumbprint()
    header, claims = claims_of(result["access_token"])
    assert header["alg"] == "ES256" and claims["cnf"] == {"jkt": dpop_key} and claims["client_id"] == registered.client_id
    assert claims_of(result["id_token"])[0]["alg"] == "ES256"
    assert result["acr"] == "http://eidas.europa.eu/LoA/substantial"
    assert result["userinfo"]["sub"] == result["sub"] == result["userinfo_after_refresh"]["sub"]
    for refreshed in (result["refreshed"], result["again"]):
        assert refreshed["token_type"] == "dpop" and refreshed["has_refresh_token"] is False
        assert claims_of(refreshed["access_token"])[1]["cnf"] == {"jkt": dpop_key}
    live = tokens.connected_applications(browser.patient.account.id)
    assert [application.client_id for application in live] == [registered.client_id], "one refresh token, kept"
