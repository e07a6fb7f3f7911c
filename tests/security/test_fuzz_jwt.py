"""Fuzzing the JWT parsers: our own tokens (access tokens, ``id_token_hint``) and the
``private_key_jwt`` client assertions relying parties send.

Inputs are garbage, JWT-shaped garbage, and real tokens with bytes flipped, segments swapped or
headers rewritten (``alg: none``, HS256 keyed with our public key, foreign ``kid``, ``crit``).
Properties: the parsers never raise, accept a token only when it is exactly the one signed,
and the endpoints answer 4xx with a clean error, never a 500. Bounded in the normal suite,
long under ``make fuzz``.
"""

import base64
import hashlib
import hmac
import json

import pytest
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from hypothesis import given, strategies as st
from joserfc.jwk import RSAKey

from idp import signing_key, token as tokens
from tests.oauth.conftest import DSP_CALLBACK, register
from tests.security.fuzzing import fuzz_settings, http_examples

pytestmark = pytest.mark.fuzz
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_ENDPOINT = "http://127.0.0.1:5000/token"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64_json(value) -> str:
    return b64(json.dumps(value).encode())


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3), max_leaves=8)
headers = st.fixed_dictionaries({"alg": st.sampled_from(["none", "None", "HS256", "RS256", "ES256", "PS256", "EdDSA", "", "RSA-OAEP"])},
                                optional={"kid": st.text(max_size=20) | json_scalars, "typ": st.sampled_from(["JWT", "at+jwt", "", "dpop+jwt"]),
                                          "crit": st.lists(st.text(max_size=5), max_size=2) | json_scalars,
                                          "jwk": st.dictionaries(st.sampled_from(["kty", "n", "e", "crv", "x", "y"]), st.text(max_size=10), max_size=4),
                                          "b64": st.booleans(), "zip": st.just("DEF")})
payloads = st.dictionaries(st.sampled_from(["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "client_id"]), json_values, max_size=9)
segments = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.", max_size=60)
garbage_tokens = st.one_of(
    st.text(max_size=80),
    st.lists(segments, min_size=1, max_size=6).map(".".join),
    st.builds(lambda header, payload, signature: f"{b64_json(header)}.{b64_json(payload)}.{signature}", headers, payloads, segments),
    st.builds(lambda header, payload: f"{b64_json(header)}.{b64_json(payload)}.", headers, payloads),
    st.builds(lambda header, payload: f"{b64_json(header)}.{b64(payload.encode())}.AAAA", headers, st.text(max_size=30)),
)


def mutations(token: str):
    """A real token changed in one place: a flipped byte, a dropped or swapped segment, a new header."""
    header, payload, signature = token.split(".")
    return st.one_of(
        st.tuples(st.integers(0, len(token) - 1), st.sampled_from("AQgw_-.=")).map(lambda edit: token[:edit[0]] + edit[1] + token[edit[0] + 1:]),
        st.sampled_from([f"{header}.{payload}.", f"{header}.{payload}", f"{payload}.{header}.{signature}", f"{header}..{signature}",
                         f"{header}.{payload}.{signature}.{signature}", token + "=", " " + token]),
        st.builds(lambda new_header: f"{b64_json(new_header)}.{payload}.{signature}", headers),
        st.builds(lambda new_header: f"{b64_json(new_header)}.{payload}.", headers),
    )


def _same_token(candidate: str, original: str) -> bool:
    """True when ``candidate`` decodes to the very bytes of ``original`` (base64url padding bits may differ)."""
    try:
        return [base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in candidate.split(".")] == \
            [base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in original.split(".")]
    except ValueError:
        return False


@pytest.fixture
def access_token(app, rp_client, patients):
    patient = patients.create()
    response, _ = tokens.issue(rp_client, patient.account, "openid profile", grant_type="authorization_code")
    return response["access_token"]


@fuzz_settings(100)
@given(value=garbage_tokens, allow_expired=st.booleans())
def test_decoding_our_own_jwts_never_raises_on_garbage(app, access_token, value, allow_expired):
    assert tokens.decode_own_jwt(value, allow_expired=allow_expired) is None
    assert tokens.find_access_token(value) is None


@fuzz_settings(100)
@given(data=st.data())
def test_a_changed_token_is_refused_unless_it_is_byte_for_byte_the_same(app, access_token, data):
    changed = data.draw(mutations(access_token))
    decoded = tokens.decode_own_jwt(changed)
    if decoded is not None:
        assert _same_token(changed, access_token), changed
    assert (tokens.find_access_token(changed) is not None) == (decoded is not None)


def test_an_hmac_token_keyed_with_our_public_key_is_refused(app, access_token):
    """The classic algorithm confusion: HS256 with the RSA public key (PEM) as the secret."""
    kid, private = signing_key.active_key("RS256")
    public_pem = RSAKey.import_key(private.as_dict(private=False)).as_pem(private=False)
    payload = json.loads(base64.urlsafe_b64decode(access_token.split(".")[1] + "=="))
    signing_input = f"{b64_json({'alg': 'HS256', 'kid': kid})}.{b64_json(payload)}"
    forged = signing_input + "." + b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())
    assert tokens.decode_own_jwt(forged) is None
    unsigned = f"{b64_json({'alg': 'none', 'kid': kid})}.{access_token.split('.')[1]}."
    assert tokens.decode_own_jwt(unsigned) is None


# --- the endpoints that parse JWTs --------------------------------------------------------------


@pytest.fixture
def assertion_key():
    return RSAKey.generate_key(2048, private=True)


@pytest.fixture
def jwt_client(app, assertion_key):
    public = {**assertion_key.as_dict(private=False), "kid": assertion_key.thumbprint(), "use": "sig", "alg": "RS256"}
    return register(name="Laboratoire national", redirect_uris=[DSP_CALLBACK], auth_method="private_key_jwt", first_party=True,
                    grant_types=["client_credentials"], scope="openid", jwks={"keys": [public]})


@pytest.mark.settings(RATE_LIMIT_TOKEN="1000000 per minute")  # make fuzz sends thousands
@fuzz_settings(http_examples())
@given(data=st.data())
def test_private_key_jwt_assertions_that_are_not_right_get_invalid_client(client, jwt_client, assertion_key, data):
    valid = private_key_jwt_sign(assertion_key, jwt_client.client_id, TOKEN_ENDPOINT, header={"kid": assertion_key.thumbprint()})
    assertion = data.draw(st.one_of(garbage_tokens, mutations(valid)))
    response = client.post("/token", data={"grant_type": "client_credentials", "client_id": jwt_client.client_id,
                                           "client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": assertion})
    if response.status_code == 200:
        assert _same_token(assertion, valid), "only the genuine assertion authenticates (and only once)"
        return
    assert response.status_code in (400, 401), response.get_data(as_text=True)
    assert response.get_json()["error"] in ("invalid_client", "invalid_request")


@fuzz_settings(http_examples())
@given(hint=garbage_tokens)
def test_any_id_token_hint_gets_a_clean_answer(client, rp_client, hint):
    authorize = client.get("/authorize", query_string={
        "response_type": "code", "client_id": rp_client.client_id, "redirect_uri": rp_client.redirect_uris[0], "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256", "id_token_hint": hint,
    })
    assert authorize.status_code in (303, 400)
    logout = client.get("/logout", query_string={"id_token_hint": hint, "client_id": rp_client.client_id})
    assert logout.status_code in (200, 303, 400)
    assert "Traceback" not in logout.get_data(as_text=True)
