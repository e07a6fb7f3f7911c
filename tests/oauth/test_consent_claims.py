"""Consent covers every claim released: scopes and the ``claims`` parameter (OpenID Connect Core §5.5).

A patient who agreed to ``scope=openid`` agreed to no name and no birth date: a third party that
then asks for them one by one with ``claims`` gets the consent page again, listing them, and the
claims the patient agreed to are kept with the consent.
"""

import html
import json
import re

from joserfc import jwt

from idp import consent
from idp.extensions import db
from tests.conftest import query_of
from tests.oauth.conftest import authorization_request, is_consent_page

NAME_AND_BIRTHDATE = json.dumps({"id_token": {"name": None, "birthdate": None}})


def listed_items(page) -> list[str]:
    listed = re.search(r'<ul class="scopes">(.*?)</ul>', page.get_data(as_text=True), re.S).group(1)
    return [html.unescape(re.sub(r"<[^>]+>", "", item)).strip() for item in re.findall(r"<li[^>]*>(.*?)</li>", listed, re.S)]


def id_token_claims(oidc, rp, issued) -> dict:
    response = oidc.exchange(rp, issued)
    assert response.status_code == 200, response.get_json()
    return jwt.decode(response.get_json()["id_token"], oidc.jwks()).claims


def test_claims_asked_one_by_one_after_a_scope_only_consent_show_the_consent_page_again(oidc, patients, third_party_client):
    patient = patients.create()
    oidc.code(third_party_client, patient, scope="openid")
    again = oidc.authorize(authorization_request(third_party_client, scope="openid", claims=NAME_AND_BIRTHDATE).url)
    assert is_consent_page(again), "name and birth date were never agreed to"


def test_the_page_lists_the_new_claims_in_words(oidc, patients, third_party_client):
    patient = patients.create()
    oidc.code(third_party_client, patient, scope="openid")
    page = oidc.authorize(authorization_request(third_party_client, scope="openid", claims=NAME_AND_BIRTHDATE).url)
    items = listed_items(page)
    assert "votre nom complet" in items and "votre date de naissance" in items
    assert "name" not in items and "birthdate" not in items, "protocol names are not words"


def test_the_claims_consented_to_are_released_and_remembered(oidc, patients, third_party_client):
    patient = patients.create()
    issued = oidc.code(third_party_client, patient, scope="openid", claims=NAME_AND_BIRTHDATE)
    claims = id_token_claims(oidc, third_party_client, issued)
    assert claims["name"] == patient.account.display_name and claims["birthdate"] == patient.account.birth_date.isoformat()
    db.session.expire_all()
    (given,) = consent.active_for(patient.account.id)
    assert {"name", "birthdate"} <= set(given.claims)
    again = oidc.authorize(authorization_request(third_party_client, scope="openid", claims=NAME_AND_BIRTHDATE).url)
    assert again.status_code == 303 and "code" in query_of(again.headers["Location"]), "nothing new: no page"


def test_claims_a_consented_scope_covers_need_no_second_page(oidc, patients, third_party_client):
    oidc.code(third_party_client, patients.create(), scope="openid profile")
    response = oidc.authorize(authorization_request(third_party_client, scope="openid profile", claims=NAME_AND_BIRTHDATE).url)
    assert response.status_code == 303 and "code" in query_of(response.headers["Location"])


def test_one_more_claim_asks_again_for_that_claim(oidc, patients, third_party_client):
    oidc.code(third_party_client, patients.create(), scope="openid", claims=json.dumps({"id_token": {"name": None}}))
    page = oidc.authorize(authorization_request(third_party_client, scope="openid", claims=NAME_AND_BIRTHDATE).url)
    assert is_consent_page(page)
    assert "votre date de naissance" in listed_items(page)


def test_prompt_none_with_new_claims_is_consent_required(oidc, patients, third_party_client):
    oidc.code(third_party_client, patients.create(), scope="openid")
    response = oidc.authorize(authorization_request(third_party_client, scope="openid", claims=NAME_AND_BIRTHDATE, prompt="none").url)
    assert response.status_code == 303 and query_of(response.headers["Location"])["error"] == "consent_required"


def test_userinfo_claims_asked_with_the_claims_parameter_need_consent_too(oidc, patients, third_party_client):
    oidc.code(third_party_client, patients.create(), scope="openid")
    wanted = json.dumps({"userinfo": {"email": None}})
    assert is_consent_page(oidc.authorize(authorization_request(third_party_client, scope="openid", claims=wanted).url))


def test_services_autorises_lists_the_claims_agreed_to_one_by_one(oidc, patients, third_party_client, client):
    oidc.code(third_party_client, patients.create(), scope="openid", claims=NAME_AND_BIRTHDATE)
    page = html.unescape(client.get("/account/consents").get_data(as_text=True))
    listed = re.search(r'<ul class="scopes">(.*?)</ul>', page, re.S).group(1)
    assert "votre nom complet" in listed and "votre date de naissance" in listed
