"""The wizard's error paths in the browser, prompt=create from a relying party, and a channel change."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import expect

from idp import activation_letter, clock
from idp.extensions import db
from tests.browser.conftest import last_code_sent_to
from tests.browser.test_activation_browser import MOBILE, NEW_PASSWORD, accept_cgu, fill_code_step
from tests.conftest import authorization_url, pkce_pair
from tests.support.browser import screenshot


@pytest.fixture
def pending(patients):
    patient = patients.create(status="pending", email=None, mobile=None)
    _, code = activation_letter.issue(patient.account)
    db.session.commit()
    return patient, code


def reach_password_step(page, live_server, patient, code):
    accept_cgu(page, live_server)
    fill_code_step(page, patient.matricule, code)
    page.get_by_role("button", name="Etape suivante").click()
    expect(page).to_have_url(live_server.url_for("/activation/password"))


def reach_channel_step(page, live_server, patient, code):
    reach_password_step(page, live_server, patient, code)
    page.get_by_label("Mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Confirmation du mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Etape suivante").click()
    expect(page).to_have_url(live_server.url_for("/activation/channel"))


def send_code(page, destination=MOBILE):
    page.get_by_label("Mobile", exact=True).check()
    page.get_by_label("Numéro de mobile ou adresse e-mail").fill(destination)
    page.get_by_role("button", name="Valider").click()


def test_an_expired_activation_code_explains_how_to_get_a_new_letter(page, live_server, pending):
    patient, code = pending
    clock.advance(timedelta(days=91))
    accept_cgu(page, live_server)
    fill_code_step(page, patient.matricule, code)
    page.get_by_role("button", name="Etape suivante").click()
    expect(page.get_by_role("alert")).to_contain_text("Ce code d'activation a expiré")
    expect(page.get_by_role("alert").get_by_role("link", name="Je n'ai pas de code d'activation")).to_be_visible()
    screenshot(page, "activation-expired-code")


def test_each_password_rule_and_the_confirmation_are_explained(page, live_server, pending):
    patient, code = pending
    reach_password_step(page, live_server, patient, code)
    page.get_by_label("Mot de passe", exact=True).fill("abc")
    page.get_by_label("Confirmation du mot de passe", exact=True).fill("abd")
    page.get_by_role("button", name="Etape suivante").click()
    errors = page.locator("#password-errors")
    expect(errors).to_contain_text("au minimum 8 caractères")
    expect(errors).to_contain_text("au moins un caractère numérique")
    expect(page.locator("#confirmation-errors")).to_contain_text("La confirmation ne correspond pas")
    page.get_by_label("Mot de passe", exact=True).fill("12345678")
    page.get_by_label("Confirmation du mot de passe", exact=True).fill("12345678")
    page.get_by_role("button", name="Etape suivante").click()
    expect(page.locator("#password-errors")).to_contain_text("au moins un caractère alphabétique")
    page.get_by_label("Mot de passe", exact=True).fill("password1")
    page.get_by_label("Confirmation du mot de passe", exact=True).fill("password1")
    page.get_by_role("button", name="Etape suivante").click()
    expect(page.locator("#password-errors")).to_contain_text("trop courant")
    screenshot(page, "activation-weak-password")


def test_wrong_and_expired_one_time_codes_then_resend(page, live_server, pending):
    patient, code = pending
    reach_channel_step(page, live_server, patient, code)
    send_code(page)
    field = page.get_by_label("Code à usage unique", exact=True)
    field.fill("000000" if last_code_sent_to(MOBILE) != "000000" else "111111")
    page.get_by_role("button", name="Valider").click()
    expect(page.locator("#verify-code-errors")).to_contain_text("Code incorrect")
    clock.advance(timedelta(minutes=6))
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(MOBILE))
    page.get_by_role("button", name="Valider").click()
    expect(page.locator("#verify-code-errors")).to_contain_text("a expiré")
    page.get_by_role("button", name="Renvoyer un code").click()
    expect(page.get_by_text("Un nouveau code vous a été envoyé.")).to_be_visible()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(MOBILE))
    page.get_by_role("button", name="Valider").click()
    expect(page).to_have_url(live_server.url_for("/activation/other-means"))
    screenshot(page, "activation-code-resent")


def test_prompt_create_from_a_relying_party_ends_back_there_with_tokens(page, live_server, pending, rp_client):
    patient, code = pending
    verifier, challenge = pkce_pair()
    callbacks = []
    page.route("https://dsp.example.lu/**", lambda route: (callbacks.append(route.request.url), route.fulfill(body="ok")))
    page.goto(live_server.url_for(authorization_url(rp_client.client_id, "https://dsp.example.lu/callback", challenge, prompt="create")))
    expect(page).to_have_url(live_server.url_for("/activation"))
    page.get_by_label("En cochant cette case, j'accepte les Conditions Générales d'Utilisation.").check()
    page.get_by_role("button", name="Activer mon compte").click()
    fill_code_step(page, patient.matricule, code)
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_label("Mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Confirmation du mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Etape suivante").click()
    send_code(page)
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(MOBILE))
    page.get_by_role("button", name="Valider").click()
    page.get_by_role("button", name="Etape suivante").click()
    expect(page.get_by_text("Votre activation est terminée!")).to_be_visible()
    page.get_by_role("link", name="Connectez-vous").click()
    page.wait_for_url("https://dsp.example.lu/**")
    answer = {k: v[0] for k, v in parse_qs(urlsplit(callbacks[-1]).query).items()}
    assert answer["iss"] == live_server.url
    token = requests.post(live_server.url_for("/token"), data={
        "grant_type": "authorization_code", "code": answer["code"], "redirect_uri": "https://dsp.example.lu/callback",
        "code_verifier": verifier}, auth=(rp_client.client_id, rp_client.plain_secret), timeout=10)
    assert token.status_code == 200 and "id_token" in token.json()


def test_patient_changes_the_mobile_number_in_the_account(page, live_server, patients):
    patient = patients.create(email="marie@example.lu", mobile="+352621000111")
    page.goto(live_server.url_for("/login"))
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Mot de passe", exact=True).fill(patient.password)
    page.get_by_role("button", name="Connexion").click()
    page.get_by_label("Mobile", exact=False).first.check()
    page.get_by_role("button", name="Valider").click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to("+352621000111"))
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")
    page.goto(live_server.url_for("/account/contact"))
    page.get_by_label("Mobile", exact=True).check()
    page.get_by_label("Nouveau numéro de mobile ou nouvelle adresse e-mail").fill("+352621999888")
    page.get_by_label("Mot de passe actuel").fill(patient.password)
    page.get_by_role("button", name="Recevoir un code").click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to("+352621999888"))
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_text("Vos coordonnées ont été mises à jour.")).to_be_visible()
    screenshot(page, "account-contact-changed")
    db.session.rollback()
    db.session.refresh(patient.account)
    assert patient.account.mobile == "+352621999888"
