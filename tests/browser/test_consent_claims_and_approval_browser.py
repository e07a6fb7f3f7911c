"""In Chromium: the consent page asks again for claims asked one by one (FR, DE, EN), "Services
autorisés" lists them, and an admin approves a held self-registration; screenshots and axe."""

import json
import re
from datetime import timedelta

import pyotp
import pytest
from playwright.sync_api import expect

from idp import admin_account, client as clients, clock
from idp.extensions import db
from tests.browser.conftest import last_code_sent_to
from tests.conftest import authorization_url, pkce_pair
from tests.support.axe import axe_violations, format_violations
from tests.support.browser import DEFAULT_TIMEOUT_MS, screenshot

CALLBACK = "https://pharmacie.example.lu/callback"
CODE_DELIVERED = re.compile(r"^https://pharmacie\.example\.lu/callback\?code=")
NAME_AND_BIRTHDATE = json.dumps({"id_token": {"name": None, "birthdate": None}})
WORDING = {
    "fr-FR": ("Autoriser", "votre nom complet", "votre date de naissance"),
    "de-DE": ("Erlauben", "Ihr vollständiger Name", "Ihr Geburtsdatum"),
    "en-GB": ("Allow", "your full name", "your date of birth"),
}


@pytest.fixture
def axe_page(chromium_browser, browser_locale, browser_timezone):
    context = chromium_browser.new_context(locale=browser_locale, timezone_id=browser_timezone, bypass_csp=True)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    yield context.new_page()
    context.close()


def assert_accessible(page) -> None:
    violations = axe_violations(page)
    assert not violations, format_violations(violations)


def log_in(page, live_server, patient) -> None:
    page.locator("input[name=matricule]").fill(patient.matricule)
    page.locator("input[name=password]").fill(patient.password)
    page.locator("form button[type=submit]").first.click()
    page.locator("input[name=code]").fill(last_code_sent_to(patient.account.mobile))
    page.locator("form button[type=submit]").first.click()


@pytest.mark.parametrize("browser_locale", list(WORDING))
def test_claims_asked_alone_after_a_scope_only_consent_are_asked_again_in_words(axe_page, live_server, patients, browser_locale):
    allow, name, birthdate = WORDING[browser_locale]
    page = axe_page
    page.route("https://pharmacie.example.lu/**", lambda route: route.fulfill(status=200, body="ok"))
    pharmacy, _ = clients.create(name="Pharmacie du Centre", redirect_uris=[CALLBACK], scope="openid profile")
    patient = patients.create(email=None)
    db.session.commit()
    _, challenge = pkce_pair()
    page.goto(live_server.url_for(authorization_url(pharmacy.client_id, CALLBACK, challenge, scope="openid")))
    log_in(page, live_server, patient)
    page.get_by_role("button", name=allow).click()
    expect(page).to_have_url(CODE_DELIVERED)

    page.goto(live_server.url_for(authorization_url(pharmacy.client_id, CALLBACK, challenge, scope="openid", claims=NAME_AND_BIRTHDATE)))
    listed = page.locator("ul.scopes li")
    expect(listed.filter(has_text=name)).to_have_count(1)
    expect(listed.filter(has_text=birthdate)).to_have_count(1)
    screenshot(page, f"consent-claims-{browser_locale[:2]}")
    assert_accessible(page)
    page.get_by_role("button", name=allow).click()
    expect(page).to_have_url(CODE_DELIVERED)

    page.goto(live_server.url_for("/account/consents"))
    expect(page.locator("ul.scopes li").filter(has_text=name)).to_have_count(1)
    screenshot(page, f"account-consents-claims-{browser_locale[:2]}")
    assert_accessible(page)


def test_an_admin_approves_a_held_self_registration(axe_page, live_server, client):
    page = axe_page
    token = clients.issue_initial_access_token(clock.now() + timedelta(hours=1), note="test")
    admin = admin_account.create("alice", "Correct-Horse-42-battery")
    db.session.commit()
    totp = pyotp.TOTP(admin_account.totp_seed(admin))
    registered = client.post("/register", headers={"Authorization": f"Bearer {token}"},
                             json={"client_name": "Pharmacie du Centre", "redirect_uris": [CALLBACK], "scope": "openid matricule"}).get_json()

    page.goto(live_server.url_for("/admin/login"))
    page.locator("input[name=username]").fill("alice")
    page.locator("input[name=password]").fill("Correct-Horse-42-battery")
    page.locator("input[name=totp_code]").fill(totp.at(clock.timestamp()))
    page.locator("form button[type=submit]").first.click()
    expect(page.get_by_text("En attente d'approbation")).to_be_visible()
    page.get_by_role("link", name="Pharmacie du Centre").click()
    expect(page.get_by_text("scope:matricule")).to_be_visible()
    screenshot(page, "admin-client-awaiting-approval")
    assert_accessible(page)
    page.get_by_role("button", name="Approuver le client").click()
    expect(page.get_by_text("Client approuvé : il peut désormais utiliser la plateforme.")).to_be_visible()
    db.session.rollback()
    assert clients.get(registered["client_id"]) is not None
