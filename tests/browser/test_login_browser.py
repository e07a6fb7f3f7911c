"""The patient's login in a real browser (Debian Chromium), as the guide shows it:
Connexion → PATIENT → Matricule & Mot de passe → code by SMS → "Mes services eSanté"."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import last_code_sent_to
from tests.support.browser import screenshot


def test_patient_logs_in_with_matricule_password_and_sms_code(page, live_server, patients):
    patient = patients.create(email="marie@example.lu", mobile="+352621000111")
    page.goto(live_server.url_for("/login"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion — PATIENT")
    expect(page.get_by_role("heading", name="Matricule & Mot de passe")).to_be_visible()
    screenshot(page, "login-1-page")

    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Mot de passe", exact=True).fill(patient.password)
    screenshot(page, "login-2-filled")
    page.get_by_role("button", name="Connexion").click()

    expect(page.get_by_text("Code à usage unique à recevoir par")).to_be_visible()
    page.get_by_label("Mobile").check()
    screenshot(page, "login-3-channel")
    page.get_by_role("button", name="Valider").click()

    code_field = page.get_by_label("Code à usage unique", exact=True)
    expect(code_field).to_be_focused()
    code_field.fill(last_code_sent_to(patient.account.mobile))
    screenshot(page, "login-4-code")
    page.get_by_role("button", name="Valider").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")
    expect(page.get_by_text("Bonjour Marie Schmit")).to_be_visible()
    expect(page.get_by_role("link", name="Dossier de Soins Partagé (DSP)")).to_be_visible()
    assert page.url == live_server.url_for("/services")
    screenshot(page, "login-5-services")


def test_a_wrong_password_is_shown_next_to_the_field(page, live_server, patients):
    patient = patients.create()
    page.goto(live_server.url_for("/login"))
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Mot de passe", exact=True).fill("Wrong2026pass")
    page.get_by_role("button", name="Connexion").click()
    password = page.get_by_label("Mot de passe", exact=True)
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#password-errors")).to_have_text("Matricule ou mot de passe incorrect.")
    expect(password).to_be_focused()
    screenshot(page, "login-wrong-password")


@pytest.mark.parametrize("browser_locale", ["de-DE"])
def test_a_german_browser_gets_the_german_login_page(page, live_server):
    page.goto(live_server.url_for("/login"))
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", level=1)).to_have_text("Anmeldung — PATIENT")
    expect(page.get_by_label("Matrikelnummer", exact=True)).to_be_focused()
    expect(page.get_by_label("Passwort", exact=True)).to_be_visible()
    screenshot(page, "login-de-page")
    page.get_by_role("link", name="FR").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion — PATIENT")
