"""The activation wizard ("J'active mon compte") in a real browser, as the patient guide shows it:
CGU → 1 code d'activation → 2 mot de passe → 3 sécurisation → 4 autres moyens → 5 confirmation,
then the first login; plus the "no activation code" request and the forgotten password."""

import pytest
from playwright.sync_api import expect

from idp import activation_letter, helpdesk_request
from idp.extensions import db
from tests.browser.conftest import last_code_sent_to
from tests.support.browser import screenshot

NEW_PASSWORD = "Luxembourg2026x"
MOBILE = "+352621555777"


@pytest.fixture
def pending(patients):
    """A pending patient with an activation letter: (patient, activation code)."""
    patient = patients.create(status="pending", email=None, mobile=None)
    _, code = activation_letter.issue(patient.account)
    db.session.commit()
    return patient, code


def accept_cgu(page, live_server):
    page.goto(live_server.url_for("/activation"))
    page.get_by_label("En cochant cette case, j'accepte les Conditions Générales d'Utilisation.").check()
    page.get_by_role("button", name="Activer mon compte").click()
    expect(page).to_have_url(live_server.url_for("/activation/code"))


def fill_code_step(page, matricule, code):
    page.get_by_label("Matricule", exact=True).fill(matricule)
    page.get_by_label("Oui", exact=True).check()
    page.get_by_label("Code d'activation", exact=True).fill(code)


