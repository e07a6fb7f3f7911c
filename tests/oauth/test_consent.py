"""Consent: third parties ask the patient once; our own services do not ask."""

import html
import json
import re

from tests.conftest import query_of
from tests.oauth.conftest import authorization_request, hidden_fields, is_consent_page


def test_third_party_client_gets_the_consent_page(oidc, patients, third_party_client):
    page = oidc.authorize(authorization_request(third_party_client, scope="openid profile email").url, patients.create())
    assert is_consent_page(page)
    text = page.get_data(as_text=True)
    assert "Pharmacie du Centre" in text and "e-mail" in text


def test_approved_consent_is_remembered(oidc, patients, third_party_client):
    patient = patients.create()
    oidc.code(third_party_client, patient, scope="openid profile")
    second = oidc.authorize(authorization_request(third_party_client, scope="openid profile").url)
    assert second.status_code == 303 and "code" in query_of(second.headers["Location"])


def test_consent_covers_only_what_was_approved(oidc, patients, third_party_client):
    oidc.code(third_party_client, patients.create(), scope="openid profile")
    assert is_consent_page(oidc.authorize(authorization_request(third_party_client, scope="openid profile email").url))


def test_prompt_consent_asks_again(oidc, patients, third_party_client):
    oidc.code(third_party_client, patients.create())
    assert is_consent_page(oidc.authorize(authorization_request(third_party_client, prompt="consent").url))


def test_denying_consent_is_access_denied(oidc, patients, third_party_client):
    response = oidc.authorize(authorization_request(third_party_client, state="s-deny").url, patients.create(), decision="deny")
    answer = query_of(response.headers["Location"])
    assert answer["error"] == "access_denied" and answer["state"] == "s-deny" and "code" not in answer
    assert is_consent_page(oidc.authorize(authorization_request(third_party_client).url))


def test_consent_decision_needs_the_csrf_token(oidc, patients, third_party_client, client):
    page = oidc.authorize(authorization_request(third_party_client).url, patients.create())
    form = hidden_fields(page.get_data(as_text=True))
    form.pop("csrf_token")
    response = client.post("/authorize", data={**form, "decision": "allow"})
    assert response.status_code == 400 and "Location" not in response.headers


def test_first_party_client_skips_consent(oidc, patients, rp_client):
    response = oidc.authorize(authorization_request(rp_client, scope="openid profile email phone").url, patients.create())
    assert response.status_code == 303 and "code" in query_of(response.headers["Location"])


def test_consent_page_lists_only_claims_the_client_may_receive(oidc, patients, third_party_client):
    wanted = json.dumps({"userinfo": {"matricule": None, "email": None}, "id_token": {"matricule": {"essential": True}}})
    page = oidc.authorize(authorization_request(third_party_client, scope="openid profile matricule", claims=wanted).url, patients.create())
    listed = re.search(r'<ul class="scopes">(.*?)</ul>', page.get_data(as_text=True), re.S).group(1)
    items = [html.unescape(item.strip()) for item in re.findall(r"<li>(.*?)</li>", listed, re.S)]
    assert "votre adresse e-mail" in items, "the single claim asked for, in plain words"
    assert not [item for item in items if "matricule" in item]


def test_consent_page_names_the_delegation_scopes_in_words(oidc, patients):
    from tests.oauth.conftest import PHARMACY_CALLBACK, register

    rp = register(name="Pharmacie", redirect_uris=[PHARMACY_CALLBACK], scope="openid delegations assisted_patients")
    page = oidc.authorize(authorization_request(rp, scope="openid delegations assisted_patients").url, patients.create())
    listed = re.search(r'<ul class="scopes">(.*?)</ul>', page.get_data(as_text=True), re.S).group(1)
    items = [html.unescape(item.strip()) for item in re.findall(r"<li>(.*?)</li>", listed, re.S)]
    assert "la gestion des assistants de votre DSP" in items
    assert "la liste des patients dont vous êtes l'assistant DSP" in items


def test_consent_page_says_how_long_the_consent_lasts_and_where_to_withdraw_it(oidc, patients, third_party_client):
    page = oidc.authorize(authorization_request(third_party_client).url, patients.create())
    text = html.unescape(page.get_data(as_text=True))
    assert "Cet accès reste valable jusqu'à ce que vous le retiriez, à tout moment" in text and "Services autorisés" in text
