"""Claim release rules (OpenID Connect Core §5.4, §5.5) and subject identifiers (§8), without HTTP."""

import pytest

from idp import claims, token as tokens
from idp.subject import subject_for
from tests.oauth.conftest import register


@pytest.fixture
def patient(patients):
    return patients.create().account


@pytest.mark.parametrize("text", ["{not json", "[]", '{"access_token": {}}', '{"userinfo": []}', '{"id_token": {"email": true}}'])
def test_malformed_claims_requests_are_refused(text):
    with pytest.raises(claims.InvalidClaimsRequest):
        claims.parse_claims_request(text)


def test_well_formed_claims_request_is_parsed():
    parsed = claims.parse_claims_request('{"id_token": {"email": null, "acr": {"essential": true}}, "userinfo": {}}')
    assert parsed == {"id_token": {"email": None, "acr": {"essential": True}}, "userinfo": {}}


def test_no_claims_request_is_none():
    assert claims.parse_claims_request(None) is None and claims.parse_claims_request("") is None


def test_userinfo_release_follows_the_granted_scopes(patient, rp_client):
    released = claims.release(patient, rp_client, "openid email", None, "userinfo")
    assert set(released) == {"email", "email_verified"}


def test_id_token_release_has_only_requested_claims(patient, rp_client):
    assert claims.release(patient, rp_client, "openid profile email", None, "id_token") == {}
    released = claims.release(patient, rp_client, "openid", {"id_token": {"given_name": None}}, "id_token")
    assert released == {"given_name": "Marie"}


def test_matricule_needs_a_client_allowed_the_scope(patient, third_party_client):
    request = {"userinfo": {"matricule": None}, "id_token": {"matricule": None}}
    for target in ("userinfo", "id_token"):
        assert "matricule" not in claims.release(patient, third_party_client, "openid matricule", request, target)


def test_matricule_needs_the_scope_granted_even_for_an_allowed_client(patient, rp_client):
    request = {"id_token": {"matricule": None}}
    assert "matricule" not in claims.release(patient, rp_client, "openid", request, "id_token")
    assert claims.release(patient, rp_client, "openid matricule", request, "id_token") == {"matricule": patient.matricule}


def test_claims_outside_the_clients_scopes_are_not_released(app, patient):
    narrow = register(name="Narrow", redirect_uris=["https://narrow.example.lu/cb"], scope="openid")
    assert claims.release(patient, narrow, "openid", {"userinfo": {"email": None, "phone_number": None}}, "userinfo") == {}


def test_unknown_claims_are_ignored(patient, rp_client):
    assert claims.release(patient, rp_client, "openid", {"id_token": {"favourite_colour": None}}, "id_token") == {}


def test_public_subject_is_the_accounts_opaque_subject(patient, rp_client):
    assert subject_for(patient, rp_client) == patient.subject != patient.matricule


def test_pairwise_subject_depends_on_the_sector_only(app, patient, third_party_client, second_third_party_client):
    same_sector = register(name="Pharmacie bis", redirect_uris=["https://pharmacy.example.com/other"], scope="openid")
    pharmacy = subject_for(patient, third_party_client)
    assert pharmacy == subject_for(patient, third_party_client) == subject_for(patient, same_sector)
    assert pharmacy != subject_for(patient, second_third_party_client)
    assert pharmacy not in (patient.subject, patient.matricule)


def test_pairwise_subject_depends_on_the_salt(app, patient, third_party_client):
    before = subject_for(patient, third_party_client)
    app.config["PAIRWISE_SALT"] = "another-salt"
    assert subject_for(patient, third_party_client) != before