def test_patient_activates_the_account_then_logs_in(page, live_server, pending):
    patient, code = pending
    page.goto(live_server.url_for("/login"))
    page.get_by_role("link", name="J'active mon compte").click()
    expect(page).to_have_url(live_server.url_for("/activation"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Activation de mon compte eSanté")
    page.get_by_label("En cochant cette case, j'accepte les Conditions Générales d'Utilisation.").check()
    screenshot(page, "activation-1-cgu")
    page.get_by_role("button", name="Activer mon compte").click()

    expect(page).to_have_url(live_server.url_for("/activation/code"))
    expect(page.locator(".stepper [aria-current=step]")).to_contain_text("Code d'activation")
    expect(page.get_by_label("Matricule", exact=True)).to_be_focused()
    fill_code_step(page, patient.matricule, code)
    screenshot(page, "activation-2-code")
    page.get_by_role("button", name="Etape suivante").click()

    expect(page).to_have_url(live_server.url_for("/activation/password"))
    page.get_by_label("Mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Confirmation du mot de passe", exact=True).fill(NEW_PASSWORD)
    screenshot(page, "activation-3-password")
    page.get_by_role("button", name="Etape suivante").click()

    expect(page).to_have_url(live_server.url_for("/activation/channel"))
    page.get_by_label("Mobile", exact=True).check()
    page.get_by_label("Numéro de mobile ou adresse e-mail").fill(MOBILE)
    page.get_by_role("button", name="Valider").click()
    code_field = page.get_by_label("Code à usage unique", exact=True)
    expect(code_field).to_be_focused()
    code_field.fill(last_code_sent_to(MOBILE))
    screenshot(page, "activation-4-channel")
    page.get_by_role("button", name="Valider").click()

    expect(page).to_have_url(live_server.url_for("/activation/other-means"))
    expect(page.get_by_text("ETAPE 4")).to_be_visible()
    screenshot(page, "activation-5-other-means")
    page.get_by_role("button", name="Etape suivante").click()

    expect(page).to_have_url(live_server.url_for("/activation/done"))
    expect(page.get_by_text("Votre activation est terminée!")).to_be_visible()
    screenshot(page, "activation-6-done")
    page.get_by_role("link", name="Connectez-vous").click()

    expect(page).to_have_url(live_server.url_for("/login"))
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Connexion").click()
    code_field = page.get_by_label("Code à usage unique", exact=True)
    expect(code_field).to_be_visible()
    code_field.fill(last_code_sent_to(MOBILE))
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")
    screenshot(page, "activation-7-services")

    db.session.rollback()
    db.session.refresh(patient.account)
    assert patient.account.status == "active" and patient.account.mobile == MOBILE


def test_a_wrong_activation_code_is_shown_next_to_its_field(page, live_server, pending):
    patient, _ = pending
    accept_cgu(page, live_server)
    fill_code_step(page, patient.matricule, "AAAA-BBBB-CCCC")
    page.get_by_role("button", name="Etape suivante").click()
    field = page.get_by_label("Code d'activation", exact=True)
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_attribute("aria-describedby", "activation_code-errors")
    expect(page.locator("#activation_code-errors")).to_contain_text("code d'activation incorrect")
    expect(page).to_have_url(live_server.url_for("/activation/code"))
    screenshot(page, "activation-wrong-code")


def test_previous_step_goes_back(page, live_server, pending):
    patient, code = pending
    accept_cgu(page, live_server)
    fill_code_step(page, patient.matricule, code)
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_label("Mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Confirmation du mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Etape suivante").click()
    expect(page).to_have_url(live_server.url_for("/activation/channel"))

    page.get_by_role("button", name="Etape précédente").click()
    expect(page).to_have_url(live_server.url_for("/activation/password"))
    expect(page.locator(".stepper [aria-current=step]")).to_contain_text("Mot de passe")
    screenshot(page, "activation-back-to-password")
    page.get_by_role("button", name="Etape précédente").click()
    expect(page).to_have_url(live_server.url_for("/activation/code"))
    # the channel step is locked again until the password step is redone
    page.goto(live_server.url_for("/activation/channel"))
    expect(page).to_have_url(live_server.url_for("/activation/code"))


@pytest.mark.parametrize("browser_locale", ["de-DE"])
def test_the_wizard_completes_in_german(page, live_server, pending):
    """Only the language and the outcome are checked: some new strings may still be French."""
    patient, code = pending
    page.goto(live_server.url_for("/activation"))
    expect(page.locator("html")).to_have_attribute("lang", "de")
    page.locator("#accept").check()
    page.locator("form[action$='/activation'] button[type=submit]").click()

    expect(page).to_have_url(live_server.url_for("/activation/code"))
    expect(page.locator("html")).to_have_attribute("lang", "de")
    page.locator("#matricule").fill(patient.matricule)
    page.locator("input[name=has_code][value=yes]").check()
    page.locator("#activation_code").fill(code)
    page.locator(".step-actions button.next").click()

    expect(page).to_have_url(live_server.url_for("/activation/password"))
    page.locator("#password").fill(NEW_PASSWORD)
    page.locator("#confirmation").fill(NEW_PASSWORD)
    page.locator(".step-actions button.next").click()

    expect(page).to_have_url(live_server.url_for("/activation/channel"))
    page.locator("input[name=send-channel][value=sms]").check()
    page.locator("#send-destination").fill(MOBILE)
    page.locator("button[name=send-submit]").click()
    page.locator("#verify-code").fill(last_code_sent_to(MOBILE))
    page.locator("button[name=verify-submit]").click()

    expect(page).to_have_url(live_server.url_for("/activation/other-means"))
    page.locator(".step-actions button.next").click()
    expect(page).to_have_url(live_server.url_for("/activation/done"))
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.locator("p.success[role=status]")).to_be_visible()
    screenshot(page, "activation-de-done")
    db.session.rollback()
    db.session.refresh(patient.account)
    assert patient.account.status == "active"


def test_no_activation_code_request_is_sent(page, live_server):
    page.goto(live_server.url_for("/activation"))
    page.get_by_role("link", name="Je n'ai pas de code d'activation").click()
    expect(page).to_have_url(live_server.url_for("/activation/request"))
    page.get_by_label("Matricule", exact=True).fill("1893120105732")
    page.get_by_label("Nom", exact=True).fill("Doe")
    page.get_by_label("Prénom", exact=True).fill("Jane")
    page.get_by_label("Date de naissance").fill("1893-12-01")
    page.get_by_label("Adresse e-mail").fill("jane@example.lu")
    page.get_by_label("Message (facultatif)").fill("Courrier perdu")
    screenshot(page, "activation-request-form")
    page.get_by_role("button", name="Envoyer la demande").click()

    expect(page).to_have_url(live_server.url_for("/activation/request/sent"))
    expect(page.get_by_role("status")).to_contain_text("Si les informations correspondent")
    screenshot(page, "activation-request-sent")
    db.session.rollback()
    assert [r.family_name for r in helpdesk_request.listing()] == ["Doe"]


def test_forgotten_password_is_reset_in_the_browser(page, live_server, patients):
    patient = patients.create(email=None, mobile="+352621000111")
    page.goto(live_server.url_for("/login"))
    page.get_by_role("link", name="Mot de passe oublié ?").click()
    expect(page).to_have_url(live_server.url_for("/password/forgotten"))
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    screenshot(page, "password-forgotten-1")
    page.get_by_role("button", name="Recevoir un code").click()

    expect(page).to_have_url(live_server.url_for("/password/reset"))
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(patient.account.mobile))
    page.get_by_label("Nouveau mot de passe", exact=True).fill("Nouveau2026pass")
    page.get_by_label("Confirmation du mot de passe", exact=True).fill("Nouveau2026pass")
    screenshot(page, "password-forgotten-2-reset")
    page.get_by_role("button", name="Valider").click()

    expect(page).to_have_url(live_server.url_for("/login"))
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Mot de passe", exact=True).fill("Nouveau2026pass")
    page.get_by_role("button", name="Connexion").click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(patient.account.mobile))
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")
    screenshot(page, "password-forgotten-3-services")
