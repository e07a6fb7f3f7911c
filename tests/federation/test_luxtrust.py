"""LuxTrust: linking (wizard step 4 and settings), "Connexion" with LuxTrust, unlinking, step-up from ``acr_values``."""

import base64
import json
from html import unescape

from idp import federated_identity, sso_session
from idp.federation.sandbox.citizens import Citizen
from tests.conftest import authorization_url, csrf_token, pkce_pair, query_of
from tests.federation.conftest import saml_round_trip, stand_in_answer
from tests.flows.conftest import audit_names

HIGH, SUBSTANTIAL = "http://eidas.europa.eu/LoA/high", "http://eidas.europa.eu/LoA/substantial"


def lux_citizen(federation, subject="lt-marie"):
    return federation.luxtrust.add_citizen(Citizen(subject, "Marie", "Schmit"))


def link_in_settings(client, federation, subject="lt-marie", device="token"):
    return saml_round_trip(client, federation, "/federation/luxtrust/link", subject, device)


def test_a_logged_in_patient_links_luxtrust_in_the_settings_and_unlinks_it(client, federation, patients):
    patient = patients.create()
    lux_citizen(federation)
    patients.login(patient)
    page = unescape(client.get("/account/settings").get_data(as_text=True))
    assert "Aucun produit LuxTrust n'est associé à votre compte." in page and "/federation/luxtrust/link" in page
    linked = link_in_settings(client, federation)
    assert linked.status_code == 303 and linked.headers["Location"].endswith("/account/settings")
    assert federated_identity.find("luxtrust", "lt-marie").account_id == patient.account.id
    settings = client.get("/account/settings").get_data(as_text=True)
    assert "Dissocier mon produit LuxTrust" in settings
    client.post("/account/settings/luxtrust/unlink", data={"csrf_token": csrf_token(settings)})
    assert federated_identity.find("luxtrust", "lt-marie") is None
    assert audit_names().count("federation:identity_linked") == 1 and "federation:identity_unlinked" in audit_names()


def test_linking_needs_a_login(client, federation):
    started = client.get("/federation/luxtrust/link")
    assert started.status_code == 303 and "/login?next=" in started.headers["Location"]


def test_connexion_with_luxtrust_needs_no_password_or_code(client, federation, patients):
    patient = patients.create()
    lux_citizen(federation)
    patients.login(patient)
    link_in_settings(client, federation)
    browser = client.application.test_client()
    assert "Connexion avec LuxTrust" in browser.get("/login").get_data(as_text=True)
    done = saml_round_trip(browser, federation, "/federation/luxtrust/start?next=/account", "lt-marie", device="smartcard")
    assert done.status_code == 303 and done.headers["Location"].endswith("/account")
    session = sso_session.live_sessions(patient.account.id)[-1]
    assert (session.acr, session.amr) == (HIGH, ["sc"])
    assert browser.get("/account").status_code == 200


def test_luxtrust_mobile_is_substantial_with_a_hardware_key(client, federation, patients):
    patient = patients.create()
    lux_citizen(federation)
    patients.login(patient)
    link_in_settings(client, federation)
    saml_round_trip(client.application.test_client(), federation, "/federation/luxtrust/start", "lt-marie", device="mobile")
    session = sso_session.live_sessions(patient.account.id)[-1]
    assert (session.acr, session.amr) == (SUBSTANTIAL, ["hwk"])


def test_an_unlinked_luxtrust_product_gets_a_clear_page(client, federation):
    lux_citizen(federation, "lt-nobody")
    page = saml_round_trip(client, federation, "/federation/luxtrust/start", "lt-nobody")
    assert page.status_code == 404
    assert "Aucun compte eSanté n'est associé à ce produit LuxTrust" in unescape(page.get_data(as_text=True))
    assert audit_names()[-1] == "federation:unknown_identity"


def test_a_product_linked_to_another_account_is_not_moved(client, federation, patients):
    first, second = patients.create(), patients.create(email="other@example.lu", mobile="+352621000222")
    lux_citizen(federation)
    patients.login(first)
    link_in_settings(client, federation)
    other = client.application.test_client()
    from tests.conftest import PatientFactory

    PatientFactory(client.application, other).login(second)
    refused = link_in_settings(other, federation)
    assert refused.status_code == 409
    assert federated_identity.find("luxtrust", "lt-marie").account_id == first.account.id


