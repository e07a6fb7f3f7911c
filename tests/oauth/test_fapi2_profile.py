"""The FAPI 2.0 Security Profile for the clients registered with it (``security_profile: "fapi2"``).

Each rule the profile sets an authorization server has a refusal test here, named for the rule;
expected values come from the profile's text (https://openid.net/specs/fapi-security-profile-2_0-final.html)
and the RFCs it builds on, never from the provider's tables.
"""

import base64
import hashlib
import json
import secrets
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from joserfc import jwk, jws

from idp import client as clients, clock, token as tokens
from idp.extensions import db
from tests.conftest import pkce_pair, query_of
from tests.oauth.conftest import DSP_CALLBACK, register

ISSUER = "http://127.0.0.1:5000"
# The short RSA keys below are made on purpose, to be refused.
pytestmark = pytest.mark.filterwarnings("ignore:Key size should be >= 2048 bits")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 §2.2


def public_jwks(*keys) -> dict:
    return {"keys": [{**key.as_dict(private=False), "kid": key.thumbprint()} for key in keys]}


def sign(header: dict, claims: dict, key) -> str:
    return jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=[header["alg"]])


class FapiClient:
    """A FAPI 2.0 client: its registration, its private_key_jwt key and its DPoP key."""

    def __init__(self, registered: clients.Client, key, dpop_key):
        self.registered, self.key, self.dpop_key = registered, key, dpop_key
        self.client_id = registered.client_id

    def assertion(self, *, aud=ISSUER, alg: str = "ES256", key=None, **claims) -> str:
        """OpenID Connect Core §9 / RFC 7523 §3, with FAPI 2.0 §5.3.3.1's audience: the issuer, a string.
        Authlib checks its times against the real clock, not the provider's (tests move the latter)."""
        now = int(time.time())
        body = {"iss": self.client_id, "sub": self.client_id, "aud": aud, "jti": secrets.token_urlsafe(16),
                "iat": now, "exp": now + 60, **claims}
        signer = key or self.key
        return sign({"alg": alg, "kid": signer.thumbprint(), "typ": "JWT"}, body, signer)

    def authentication(self, **options) -> dict:
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": self.assertion(**options)}

    def proof(self, url: str, method: str = "POST", *, alg: str = "ES256", key=None, access_token: str | None = None,
              **claims) -> str:
        """A DPoP proof (RFC 9449 §4.2)."""
        signer = key or self.dpop_key
        body = {"jti": secrets.token_urlsafe(12), "htm": method, "htu": url, "iat": clock.timestamp(), **claims}
        if access_token:
            digest = hashlib.sha256(access_token.encode()).digest()
            body["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return sign({"typ": "dpop+jwt", "alg": alg, "jwk": signer.as_dict(private=False)}, body, signer)


def ec_key():
    return jwk.ECKey.generate_key("P-256", private=True)


def register_fapi(**overrides) -> FapiClient:
    key = overrides.pop("key", None) or ec_key()
    metadata = {"name": "Laboratoire FAPI", "redirect_uris": [DSP_CALLBACK], "auth_method": "private_key_jwt",
                "jwks": public_jwks(key), "first_party": True, "scope": "openid profile offline_access",
                "grant_types": ["authorization_code", "refresh_token"], "security_profile": "fapi2", **overrides}
    return FapiClient(register(**metadata), key, ec_key())


@pytest.fixture
def fapi(app) -> FapiClient:
    return register_fapi()


class FapiFlow:
    """The FAPI 2.0 code flow, step by step, with the Flask test client as the network."""

    def __init__(self, client, oidc, patients):
        self.client, self.oidc, self.patients = client, oidc, patients

    def push(self, rp: FapiClient, *, proof: str | None = None, authentication: dict | None = None, **overrides):
        """A pushed authorization request (RFC 9126 §2.1); returns (response, PKCE verifier)."""
        verifier, challenge = pkce_pair()
        body = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": DSP_CALLBACK,
                "scope": "openid profile offline_access", "state": "st-" + verifier[:8], "nonce": "n-" + verifier[:12],
                "code_challenge": challenge, "code_challenge_method": "S256", **overrides}
        body = {name: value for name, value in body.items() if value is not None}
        headers = {"DPoP": proof} if proof else {}
        auth = rp.authentication() if authentication is None else authentication
        return self.client.post("/par", data={**body, **auth}, headers=headers), verifier

    def authorize(self, rp: FapiClient, request_uri: str, patient=None):
        url = "/authorize?" + urlencode({"client_id": rp.client_id, "request_uri": request_uri})
        return self.oidc.authorize(url, patient or self.patients.create(), decision="allow")

    def code(self, rp: FapiClient, patient=None) -> tuple[str, str]:
        """(code, PKCE verifier) of a successful pushed request."""
        pushed, verifier = self.push(rp)
        assert pushed.status_code == 201, pushed.get_data(as_text=True)
        answer = query_of(self.authorize(rp, pushed.get_json()["request_uri"], patient).headers["Location"])
        assert "code" in answer, answer
        return answer["code"], verifier

    def token(self, rp: FapiClient, data: dict, *, proof: str | None | bool = True, authentication: dict | None = None):
        """POST /token authenticated with a fresh assertion; ``proof`` True makes one with the DPoP key."""
        if proof is True:
            proof = rp.proof(ISSUER + "/token")
        auth = rp.authentication() if authentication is None else authentication
        return self.client.post("/token", data={**data, **auth}, headers={"DPoP": proof} if proof else {})

    def redeem(self, rp: FapiClient, code: str, verifier: str, **options):
        return self.token(rp, {"grant_type": "authorization_code", "code": code, "redirect_uri": DSP_CALLBACK,
                               "code_verifier": verifier}, **options)

    def tokens(self, rp: FapiClient, patient=None) -> dict:
        response = self.redeem(rp, *self.code(rp, patient))
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def refresh(self, rp: FapiClient, refresh_token: str, **options):
        return self.token(rp, {"grant_type": "refresh_token", "refresh_token": refresh_token}, **options)


