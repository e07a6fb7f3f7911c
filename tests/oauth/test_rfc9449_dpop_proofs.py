"""DPoP proof checks (RFC 9449 §4.3) and server nonces (§8)."""

import base64
import json
import secrets
from datetime import timedelta

import pytest
from joserfc import jwk, jws

from idp import clock
from idp.oauth import errors, rfc9449_dpop as dpop

TOKEN_URL = "http://127.0.0.1:5000/token"


class Holder:
    """A client's DPoP key and the proofs it makes."""

    def __init__(self, key=None):
        self.key = key or jwk.ECKey.generate_key("P-256", private=True)

    def proof(self, method="POST", url=TOKEN_URL, *, header=None, public=None, **claims) -> str:
        body = {"jti": secrets.token_urlsafe(12), "htm": method, "htu": url, "iat": clock.timestamp(), **claims}
        body = {name: value for name, value in body.items() if value is not None}
        head = {"typ": "dpop+jwt", "alg": "ES256" if self.key.key_type == "EC" else "RS256",
                "jwk": public if public is not None else self.key.as_dict(private=False), **(header or {})}
        if head["alg"] == "none":  # an unsigned JWT, which joserfc rightly refuses to make
            encode = lambda part: base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()  # noqa: E731
            return f"{encode(head)}.{encode(body)}."
        return jws.serialize_compact(head, json.dumps(body).encode(), self.key, algorithms=["ES256", "RS256", "HS256"])


@pytest.fixture
def holder(app):
    with app.test_request_context():
        yield Holder()


def refused(proof_or_values, method="POST", url=TOKEN_URL, access_token=None) -> str:
    values = proof_or_values if isinstance(proof_or_values, list) else [proof_or_values]
    with pytest.raises(errors.InvalidDPoPProof) as raised:
        dpop.verify_proof(values, method, url, access_token)
    return raised.value.description


def test_a_good_proof_yields_the_key_thumbprint(holder):
    assert dpop.verify_proof([holder.proof()], "POST", TOKEN_URL) == holder.key.thumbprint()
    assert dpop.verify_proof([holder.proof(url=TOKEN_URL + "?x=1#f")], "POST", TOKEN_URL), "htu compares without query and fragment"


def test_a_proof_is_single_use(holder):
    proof = holder.proof()
    dpop.verify_proof([proof], "POST", TOKEN_URL)
    assert "already used" in refused(proof)


@pytest.mark.parametrize("change, message", [
    ({"header": {"typ": "JWT"}}, "typ dpop+jwt"),
    ({"header": {"alg": "none"}}, "signed with one of"),
    ({"htm": "GET"}, "htm"),
    ({"htu": "http://127.0.0.1:5000/userinfo"}, "htu"),
    ({"jti": None}, "lacks the jti"),
    ({"iat": None}, "lacks the iat"),
    ({"iat": "now"}, "iat"),
])
def test_each_claim_and_header_is_checked(holder, change, message):
    header = change.pop("header", None)
    assert message in refused(holder.proof(header=header, **change))


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_a_proof_by_a_2048_bit_rsa_key_is_accepted(app, alg):
    """§5.1: the RSA algorithms the provider advertises work with keys of the size RFC 7518 §3.3
    requires (2048 bits), whose ``jwk`` makes a header longer than joserfc's default bound."""
    key = jwk.RSAKey.generate_key(2048, private=True)
    body = {"jti": secrets.token_urlsafe(12), "htm": "POST", "htu": TOKEN_URL, "iat": clock.timestamp()}
    proof = jws.serialize_compact({"typ": "dpop+jwt", "alg": alg, "jwk": key.as_dict(private=False)}, json.dumps(body).encode(), key,
                                  algorithms=[alg])
    with app.test_request_context():
        assert dpop.verify_proof([proof], "POST", TOKEN_URL) == key.thumbprint()


def test_stale_or_future_proofs_are_refused(holder):
    assert "iat" in refused(holder.proof(iat=clock.timestamp() - 120))
    assert "iat" in refused(holder.proof(iat=clock.timestamp() + 120))


def test_a_private_or_symmetric_key_in_the_header_is_refused(holder):
    assert "public asymmetric" in refused(holder.proof(public=holder.key.as_dict(private=True)))
    secret = jwk.OctKey.generate_key(256)
    symmetric = Holder(secret)
    with pytest.raises(errors.InvalidDPoPProof):
        dpop.verify_proof([symmetric.proof(header={"alg": "HS256"}, public=secret.as_dict())], "POST", TOKEN_URL)


def test_a_signature_by_another_key_is_refused(holder):
    other = jwk.ECKey.generate_key("P-256", private=True)
    assert "not a valid signed JWT" in refused(Holder(other).proof(public=holder.key.as_dict(private=False)))


def test_malformed_or_several_headers_are_refused(holder):
    assert "not a valid signed JWT" in refused("not.a.jwt")
    assert "Exactly one" in refused([holder.proof(), holder.proof()])
    assert "Exactly one" in refused([])
    assert "too large" in refused("a" * 9000)


def test_ath_binds_the_proof_to_the_access_token(holder):
    url = "http://127.0.0.1:5000/userinfo"
    good = holder.proof("GET", url, ath=dpop.access_token_hash("token-1"))
    assert dpop.verify_proof([good], "GET", url, access_token="token-1")
    assert "ath" in refused(holder.proof("GET", url, ath=dpop.access_token_hash("token-1")), "GET", url, access_token="token-2")
    assert "ath" in refused(holder.proof("GET", url), "GET", url, access_token="token-1")


@pytest.mark.settings(FEATURES={"dpop": {"nonce_required": True, "nonce_lifetime": 300}})
def test_nonces_when_required(app, holder):
    with pytest.raises(errors.UseDPoPNonce):
        dpop.verify_proof([holder.proof()], "POST", TOKEN_URL)
    nonce = dpop.current_nonce()
    assert dpop.verify_proof([holder.proof(nonce=nonce)], "POST", TOKEN_URL)
    clock.advance(timedelta(seconds=300))
    assert dpop.verify_proof([holder.proof(nonce=nonce)], "POST", TOKEN_URL), "the previous window's nonce still works"
    clock.advance(timedelta(seconds=300))
    with pytest.raises(errors.UseDPoPNonce):
        dpop.verify_proof([holder.proof(nonce=nonce)], "POST", TOKEN_URL)
    with pytest.raises(errors.UseDPoPNonce):
        dpop.verify_proof([holder.proof(nonce="forged")], "POST", TOKEN_URL)
