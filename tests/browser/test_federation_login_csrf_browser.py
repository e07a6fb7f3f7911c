"""Unsolicited MyGuichet answers in Chromium, posted from another site as MyGuichet.lu (or an
attacker's page) posts them: the continuation cookie survives the cross-site POST and its
redirect (SameSite=Lax), and a browser where another person is logged in asks before changing
account, in French, German and English."""

import html

import pytest
from playwright.sync_api import expect

from idp import federated_identity, national_id_consent
from idp.extensions import db
from idp.federation.sandbox.citizens import Citizen
from tests.browser.conftest import last_code_sent_to
from tests.federation.conftest import federation, hidden_fields, key_folder  # noqa: F401  (fixtures)
from tests.support.axe import axe_violations, format_violations
from tests.support.browser import DEFAULT_TIMEOUT_MS, screenshot

OTHER_SITE = "http://other-site.example"  # not the provider's site (127.0.0.1): the POST is cross-site


def serve_auto_post(page, federation, answer: dict) -> None:
    """A page of another site that posts ``answer`` to our assertion consumer as soon as it loads."""
    fields = "".join(f'<input type="hidden" name="{name}" value="{html.escape(value)}">' for name, value in answer.items())
    body = (f'<form method="post" action="{federation.provider.url}/saml/myguichet/acs" id="f">{fields}</form>'
            '<script>document.getElementById("f").submit()</script>')
    page.route(OTHER_SITE + "/**", lambda route: route.fulfill(status=200, content_type="text/html", body=body))


def unsolicited_answer(federation, subject: str) -> dict:
    page = federation.myguichet.app.test_client().post("/idp-initiated", data={"citizen": subject, "device": "token"})
    return hidden_fields(page.get_data(as_text=True))


def myguichet_user(federation, patients, subject: str, given_name: str, family_name: str, mobile: str):
    patient = patients.create(given_name=given_name, family_name=family_name, mobile=mobile, email=None)
    federation.myguichet.add_citizen(Citizen(subject, given_name, family_name, patient.matricule, None, None))
    national_id_consent.give(patient.account.id)
    federated_identity.link(patient.account.id, "myguichet", subject)
    db.session.commit()
    return patient


def test_an_answer_posted_from_another_site_logs_in_the_browser_that_posted_it(page, federation, patients):
    myguichet_user(federation, patients, "mg-marie", "Marie", "Schmit", "+352621000222")
    serve_auto_post(page, federation, unsolicited_answer(federation, "mg-marie"))
    page.goto(OTHER_SITE + "/dsp")
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")


WORDING = {
    "fr-FR": ("Changer de compte ?", "Rester connecté(e) en tant que R. Doe", "Mes services eSanté"),
    "de-DE": ("Konto wechseln?", "Als R. Doe angemeldet bleiben", "Meine eSanté-Dienste"),
    "en-GB": ("Switch account?", "Stay logged in as R. Doe", "My eSanté services"),
}


@pytest.fixture
def axe_page(chromium_browser, browser_locale, browser_timezone):
    """A page whose context lets axe-core be injected (the provider's CSP allows no foreign script)."""
    context = chromium_browser.new_context(locale=browser_locale, timezone_id=browser_timezone, bypass_csp=True)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    yield context.new_page()
    context.close()


@pytest.mark.parametrize("browser_locale", list(WORDING))
def test_an_answer_for_another_person_asks_before_replacing_the_session(axe_page, federation, patients, browser_locale):
    page = axe_page
    heading, stay, services = WORDING[browser_locale]
    victim = patients.create(given_name="Rita", family_name="Doe", mobile="+352621999888", email=None)
    myguichet_user(federation, patients, "mg-attacker", "Eve", "Mallory", "+352621000333")
    page.goto(federation.provider.url_for("/login"))
    page.locator("input[name=matricule]").fill(victim.matricule)
    page.locator("input[name=password]").fill(victim.password)
    page.locator("form button[type=submit]").first.click()
    page.locator("input[name=code]").fill(last_code_sent_to(victim.account.mobile))
    page.locator("form button[type=submit]").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(services)

    serve_auto_post(page, federation, unsolicited_answer(federation, "mg-attacker"))
    page.goto(OTHER_SITE + "/attack")
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    expect(page.get_by_text("E. Mallory").first).to_be_visible()
    screenshot(page, f"federation-switch-account-{browser_locale[:2]}")
    violations = axe_violations(page)
    assert not violations, format_violations(violations)
    page.get_by_role("button", name=stay).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(services)
    page.goto(federation.provider.url_for("/account"))
    expect(page.get_by_text(victim.matricule)).to_be_visible()
