"""JWT access tokens (RFC 9068) and subject identifiers (OpenID Connect Core §8): ``sub`` is opaque
and stable, pairwise for third parties, never the matricule."""

import json

from joserfc import jwt

from tests.oauth.conftest import register

ISSUER = "http://127.0.0.1:5000"


def test_access_token_is_an_rfc9068_jwt_signed_with_a_published_key(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create(), scope="openid profile email")
    decoded = jwt.decode(tokens["access_token"], oidc.jwks(), algorithms=["RS256"])
    assert decoded.header["typ"] == "at+jwt" and decoded.header["alg"] == "RS256"
    assert decoded.header["kid"] in {key["kid"] for key in oidc.client.get("/jwks.json").get_json()["keys"]}
    claims = decoded.claims
    assert {"iss", "sub", "aud", "client_id", "iat", "exp", "jti", "scope"} <= set(claims)
    assert claims["iss"] == ISSUER and claims["client_id"] == rp_client.client_id
    assert claims["aud"] == ISSUER or ISSUER in claims["aud"]
    assert claims["scope"] == "openid profile email"
    assert claims["exp"] - claims["iat"] == tokens["expires_in"]


def test_access_token_validates_with_the_rfc9068_registry(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create())
    claims = oidc.verify(tokens["access_token"]).claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER}, sub={"essential": True}, exp={"essential": True},
        iat={"essential": True}, jti={"essential": True}, client_id={"essential": True, "value": rp_client.client_id},
    ).validate(claims)


def test_each_access_token_has_its_own_jti(oidc, patients, rp_client):
    patient = patients.create()
    first = oidc.verify(oidc.tokens(rp_client, patient)["access_token"]).claims["jti"]
    second = oidc.verify(oidc.tokens(rp_client, patient)["access_token"]).claims["jti"]
    assert first != second


def test_access_token_carries_the_authentication_context(oidc, patients, rp_client):
    claims = oidc.verify(oidc.tokens(rp_client, patients.create())["access_token"]).claims
    assert claims["acr"] == "http://eidas.europa.eu/LoA/substantial" and "auth_time" in claims


def test_access_token_audience_includes_registered_resource_servers(app, oidc, patients):
    with_api = register(name="DSP viewer", redirect_uris=["https://dsp.example.lu/callback"], first_party=True,
                        extra_metadata={"access_token_audiences": ["https://api.dsp.example.lu"]})
    claims = oidc.verify(oidc.tokens(with_api, patients.create())["access_token"]).claims
    assert claims["aud"] == [ISSUER, "https://api.dsp.example.lu"]


def test_sub_is_never_the_matricule(oidc, patients, rp_client, third_party_client):
    patient = patients.create()
    for rp in (rp_client, third_party_client):
        tokens = oidc.tokens(rp, patient, scope="openid profile")
        for token in (tokens["access_token"], tokens["id_token"]):
            claims = oidc.verify(token).claims
            assert claims["sub"] != patient.matricule and patient.matricule not in json.dumps(claims)
        assert oidc.userinfo(tokens["access_token"]).get_json()["sub"] != patient.matricule


def test_first_party_client_sees_the_public_subject(oidc, patients, rp_client):
    patient = patients.create()
    claims = oidc.verify(oidc.tokens(rp_client, patient)["id_token"]).claims
    assert claims["sub"] == patient.account.subject


def test_pairwise_subjects_differ_between_third_parties(oidc, patients, third_party_client, second_third_party_client):
    patient = patients.create()
    pharmacy = oidc.verify(oidc.tokens(third_party_client, patient)["id_token"]).claims["sub"]
    lab = oidc.verify(oidc.tokens(second_third_party_client, patient)["id_token"]).claims["sub"]
    assert pharmacy != lab
    assert patient.account.subject not in (pharmacy, lab)


def test_pairwise_subject_is_stable_across_logins(oidc, patients, client, third_party_client):
    patient = patients.create()
    first = oidc.tokens(third_party_client, patient)
    client.post("/logout", data={"id_token_hint": first["id_token"]})
    client.delete_cookie("esante_sso")
    second = oidc.tokens(third_party_client, patient)
    assert oidc.verify(first["id_token"]).claims["sub"] == oidc.verify(second["id_token"]).claims["sub"]
    assert oidc.userinfo(second["access_token"]).get_json()["sub"] == oidc.verify(second["id_token"]).claims["sub"]


def test_pairwise_subject_is_shared_by_clients_of_one_sector(app, oidc, patients, third_party_client):
    """Core §8.1: clients with redirect URIs on one host form one sector and see one ``sub``."""
    sibling = register(name="Pharmacie (app)", redirect_uris=["https://pharmacy.example.com/app/callback"], scope="openid")
    patient = patients.create()
    one = oidc.verify(oidc.tokens(third_party_client, patient)["id_token"]).claims["sub"]
    other = oidc.verify(oidc.tokens(sibling, patient, scope="openid")["id_token"]).claims["sub"]
    assert one == other


def test_subjects_differ_between_patients(oidc, patients, client, third_party_client):
    first = oidc.verify(oidc.tokens(third_party_client, patients.create())["id_token"]).claims["sub"]
    client.delete_cookie("esante_sso")
    second_patient = patients.create(email="deux@example.lu", mobile="+352621000333")
    second = oidc.verify(oidc.tokens(third_party_client, second_patient)["id_token"]).claims["sub"]
    assert first != second
