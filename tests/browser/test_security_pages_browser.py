"""Issue 13's page changes in a real browser, in French, German and English: the "remember this
device" box of the login page (a session cookie unless it is ticked), the password asked before
an Assistant DSP is added, and a refused code send told on the page."""

import pytest
from playwright.sync_api import expect

from idp import messaging
from idp.extensions import db
from tests.browser.conftest import last_code_sent_to
from tests.support.browser import screenshot

WORDS = {
    "fr-FR": {"matricule": "Matricule", "password": "Mot de passe", "login": "Connexion", "remember": "Se souvenir de cet appareil",
              "code": "Code à usage unique", "confirm": "Valider", "confirm_password": "Votre mot de passe, pour confirmer",
              "insurance_number": "Numéro assuré", "search": "Rechercher", "receive": "Recevoir un code", "wait": "Veuillez patienter"},
    "de-DE": {"matricule": "Matrikelnummer", "password": "Passwort", "login": "Anmeldung", "remember": "Dieses Gerät merken",
              "code": "Einmalcode", "confirm": "Bestätigen", "confirm_password": "Ihr Passwort, zur Bestätigung",
              "insurance_number": "Versichertennummer", "search": "Suchen", "receive": "Code erhalten", "wait": "Bitte warten Sie"},
    "en-GB": {"matricule": "National ID number", "password": "Password", "login": "Log in", "remember": "Remember this device",
              "code": "One-time code", "confirm": "Confirm", "confirm_password": "Your password, to confirm",
              "insurance_number": "Insurance number", "search": "Search", "receive": "Receive a code", "wait": "Please wait"},
}
LOCALES = list(WORDS)


def log_in(page, live_server, patient, words, remember: bool) -> None:
    page.goto(live_server.url_for("/login"))
    page.get_by_label(words["matricule"], exact=True).fill(patient.matricule)
    page.get_by_label(words["password"], exact=True).fill(patient.password)
    box = page.get_by_label(words["remember"])
    expect(box).not_to_be_checked()
    if remember:
        box.check()
    page.get_by_role("button", name=words["login"], exact=True).click()
    page.get_by_label(words["code"], exact=True).fill(last_code_sent_to(patient.account.mobile))
    page.get_by_role("button", name=words["confirm"]).click()
    page.wait_for_url(live_server.url_for("/services"))


def sso_cookie(page) -> dict:
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "esante_sso"]
    return cookie


@pytest.mark.parametrize("browser_locale", LOCALES)
def test_the_login_page_offers_to_remember_the_device_unticked(page, live_server, patients, browser_locale):
    words = WORDS[browser_locale]
    patient = patients.create(email=None)
    page.goto(live_server.url_for("/login"))
    expect(page.get_by_label(words["remember"])).to_be_visible()
    screenshot(page, f"security-login-remember-{browser_locale}")
    log_in(page, live_server, patient, words, remember=False)
    assert sso_cookie(page)["expires"] == -1, "a session cookie: gone when the browser closes"


@pytest.mark.parametrize("browser_locale", ["fr-FR"])
def test_a_ticked_box_keeps_the_session_across_a_browser_restart(page, live_server, patients, browser_locale):
    patient = patients.create(email=None)
    log_in(page, live_server, patient, WORDS[browser_locale], remember=True)
    assert sso_cookie(page)["expires"] > 0, "kept on disk for the session's lifetime"


@pytest.mark.parametrize("browser_locale", LOCALES)
def test_adding_an_assistant_asks_for_the_password(page, live_server, patients, browser_locale):
    words = WORDS[browser_locale]
    owner = patients.create(email=None, mobile="+352621000601")
    helper = patients.create(given_name="Hector", family_name="Doe", birth="19800105", email=None, mobile="+352621000602")
    log_in(page, live_server, owner, words, remember=False)
    page.goto(live_server.url_for("/account/assistants/add"))
    page.get_by_label(words["insurance_number"]).fill(helper.matricule)
    page.get_by_role("button", name=words["search"]).click()
    page.get_by_role("link", name="H. Doe").click()
    password = page.get_by_label(words["confirm_password"])
    expect(password).to_be_visible()
    password.fill(owner.password)
    screenshot(page, f"security-assistant-confirm-{browser_locale}")
    page.get_by_role("button", name=words["confirm"]).click()
    expect(page.get_by_text("H. Doe").first).to_be_visible()
    assert "Doe" in last_message_to(owner.account.mobile)


def last_message_to(destination: str) -> str:
    db.session.rollback()
    return messaging.outbox_messages(destination)[-1].body


@pytest.mark.parametrize("browser_locale", LOCALES)
def test_a_refused_send_is_told_on_the_page(page, live_server, patients, browser_locale):
    words = WORDS[browser_locale]
    patient = patients.create(email=None)
    for _ in range(2):
        page.goto(live_server.url_for("/password/forgotten"))
        page.get_by_label(words["matricule"], exact=True).fill(patient.matricule)
        page.get_by_role("button", name=words["receive"]).click()
    expect(page.get_by_text(words["wait"])).to_be_visible()
    screenshot(page, f"security-send-refused-{browser_locale}")