@pytest.fixture
def flow(client, oidc, patients) -> FapiFlow:
    return FapiFlow(client, oidc, patients)


def error_of(response) -> str:
    return response.get_json()["error"]


# --- the whole flow, as the profile wants it ----------------------------------------------------


def test_a_fapi2_client_runs_the_code_flow_with_par_pkce_private_key_jwt_and_dpop(flow, fapi, oidc):
    tokens_ = flow.tokens(fapi)
    assert tokens_["token_type"] == "DPoP", "§5.3.2.1 item 4: sender-constrained access tokens only"
    access = oidc.verify(tokens_["access_token"])
    assert access.claims["cnf"] == {"jkt": fapi.dpop_key.thumbprint()}
    # §5.4.1: JWTs the server creates for the client use PS256, ES256 or EdDSA, never RS256.
    assert access.header["alg"] == "ES256" and oidc.verify(tokens_["id_token"]).header["alg"] == "ES256"
    userinfo = flow.client.get("/userinfo", headers={
        "Authorization": "DPoP " + tokens_["access_token"],
        "DPoP": fapi.proof(ISSUER + "/userinfo", "GET", access_token=tokens_["access_token"])})
    assert userinfo.status_code == 200 and userinfo.get_json()["sub"]


def test_authorization_responses_carry_iss(flow, fapi, patients):
    """§5.3.2.2 item 7 (RFC 9207 §2): ``iss`` in every authorization response, errors included."""
    pushed, _ = flow.push(fapi)
    granted = query_of(flow.authorize(fapi, pushed.get_json()["request_uri"]).headers["Location"])
    assert granted["iss"] == ISSUER and granted["code"]
    plain = "/authorize?" + urlencode({"client_id": fapi.client_id, "response_type": "code", "redirect_uri": DSP_CALLBACK,
                                       "scope": "openid"})
    refused = query_of(flow.client.get(plain).headers["Location"])
    assert refused["error"] == "invalid_request" and refused["iss"] == ISSUER


# --- registration ------------------------------------------------------------------------------


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post", "none"])
def test_registration_refuses_a_client_that_does_not_authenticate_with_private_key_jwt(app, auth_method):
    """§5.3.2.1 items 3 and 6: confidential clients only, authenticated with private_key_jwt (or MTLS, not offered)."""
    with pytest.raises(clients.InvalidClientMetadata) as refused:
        clients.create(name="Secret", redirect_uris=[DSP_CALLBACK], auth_method=auth_method, security_profile="fapi2")
    assert refused.value.error == "invalid_client_metadata" and "private_key_jwt" in refused.value.description


