"""Accessibility (axe-core, WCAG rules): no serious or critical violation on the patient pages.

axe-core comes from npm (``scripts/install-axe.sh``); the pages' CSP (``script-src 'self'``)
is bypassed in a dedicated browser context so that axe can be injected.
"""

import pytest
from playwright.sync_api import expect

from idp import activation_letter
from idp.extensions import db
from tests.browser.conftest import last_code_sent_to
from tests.support.axe import axe_violations, format_violations
from tests.support.browser import DEFAULT_TIMEOUT_MS, screenshot


@pytest.fixture
def a11y_page(chromium_browser, browser_locale, browser_timezone):
    context = chromium_browser.new_context(locale=browser_locale, timezone_id=browser_timezone, bypass_csp=True)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def check(page, name: str, failures: dict) -> None:
    screenshot(page, f"a11y/{name}")
    violations = axe_violations(page)
    if violations:
        failures[f"{name} ({page.url})"] = format_violations(violations)


def report(failures: dict) -> str:
    return "\n\n".join(f"{name}\n{text}" for name, text in failures.items())


def test_login_activation_request_and_forgotten_pages(a11y_page, live_server):
    page, failures = a11y_page, {}
    for name, path in [("login", "/login"), ("activation-cgu", "/activation"), ("activation-request", "/activation/request"),
                       ("password-forgotten", "/password/forgotten")]:
        page.goto(live_server.url_for(path))
        check(page, name, failures)
    # the same pages showing their error messages
    page.goto(live_server.url_for("/login"))
    page.get_by_role("button", name="Connexion").click()
    check(page, "login-errors", failures)
    page.goto(live_server.url_for("/activation"))
    page.get_by_role("button", name="Activer mon compte").click()
    check(page, "activation-cgu-errors", failures)
    page.goto(live_server.url_for("/activation/request"))
    page.get_by_role("button", name="Envoyer la demande").click()
    check(page, "activation-request-errors", failures)
    assert not failures, report(failures)


def test_each_activation_wizard_step(a11y_page, live_server, patients):
    patient = patients.create(status="pending", email=None, mobile=None)
    _, code = activation_letter.issue(patient.account)
    db.session.commit()
    page, failures = a11y_page, {}

    page.goto(live_server.url_for("/activation"))
    page.get_by_label("En cochant cette case, j'accepte les Conditions Générales d'Utilisation.").check()
    page.get_by_role("button", name="Activer mon compte").click()
    check(page, "activation-step1", failures)
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Code d'activation", exact=True).fill("AAAA-BBBB-CCCC")
    page.get_by_role("button", name="Etape suivante").click()
    check(page, "activation-step1-error", failures)
    page.get_by_label("Code d'activation", exact=True).fill(code)
    page.get_by_role("button", name="Etape suivante").click()

    expect(page).to_have_url(live_server.url_for("/activation/password"))
    check(page, "activation-step2", failures)
    page.get_by_label("Mot de passe", exact=True).fill("Luxembourg2026x")
    page.get_by_label("Confirmation du mot de passe", exact=True).fill("Luxembourg2026x")
    page.get_by_role("button", name="Etape suivante").click()

    expect(page).to_have_url(live_server.url_for("/activation/channel"))
    check(page, "activation-step3", failures)
    page.get_by_label("Mobile", exact=True).check()
    page.get_by_label("Numéro de mobile ou adresse e-mail").fill("+352621555777")
    page.get_by_role("button", name="Valider").click()
    check(page, "activation-step3-code", failures)
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to("+352621555777"))
    page.get_by_role("button", name="Valider").click()

    expect(page).to_have_url(live_server.url_for("/activation/other-means"))
    check(page, "activation-step4", failures)
    page.get_by_role("button", name="Etape suivante").click()

    expect(page).to_have_url(live_server.url_for("/activation/done"))
    check(page, "activation-step5", failures)
    assert not failures, report(failures)


def test_the_wizard_with_a_wrong_code_and_the_pages_in_german_and_english(a11y_page, live_server, patients):
    """The step-3 page after a wrong code (its other-means section open) and the German and English pages."""
    patient = patients.create(status="pending", email=None, mobile=None)
    _, code = activation_letter.issue(patient.account)
    db.session.commit()
    page, failures = a11y_page, {}
    page.goto(live_server.url_for("/activation"))
    page.locator("#accept").check()
    page.get_by_role("button", name="Activer mon compte").click()
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Code d'activation", exact=True).fill(code)
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_label("Mot de passe", exact=True).fill("Luxembourg2026x")
    page.get_by_label("Confirmation du mot de passe", exact=True).fill("Luxembourg2026x")
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_label("Numéro de mobile ou adresse e-mail").fill("+352621555777")
    page.get_by_role("button", name="Valider").click()
    page.get_by_label("Code à usage unique", exact=True).fill("999999" if last_code_sent_to("+352621555777") != "999999" else "888888")
    page.get_by_role("button", name="Valider").click()
    page.get_by_text("Recevoir le code par un autre moyen").click()
    check(page, "activation-step3-wrong-code", failures)
    for language in ("de", "en"):
        page.goto(live_server.url_for(f"/language/{language}?next=/activation/channel"))
        check(page, f"activation-step3-{language}", failures)
        page.goto(live_server.url_for("/login"))
        check(page, f"login-{language}", failures)
    assert not failures, report(failures)


def test_account_pages_after_login(a11y_page, live_server, patients, rp_client):
    patient = patients.create(email="marie@example.lu", mobile="+352621000111")
    page, failures = a11y_page, {}
    page.goto(live_server.url_for("/login"))
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Mot de passe", exact=True).fill(patient.password)
    page.get_by_role("button", name="Connexion").click()
    check(page, "login-channel", failures)
    page.get_by_label("Mobile").check()
    page.get_by_role("button", name="Valider").click()
    check(page, "login-code", failures)
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(patient.account.mobile))
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")
    check(page, "services", failures)

    for name, path in [("account", "/account"), ("account-contact", "/account/contact"),
                       ("account-consents", "/account/consents"), ("account-sessions", "/account/sessions"),
                       ("account-trail", "/account/trail"), ("account-password", "/account/password"),
                       ("account-passkeys", "/account/passkeys"), ("account-passkey-new", "/account/passkeys/new")]:
        page.goto(live_server.url_for(path))
        expect(page).to_have_url(live_server.url_for(path))
        check(page, name, failures)
    assert not failures, report(failures)


def test_the_cgu_page_has_no_duplicate_landmarks(a11y_page, live_server):
    """The CGU section and its scrollable text used to be two regions with the same name."""
    a11y_page.goto(live_server.url_for("/activation"))
    violations = axe_violations(a11y_page, impacts=("minor", "moderate", "serious", "critical"))
    assert not violations, format_violations(violations)