def id_token_claims(client, rp, code: str, verifier: str) -> dict:
    token = client.post("/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": "https://dsp.example.lu/callback",
                                        "code_verifier": verifier}, auth=(rp.client_id, rp.plain_secret))
    assert token.status_code == 200, token.get_data(as_text=True)
    payload = token.get_json()["id_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_acr_values_above_the_session_step_up_through_luxtrust(client, federation, patients, rp_client):
    patient = patients.create()
    lux_citizen(federation)
    patients.login(patient)
    link_in_settings(client, federation)
    verifier, challenge = pkce_pair()
    asked = client.get(authorization_url(rp_client.client_id, "https://dsp.example.lu/callback", challenge, acr_values=HIGH))
    assert asked.status_code == 303 and "/federation/luxtrust/step-up" in asked.headers["Location"]
    to_luxtrust = client.get(asked.headers["Location"])
    stand_in = federation.luxtrust.app.test_client()
    parts = to_luxtrust.headers["Location"].split("/saml/sso", 1)[1]
    offered = stand_in.get("/saml/sso" + parts).get_data(as_text=True)
    assert 'value="smartcard"' in offered and 'value="token"' not in offered  # RequestedAuthnContext: high
    from tests.federation.conftest import post_to_acs

    back = post_to_acs(client, "luxtrust", stand_in_answer(federation, to_luxtrust.headers["Location"], "lt-marie", "smartcard"))
    answer = query_of(client.get(back.headers["Location"]).headers["Location"])
    assert "code" in answer, answer
    claims = id_token_claims(client, rp_client, answer["code"], verifier)
    assert claims["acr"] == HIGH and claims["amr"] == ["sc"]


def test_a_step_up_that_does_not_reach_the_level_returns_the_oidc_error(client, federation, patients, rp_client, monkeypatch):
    patient = patients.create()
    lux_citizen(federation)
    patients.login(patient)
    link_in_settings(client, federation)
    _, challenge = pkce_pair()
    asked = client.get(authorization_url(rp_client.client_id, "https://dsp.example.lu/callback", challenge, acr_values=HIGH))
    to_luxtrust = client.get(asked.headers["Location"])
    # a stand-in that ignores the requested level: our SP still checks what came back
    from idp.federation.sandbox import app as sandbox_app

    monkeypatch.setattr(sandbox_app, "_requested_level", lambda request: "http://eidas.europa.eu/LoA/low")
    from tests.federation.conftest import post_to_acs

    back = post_to_acs(client, "luxtrust", stand_in_answer(federation, to_luxtrust.headers["Location"], "lt-marie", "token"))
    answer = query_of(client.get(back.headers["Location"]).headers["Location"])
    assert answer["error"] == "unmet_authentication_requirements"
    assert "federation:step_up_refused" in audit_names()


def test_acr_values_no_means_can_reach_return_the_oidc_error(client, federation, patients, rp_client):
    patient = patients.create()
    patients.login(patient)
    _, challenge = pkce_pair()
    asked = client.get(authorization_url(rp_client.client_id, "https://dsp.example.lu/callback", challenge, acr_values=HIGH))
    answer = query_of(asked.headers["Location"])
    assert answer["error"] == "unmet_authentication_requirements"
    assert audit_names()[-1] == "federation:step_up_refused"


def test_acr_values_the_session_meets_need_no_step_up(client, federation, patients, rp_client):
    patient = patients.create()
    patients.login(patient)
    _, challenge = pkce_pair()
    asked = client.get(authorization_url(rp_client.client_id, "https://dsp.example.lu/callback", challenge,
                                         acr_values=f"{SUBSTANTIAL} {HIGH}"))
    assert "code" in query_of(asked.headers["Location"])


def test_discovery_lists_the_eidas_levels_and_the_acr_amr_claims(client):
    document = client.get("/.well-known/openid-configuration").get_json()
    assert document["acr_values_supported"] == ["http://eidas.europa.eu/LoA/low", SUBSTANTIAL, HIGH]
    assert {"acr", "amr"} <= set(document["claims_supported"])


def test_acr_values_above_the_session_with_prompt_none_need_interaction(client, federation, patients, rp_client):
    patient = patients.create()
    lux_citizen(federation)
    patients.login(patient)
    link_in_settings(client, federation)
    _, challenge = pkce_pair()
    asked = client.get(authorization_url(rp_client.client_id, "https://dsp.example.lu/callback", challenge, acr_values=HIGH, prompt="none"))
    assert query_of(asked.headers["Location"])["error"] == "interaction_required"


def wizard_at_step_4(client, patients):
    from idp import activation_letter
    from idp.extensions import db
    from tests.flows.test_activation import Wizard

    patient = patients.create(status="pending", email=None, mobile=None)
    _, code = activation_letter.issue(patient.account)
    db.session.commit()
    wizard = Wizard(client, patients)
    wizard.accept_cgu()
    wizard.code(patient.matricule, code)
    wizard.password()
    wizard.send()
    assert wizard.verify(patients.last_code("+352621555777")).headers["Location"].endswith("/activation/other-means")
    return patient, wizard


def test_luxtrust_is_linked_in_step_4_and_the_wizard_then_completes(client, federation, patients):
    patient, wizard = wizard_at_step_4(client, patients)
    lux_citizen(federation)
    step = unescape(client.get("/activation/other-means").get_data(as_text=True))
    assert "/federation/luxtrust/link?source=activation" in step
    back = saml_round_trip(client, federation, "/federation/luxtrust/link?source=activation", "lt-marie")
    assert back.headers["Location"].endswith("/activation/other-means")
    assert "Un produit LuxTrust est associé à votre compte." in unescape(client.get("/activation/other-means").get_data(as_text=True))
    assert wizard.finish().headers["Location"].endswith("/activation/done")
    assert federated_identity.find("luxtrust", "lt-marie").account_id == patient.account.id


def test_a_wizard_link_answer_is_refused_once_the_wizard_is_gone(client, federation, patients):
    patient, _ = wizard_at_step_4(client, patients)
    lux_citizen(federation)
    started = client.get("/federation/luxtrust/link?source=activation")
    answer = stand_in_answer(federation, started.headers["Location"], "lt-marie")
    with client.session_transaction() as flow:
        flow.pop("activation")
    from tests.federation.conftest import post_to_acs

    refused = post_to_acs(client, "luxtrust", answer)
    assert refused.status_code == 400 and federated_identity.find("luxtrust", "lt-marie") is None


def test_the_wizard_link_needs_a_wizard_at_step_4(client, federation):
    assert client.get("/federation/luxtrust/link?source=activation").headers["Location"].endswith("/activation")