@pytest.mark.parametrize("uri", ["http://dsp.example.lu/callback", "http://localhost:5001/callback",
                                 "com.example.app:/callback"])
def test_registration_refuses_redirect_uris_that_are_neither_https_nor_loopback_ip(app, uri):
    """§5.3.2.2 item 8: no "http" redirect URI except loopback interface redirection (RFC 8252 §7.3,
    which names the IP literal; §8.3: not ``localhost``)."""
    key = ec_key()
    with pytest.raises(clients.InvalidClientMetadata) as refused:
        clients.create(name="Http", redirect_uris=[uri], auth_method="private_key_jwt", jwks=public_jwks(key), security_profile="fapi2")
    assert refused.value.error == "invalid_redirect_uri"
    accepted, _ = clients.create(name="Loopback", redirect_uris=["http://127.0.0.1:5001/callback"], auth_method="private_key_jwt",
                                 jwks=public_jwks(key), security_profile="fapi2")
    assert accepted.security_profile == "fapi2"


def test_registration_refuses_weak_or_unusable_client_keys(app):
    """§5.4.1 items 2 and 3: RSA keys of 2048 bits or more, EC keys of 224 or more; keys that sign
    with PS256, ES256 or EdDSA only (item 1.2)."""
    def refused(jwks: dict) -> str:
        with pytest.raises(clients.InvalidClientMetadata) as raised:
            clients.create(name="Keys", redirect_uris=[DSP_CALLBACK], auth_method="private_key_jwt", jwks=jwks, security_profile="fapi2")
        return raised.value.description

    short_rsa = jwk.RSAKey.generate_key(1024, private=True)
    assert "2048" in refused(public_jwks(short_rsa))
    rs256 = jwk.RSAKey.generate_key(2048, private=True)
    assert "RS256" in refused({"keys": [{**rs256.as_dict(private=False), "alg": "RS256"}]})
    assert "public keys" in refused({"keys": [{"kty": "oct", "k": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")}]})
    registered, _ = clients.create(name="Keys", redirect_uris=[DSP_CALLBACK], auth_method="private_key_jwt",
                                   jwks=public_jwks(rs256, ec_key()), security_profile="fapi2")
    assert registered.security_profile == "fapi2"


def test_registration_states_what_the_profile_implies(app):
    """PAR required (§5.3.2.2 item 3, RFC 9126 §6), DPoP-bound tokens (§5.3.2.1 item 4, RFC 9449
    §5.2), ES256 tokens (§5.4.1): the client's metadata says so."""
    metadata = register_fapi().registered.client_metadata
    assert metadata["security_profile"] == "fapi2"
    assert metadata["require_pushed_authorization_requests"] is True and metadata["dpop_bound_access_tokens"] is True
    assert metadata["id_token_signed_response_alg"] == "ES256"


@pytest.mark.parametrize("flag", ["require_pushed_authorization_requests", "dpop_bound_access_tokens"])
def test_registration_refuses_to_turn_off_what_the_profile_requires(app, flag):
    key = ec_key()
    with pytest.raises(clients.InvalidClientMetadata) as refused:
        clients.create(name="Lax", redirect_uris=[DSP_CALLBACK], auth_method="private_key_jwt", jwks=public_jwks(key),
                       security_profile="fapi2", extra_metadata={flag: False})
    assert flag in refused.value.description


@pytest.mark.parametrize("feature", ["par", "dpop"])
def test_registration_refuses_the_profile_when_par_or_dpop_is_turned_off(app, feature):
    app.config["FEATURES"][feature]["enabled"] = False
    with pytest.raises(clients.InvalidClientMetadata) as refused:
        clients.create(name="No", redirect_uris=[DSP_CALLBACK], auth_method="private_key_jwt", jwks=public_jwks(ec_key()),
                       security_profile="fapi2")
    assert "turned off" in refused.value.description


def test_an_unknown_security_profile_is_refused(app):
    with pytest.raises(clients.InvalidClientMetadata) as refused:
        clients.create(name="Bank", redirect_uris=[DSP_CALLBACK], security_profile="fapi1-advanced")
    assert refused.value.error == "invalid_client_metadata" and "fapi2" in refused.value.description


def test_leaving_the_profile_keeps_the_client_and_ends_the_profiles_own_rules(app, flow):
    fapi = register_fapi()
    clients.update(fapi.registered, security_profile=None)
    db.session.commit()
    assert fapi.registered.security_profile is None
    assert fapi.registered.extra_metadata["require_pushed_authorization_requests"] is True, "what it implied stays until changed"
    code, verifier = flow.code(fapi)
    assert flow.redeem(fapi, code, verifier, authentication=fapi.authentication(aud=ISSUER + "/token")).status_code == 200


# --- the authorization request -----------------------------------------------------------------


def test_an_authorization_request_that_was_not_pushed_is_refused(flow, fapi):
    """§5.3.2.2 item 3: "shall reject authorization requests sent without [RFC9126]", whatever the
    client's other metadata says."""
    fapi.registered.extra_metadata = {**fapi.registered.extra_metadata, "require_pushed_authorization_requests": False}
    db.session.commit()
    verifier, challenge = pkce_pair()
    url = "/authorize?" + urlencode({"client_id": fapi.client_id, "response_type": "code", "redirect_uri": DSP_CALLBACK,
                                     "scope": "openid", "nonce": "n-1", "code_challenge": challenge, "code_challenge_method": "S256"})
    answer = query_of(flow.oidc.authorize(url, flow.patients.create()).headers["Location"])
    assert answer["error"] == "invalid_request" and "code" not in answer


def test_a_pushed_request_without_redirect_uri_is_refused(flow, fapi):
    """§5.3.2.2 item 6: ``redirect_uri`` is required in pushed requests, OAuth-only ones too (for
    OpenID requests Core §3.1.2.1 already requires it)."""
    response, _ = flow.push(fapi, redirect_uri=None, scope="profile", nonce=None)
    assert response.status_code == 400 and error_of(response) == "invalid_request"


@pytest.mark.settings(PKCE_REQUIRED_FOR_ALL_CLIENTS=False)
@pytest.mark.parametrize("pkce", [{"code_challenge": None, "code_challenge_method": None}, {"code_challenge_method": None}])
def test_a_pushed_request_without_a_pkce_s256_challenge_is_refused(flow, fapi, pkce):
    """§5.3.2.2 item 5: PKCE with S256, even where the server asks it of no client."""
    response, _ = flow.push(fapi, **pkce)
    assert response.status_code == 400 and error_of(response) == "invalid_request"


def test_a_pushed_request_without_client_authentication_is_refused(flow, fapi):
    """§5.3.2.2 item 4: "shall reject pushed authorization requests without client authentication"."""
    response, _ = flow.push(fapi, authentication={"client_id": fapi.client_id})
    assert response.status_code == 401 and error_of(response) == "invalid_client"


@pytest.mark.parametrize("alg, key", [("RS256", lambda: jwk.RSAKey.generate_key(2048, private=True)),
                                      ("PS256", lambda: jwk.RSAKey.generate_key(1024, private=True))])
def test_a_dpop_proof_with_the_pushed_request_must_use_a_fapi_algorithm_and_key(flow, fapi, alg, key):
    """§5.4.1: PS256/ES256/EdDSA, RSA keys of at least 2048 bits, for the proof binding the code (RFC 9449 §10.1)."""
    response, _ = flow.push(fapi, proof=fapi.proof(ISSUER + "/par", alg=alg, key=key()))
    assert response.status_code == 400 and error_of(response) == "invalid_dpop_proof"
    accepted, _ = flow.push(fapi, proof=fapi.proof(ISSUER + "/par", alg="PS256", key=jwk.RSAKey.generate_key(2048, private=True)))
    assert accepted.status_code == 201


# --- client authentication ---------------------------------------------------------------------


@pytest.mark.parametrize("audience", [[ISSUER], [ISSUER, ISSUER + "/token"], ISSUER + "/token", ISSUER + "/par"])
def test_a_client_assertion_must_name_the_issuer_as_a_string(flow, fapi, audience):
    """§5.3.2.1 item 8: "shall only accept its issuer identifier value ... as a string in the aud
    claim": not in an array, not the token or PAR endpoint URL (which RFC 9126 §2 and Core §9
    allow other clients)."""
    code, verifier = flow.code(fapi)
    refused = flow.redeem(fapi, code, verifier, authentication=fapi.authentication(aud=audience))
    assert refused.status_code in (400, 401) and error_of(refused) == "invalid_client"
    pushed, _ = flow.push(fapi, authentication=fapi.authentication(aud=audience))
    assert pushed.status_code == 401 and error_of(pushed) == "invalid_client"
    assert flow.redeem(fapi, code, verifier).status_code == 200, "the refusals did not spend the code"


def test_a_client_assertion_must_be_signed_with_ps256_or_es256(flow):
    """§5.4.1 item 1.2: RS256 is refused even from a key the client registered."""
    rsa = jwk.RSAKey.generate_key(2048, private=True)
    fapi = register_fapi(key=rsa)
    refused, _ = flow.push(fapi, authentication=fapi.authentication(alg="RS256"))
    assert refused.status_code in (400, 401) and error_of(refused) == "invalid_client"
    accepted, _ = flow.push(fapi, authentication=fapi.authentication(alg="PS256"))
    assert accepted.status_code == 201, accepted.get_data(as_text=True)


def test_jwts_from_a_little_in_the_future_are_accepted_and_from_far_ahead_refused(flow, fapi):
    """§5.3.2.1 item 13: ``iat`` up to 10 seconds ahead is accepted, more than 60 seconds ahead refused."""
    soon = int(time.time()) + 10
    assert flow.push(fapi, authentication=fapi.authentication(iat=soon, nbf=soon))[0].status_code == 201
    assert flow.push(fapi, proof=fapi.proof(ISSUER + "/par", iat=clock.timestamp() + 10))[0].status_code == 201
    later = int(time.time()) + 61
    refused, _ = flow.push(fapi, authentication=fapi.authentication(iat=later, nbf=later, exp=later + 60))
    assert refused.status_code in (400, 401) and error_of(refused) == "invalid_client"
    refused, _ = flow.push(fapi, proof=fapi.proof(ISSUER + "/par", iat=clock.timestamp() + 61))
    assert refused.status_code == 400 and error_of(refused) == "invalid_dpop_proof"


# --- the token endpoint ------------------------------------------------------------------------


def test_a_token_request_without_a_dpop_proof_is_refused(flow, fapi):
    """§5.3.2.1 item 4: "shall only issue sender-constrained access tokens"; the code is not spent."""
    code, verifier = flow.code(fapi)
    refused = flow.redeem(fapi, code, verifier, proof=None)
    assert refused.status_code == 400 and error_of(refused) == "invalid_dpop_proof"
    assert flow.redeem(fapi, code, verifier).status_code == 200


def test_a_token_request_without_a_dpop_proof_is_refused_whatever_the_client_metadata_says(flow, fapi):
    fapi.registered.extra_metadata = {**fapi.registered.extra_metadata, "dpop_bound_access_tokens": False}
    db.session.commit()
    code, verifier = flow.code(fapi)
    assert error_of(flow.redeem(fapi, code, verifier, proof=None)) == "invalid_dpop_proof"


@pytest.mark.settings(FEATURES={"dpop": {"enabled": False}})
def test_with_dpop_turned_off_a_fapi2_client_gets_no_token_at_all(app, flow):
    """The profile fails closed: without DPoP there is no sender-constrained token to give."""
    app.config["FEATURES"]["dpop"]["enabled"] = True  # registered while DPoP was on
    fapi = register_fapi()
    app.config["FEATURES"]["dpop"]["enabled"] = False
    code, verifier = flow.code(fapi)
    refused = flow.redeem(fapi, code, verifier)
    assert refused.status_code == 400 and error_of(refused) == "invalid_dpop_proof"


@pytest.mark.parametrize("alg, key", [("RS256", lambda: jwk.RSAKey.generate_key(2048, private=True)),
                                      ("PS256", lambda: jwk.RSAKey.generate_key(1024, private=True))])
def test_a_dpop_proof_at_the_token_endpoint_must_use_a_fapi_algorithm_and_key(flow, fapi, oidc, alg, key):
    """§5.4.1 items 1.2 and 2."""
    code, verifier = flow.code(fapi)
    refused = flow.redeem(fapi, code, verifier, proof=fapi.proof(ISSUER + "/token", alg=alg, key=key()))
    assert refused.status_code == 400 and error_of(refused) == "invalid_dpop_proof"
    rsa = jwk.RSAKey.generate_key(2048, private=True)
    granted = flow.redeem(fapi, code, verifier, proof=fapi.proof(ISSUER + "/token", alg="PS256", key=rsa))
    assert granted.status_code == 200 and oidc.verify(granted.get_json()["access_token"]).claims["cnf"] == {"jkt": rsa.thumbprint()}


@pytest.mark.settings(AUTHORIZATION_CODE_TTL=600)
def test_a_code_older_than_60_seconds_is_refused_whatever_the_server_setting(flow, fapi, oidc, patients, rp_client):
    """§5.3.2.1 item 11: "shall issue authorization codes with a maximum lifetime of 60 seconds";
    a client outside the profile keeps the server's 600 seconds."""
    code, verifier = flow.code(fapi)
    other = oidc.code(rp_client, patients.create())
    clock.advance(timedelta(seconds=60))
    refused = flow.redeem(fapi, code, verifier)
    assert refused.status_code == 400 and error_of(refused) == "invalid_grant"
    assert oidc.exchange(rp_client, other).status_code == 200


def test_client_credentials_without_a_dpop_proof_is_refused(app, flow):
    """§5.3.2.1 item 4 for every grant (its note 2: the client credentials grant too)."""
    machine = register_fapi(grant_types=["client_credentials"], redirect_uris=[], scope="openid")
    refused = flow.token(machine, {"grant_type": "client_credentials"}, proof=None)
    assert refused.status_code == 400 and error_of(refused) == "invalid_dpop_proof"
    granted = flow.token(machine, {"grant_type": "client_credentials"})
    assert granted.status_code == 200 and granted.get_json()["token_type"] == "DPoP"


# --- refresh tokens ----------------------------------------------------------------------------


def test_the_refresh_token_is_not_rotated_and_works_again(flow, fapi):
    """§5.3.2.1 item 9 and its note 1: no rotation; a client that lost an answer retries with the same token."""
    first = flow.tokens(fapi)
    refreshed = flow.refresh(fapi, first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    assert "refresh_token" not in refreshed.get_json() and refreshed.get_json()["token_type"] == "DPoP"
    again = flow.refresh(fapi, first["refresh_token"])
    assert again.status_code == 200 and again.get_json()["access_token"] != refreshed.get_json()["access_token"]
    assert tokens.find_refresh_token(first["refresh_token"]).revoked_at is None, "no reuse detection: it is not a reuse"


def test_the_patient_sees_when_a_kept_refresh_token_was_last_used(flow, fapi, patients):
    """"Applications connectées" (ASVS 10.4.9): without rotation the live token is the first one;
    the last use is the family's last refresh."""
    patient = patients.create()
    refresh_token = flow.tokens(fapi, patient)["refresh_token"]
    logged_in = clock.now()
    clock.advance(timedelta(hours=3))
    assert flow.refresh(fapi, refresh_token).status_code == 200
    [application] = tokens.connected_applications(patient.account.id)
    assert application.client_id == fapi.client_id
    assert application.connected_at <= logged_in + timedelta(seconds=1)
    assert application.last_used_at >= logged_in + timedelta(hours=3)


def test_a_refresh_token_works_only_for_its_client(flow, fapi):
    """Bound to the client (RFC 6749 §6): another FAPI client, authenticated with its own key, is refused."""
    refresh_token = flow.tokens(fapi)["refresh_token"]
    other = register_fapi(name="Autre laboratoire")
    refused = flow.refresh(other, refresh_token)
    assert refused.status_code == 400 and error_of(refused) == "invalid_grant"
    assert flow.refresh(fapi, refresh_token).status_code == 200


def test_a_refresh_needs_the_clients_private_key(flow, fapi):
    """The refresh token is sender-constrained by private_key_jwt (RFC 9449 §5): an assertion by
    another key, or none, is refused."""
    refresh_token = flow.tokens(fapi)["refresh_token"]
    forged = flow.refresh(fapi, refresh_token, authentication=fapi.authentication(key=ec_key()))
    assert forged.status_code in (400, 401) and error_of(forged) == "invalid_client"
    anonymous = flow.refresh(fapi, refresh_token, authentication={"client_id": fapi.client_id})
    assert anonymous.status_code in (400, 401) and error_of(anonymous) == "invalid_client"


def test_a_refresh_without_a_dpop_proof_is_refused_and_a_new_key_may_be_bound(flow, fapi, oidc):
    """§5.3.2.1 item 4 at refresh; the profile's security considerations ("Access token
    lifetimes"): refresh tokens let a client renew its sender-constraining key."""
    refresh_token = flow.tokens(fapi)["refresh_token"]
    refused = flow.refresh(fapi, refresh_token, proof=None)
    assert refused.status_code == 400 and error_of(refused) == "invalid_dpop_proof"
    new_key = ec_key()
    renewed = flow.refresh(fapi, refresh_token, proof=fapi.proof(ISSUER + "/token", key=new_key))
    assert oidc.verify(renewed.get_json()["access_token"]).claims["cnf"] == {"jkt": new_key.thumbprint()}


def test_a_kept_refresh_token_stays_alive_while_used_and_ends_with_its_family(app, flow, fapi):
    """Without rotation the idle lifetime (``REFRESH_TOKEN_IDLE_TTL``) counts from the last use; the
    absolute one (``REFRESH_TOKEN_ABSOLUTE_TTL``) still ends the family; a revoked one stays revoked."""
    idle = timedelta(seconds=app.config["REFRESH_TOKEN_IDLE_TTL"])
    refresh_token = flow.tokens(fapi)["refresh_token"]
    for _ in range(2):
        clock.advance(idle - timedelta(seconds=5))
        assert flow.refresh(fapi, refresh_token).status_code == 200
    clock.advance(idle + timedelta(seconds=1))
    assert error_of(flow.refresh(fapi, refresh_token)) == "invalid_grant", "left unused for longer than the idle lifetime"

    another = flow.tokens(fapi)["refresh_token"]
    tokens.revoke_family(tokens.find_refresh_token(another).family_id)
    db.session.commit()
    assert error_of(flow.refresh(fapi, another)) == "invalid_grant"


@pytest.mark.settings(REFRESH_TOKEN_IDLE_TTL=3600, REFRESH_TOKEN_ABSOLUTE_TTL=3 * 3600)
def test_a_kept_refresh_token_ends_at_its_familys_absolute_lifetime(flow, fapi):
    refresh_token = flow.tokens(fapi)["refresh_token"]
    for _ in range(3):
        clock.advance(timedelta(minutes=59))
        assert flow.refresh(fapi, refresh_token).status_code == 200
    clock.advance(timedelta(minutes=4))
    assert error_of(flow.refresh(fapi, refresh_token)) == "invalid_grant"


# --- the protected resources --------------------------------------------------------------------


def test_a_fapi2_access_token_is_refused_with_an_rs256_proof_by_its_own_key(flow):
    """§5.4.1 at userinfo: the token is bound to an RSA key (by a PS256 proof); a proof by that
    same key signed RS256 is refused, PS256 accepted."""
    fapi = register_fapi()
    fapi.dpop_key = jwk.RSAKey.generate_key(2048, private=True)
    code, verifier = flow.code(fapi)
    access_token = flow.redeem(fapi, code, verifier, proof=fapi.proof(ISSUER + "/token", alg="PS256")).get_json()["access_token"]

    def userinfo(alg: str):
        return flow.client.get("/userinfo", headers={"Authorization": "DPoP " + access_token,
                                                     "DPoP": fapi.proof(ISSUER + "/userinfo", "GET", alg=alg, access_token=access_token)})

    refused = userinfo("RS256")
    assert refused.status_code == 401 and 'error="invalid_dpop_proof"' in refused.headers["WWW-Authenticate"]
    assert refused.headers["WWW-Authenticate"].startswith("DPoP ")
    assert userinfo("PS256").status_code == 200


def test_a_fapi2_access_token_is_refused_as_a_bearer_token_or_in_the_query(flow, fapi):
    """§5.3.4 items 1, 2 and 5: in the header, sender-constrained, never a query parameter (RFC 6750 §2.3)."""
    access_token = flow.tokens(fapi)["access_token"]
    assert flow.client.get("/userinfo", headers={"Authorization": "Bearer " + access_token}).status_code == 401
    assert flow.client.get("/userinfo?" + urlencode({"access_token": access_token})).status_code == 401
