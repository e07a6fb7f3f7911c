"""What a new patient trips over (issue 14), in a real browser, against the guide's screens and words.

The guide (quick-guide-patient-activation-esante.txt) shows the activation as a bar of five named
steps, « Etape précédente » / « Etape suivante » (« Valider » at step 3), then « Connectez-vous »;
after login « Mes services eSanté ». Each test looks at the pages in French and, where the page
changed, in German and English too (screenshots under test-artifacts/screenshots/experience/).
The French screenshots of the wizard, the login, "Mes services", "Mon compte", the trail and the
consent page are copied to docs/screenshots/ for the README's walk-through.
"""

import re
from datetime import timezone
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from playwright.sync_api import expect

from idp import account as accounts, activation_letter, audit, client as clients, credential, sso_session
from idp.extensions import db
from tests.browser.conftest import last_code_sent_to
from tests.browser.test_activation_browser import MOBILE, NEW_PASSWORD, accept_cgu, fill_code_step
from tests.conftest import authorization_url, pkce_pair
from tests.support.browser import publish_to_docs, screenshot

# The guide's step bar, word for word (page "Activation via Portail eSanté").
GUIDE_STEPS = ["Code d'activation", "Mot de passe", "Sécurisation de votre compte", "Autres moyens d'authentification", "Confirmation"]
BLUE, GREEN, WHITE = "rgb(0, 83, 155)", "rgb(30, 107, 51)", "rgb(255, 255, 255)"
RAW_EVENT = re.compile(r"\b[a-z_]+:[a-z_]+\b")


def shot(page, name: str, *, docs: str | None = None) -> None:
    path = screenshot(page, f"experience/{name}")
    if docs:
        publish_to_docs(path, docs)


@pytest.fixture
def pending(patients):
    patient = patients.create(status="pending", email=None, mobile=None, given_name="Rita", family_name="Doe", birth="20160601")
    _, code = activation_letter.issue(patient.account)
    db.session.commit()
    return patient, code


def step_bar(page) -> list[dict]:
    return page.locator("ol.stepper > li").evaluate_all("""items => items.map(item => ({
        text: (() => { const copy = item.cloneNode(true); copy.querySelectorAll('.visually-hidden').forEach(e => e.remove());
                       return copy.textContent.replace(/\\s+/g, ' ').trim(); })(),
        name: item.querySelector('.step-label').textContent.replace(/\\s+/g, ' ').trim(),
        current: item.getAttribute('aria-current'),
        done: item.classList.contains('done'),
        circle: getComputedStyle(item.querySelector('.step-number')).backgroundColor,
        bullet: getComputedStyle(item).listStyleType === 'none' ? '' : getComputedStyle(item).listStyleType}))""")


def check_step_bar(page, current: int) -> None:
    bar = step_bar(page)
    assert [item["text"] for item in bar] == [f"{number} {name}" for number, name in enumerate(GUIDE_STEPS, start=1)], \
        "each step numbered once, named as in the guide"
    assert all(not item["bullet"] for item in bar), "no list numbers on top of the step numbers"
    assert [item["current"] for item in bar] == ["step" if number == current else None for number in range(1, 6)]
    assert [item["done"] for item in bar] == [number < current for number in range(1, 6)]
    for number, item in enumerate(bar, start=1):
        expected = GREEN if number < current else BLUE if number == current else WHITE
        assert item["circle"] == expected, (number, item)
        if number < current:
            assert item["name"].endswith("(terminée)"), "screen readers hear that a step is done"


def same_row(page, first, second) -> bool:
    a, b = first.bounding_box(), second.bounding_box()
    return abs((a["y"] + a["height"] / 2) - (b["y"] + b["height"] / 2)) < 4 and a["x"] < b["x"]


def looks_like_a_button(locator) -> bool:
    style = locator.evaluate("e => { const s = getComputedStyle(e); return [s.backgroundColor, s.color, s.textDecorationLine, s.display] }")
    assert style[:3] == [BLUE, WHITE, "none"] and style[3] != "inline", style  # a box, not an underlined link
    return True


def test_the_wizard_looks_like_the_guide(page, live_server, pending):
    """Item 7: five steps numbered once, the current one highlighted and marked, the finished ones
    marked; the checkbox beside its label; « Etape précédente » and « Etape suivante » side by side;
    « Valider » at step 3; « Connectez-vous » a button."""
    patient, code = pending
    page.goto(live_server.url_for("/activation"))
    checkbox = page.get_by_label("En cochant cette case, j'accepte les Conditions Générales d'Utilisation.")
    label = page.locator("label[for=accept]")
    assert same_row(page, checkbox, label), "the CGU checkbox sits left of its label, not above it"
    shot(page, "wizard-0-cgu", docs="activation-0-cgu")
    checkbox.check()
    page.get_by_role("button", name="Activer mon compte").click()

    check_step_bar(page, 1)
    fill_code_step(page, patient.matricule, code)
    shot(page, "wizard-1-code", docs="activation-1-code")
    page.get_by_role("button", name="Etape suivante").click()

    expect(page).to_have_url(live_server.url_for("/activation/password"))
    check_step_bar(page, 2)
    assert same_row(page, page.get_by_role("button", name="Etape précédente"), page.get_by_role("button", name="Etape suivante"))
    page.get_by_label("Mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Confirmation du mot de passe", exact=True).fill(NEW_PASSWORD)
    shot(page, "wizard-2-password", docs="activation-2-password")
    page.get_by_role("button", name="Etape suivante").click()

    expect(page).to_have_url(live_server.url_for("/activation/channel"))
    check_step_bar(page, 3)
    expect(page.get_by_role("button", name="Recevoir un code")).to_have_count(0)
    page.get_by_label("Mobile", exact=True).check()
    page.get_by_label("Numéro de mobile ou adresse e-mail").fill(MOBILE)
    assert same_row(page, page.get_by_role("button", name="Etape précédente"), page.get_by_role("button", name="Valider"))
    page.get_by_role("button", name="Valider").click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(MOBILE))
    shot(page, "wizard-3-channel", docs="activation-3-channel")
    page.get_by_role("button", name="Valider").click()

    expect(page).to_have_url(live_server.url_for("/activation/other-means"))
    check_step_bar(page, 4)
    shot(page, "wizard-4-other-means", docs="activation-4-other-means")
    page.get_by_role("button", name="Etape suivante").click()

    expect(page).to_have_url(live_server.url_for("/activation/done"))
    check_step_bar(page, 5)
    success = page.get_by_text("Votre activation est terminée!")
    assert success.evaluate("e => getComputedStyle(e).color") == GREEN, "the success message is styled as one"
    page.mouse.move(0, 0)  # not hovered: its resting look
    assert looks_like_a_button(page.get_by_role("link", name="Connectez-vous"))
    shot(page, "wizard-5-done", docs="activation-5-done")


@pytest.mark.parametrize("browser_locale", ["de-DE", "en-GB"])
def test_the_wizard_in_german_and_english_has_the_same_bar(page, live_server, pending, browser_locale):
    patient, code = pending
    language = browser_locale[:2]
    page.goto(live_server.url_for("/activation"))
    page.locator("#accept").check()
    page.locator("#content form button[type=submit]").click()
    expect(page).to_have_url(live_server.url_for("/activation/code"))
    assert page.locator("html").get_attribute("lang") == language
    bar = step_bar(page)
    assert [item["current"] for item in bar] == ["step", None, None, None, None]
    assert not set(item["name"] for item in bar) & set(GUIDE_STEPS), "the steps are translated"
    assert [item["text"].split(" ", 1)[0] for item in bar] == ["1", "2", "3", "4", "5"]
    shot(page, f"wizard-1-code-{language}")
    page.locator("#matricule").fill(patient.matricule)
    page.locator("#activation_code").fill(code)
    page.locator(".step-actions button.next").click()
    expect(page).to_have_url(live_server.url_for("/activation/password"))
    assert step_bar(page)[0]["done"]
    shot(page, f"wizard-2-password-{language}")


def test_a_wrong_code_at_step_3_keeps_the_choice_and_says_where_the_code_went(page, live_server, pending):
    """Item 9: the channel and the destination stay filled in, and the page tells where the code went."""
    patient, code = pending
    accept_cgu(page, live_server)
    fill_code_step(page, patient.matricule, code)
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_label("Mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Confirmation du mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_label("E-mail", exact=True).check()
    page.get_by_label("Numéro de mobile ou adresse e-mail").fill("rita.parent@example.lu")
    page.get_by_role("button", name="Valider").click()
    wrong = "000000" if last_code_sent_to("rita.parent@example.lu") != "000000" else "111111"
    page.get_by_label("Code à usage unique", exact=True).fill(wrong)
    page.get_by_role("button", name="Valider").click()

    expect(page.get_by_text("Code incorrect.")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("envoyé par e-mail à r•••@example.lu")
    page.get_by_text("Recevoir le code par un autre moyen").click()
    expect(page.get_by_label("E-mail", exact=True)).to_be_checked()
    expect(page.get_by_label("Numéro de mobile ou adresse e-mail")).to_have_value("rita.parent@example.lu")
    shot(page, "wizard-3-wrong-code")


def test_activation_from_an_applications_login_page_goes_back_to_the_application(page, live_server, pending, rp_client):
    """Item 4: « J'active mon compte » on the login page an application sent the patient to keeps
    its request through the wizard; « Connectez-vous » lands back in the application."""
    patient, code = pending
    verifier, challenge = pkce_pair()
    callbacks = []
    page.route("https://dsp.example.lu/**", lambda route: (callbacks.append(route.request.url), route.fulfill(body="ok")))
    page.goto(live_server.url_for(authorization_url(rp_client.client_id, "https://dsp.example.lu/callback", challenge)))
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion — PATIENT")
    page.get_by_role("link", name="J'active mon compte").click()
    page.get_by_label("En cochant cette case, j'accepte les Conditions Générales d'Utilisation.").check()
    page.get_by_role("button", name="Activer mon compte").click()
    fill_code_step(page, patient.matricule, code)
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_label("Mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Confirmation du mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_label("Mobile", exact=True).check()
    page.get_by_label("Numéro de mobile ou adresse e-mail").fill(MOBILE)
    page.get_by_role("button", name="Valider").click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(MOBILE))
    page.get_by_role("button", name="Valider").click()
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_role("link", name="Connectez-vous").click()
    page.wait_for_url("https://dsp.example.lu/**")
    answer = {k: v[0] for k, v in parse_qs(urlsplit(callbacks[-1]).query).items()}
    token = requests.post(live_server.url_for("/token"), data={
        "grant_type": "authorization_code", "code": answer["code"], "redirect_uri": "https://dsp.example.lu/callback",
        "code_verifier": verifier}, auth=(rp_client.client_id, rp_client.plain_secret), timeout=10)
    assert token.status_code == 200 and "id_token" in token.json()


def log_in(page, live_server, patient, next_path: str | None = None) -> None:
    page.goto(live_server.url_for(next_path or "/login"))
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Mot de passe", exact=True).fill(patient.password)
    page.get_by_role("button", name="Connexion").click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(patient.account.mobile))
    page.get_by_role("button", name="Valider").click()


@pytest.mark.settings(DEMO_DSP_VIEWER_URL="http://127.0.0.1:6123", SERVICES=[
    {"name": {"fr": "Dossier de Soins Partagé (DSP)", "de": "Gemeinsame Patientenakte (DSP)", "en": "Shared Care Record (DSP)"},
     "url": "{DEMO_DSP_VIEWER_URL}/", "description": {"fr": "Votre dossier", "de": "Ihre Akte", "en": "Your record"}},
])
def test_mes_services_leads_to_mon_compte_in_the_patients_language(page, live_server, patients):
    """Item 6: a menu a patient finds without help, the guide's names; services in the page's
    language; the DSP link follows the configured viewer URL."""
    patient = patients.create(email=None, mobile="+352621000111", given_name="Hector", family_name="Doe", birth="19840615")
    page.goto(live_server.url_for("/login"))
    shot(page, "login", docs="login")
    log_in(page, live_server, patient)
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")
    menu = page.get_by_role("navigation", name="Menu principal")
    expect(menu.get_by_role("link", name="Mes services eSanté")).to_have_attribute("aria-current", "page")
    dsp = page.get_by_role("link", name="Dossier de Soins Partagé (DSP)")
    expect(dsp).to_have_attribute("href", "http://127.0.0.1:6123/")
    shot(page, "services", docs="services")
    menu.get_by_role("link", name="Mon compte").click()
    expect(page).to_have_url(live_server.url_for("/account"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Mon compte")
    shot(page, "account", docs="account")
    for language, name, account_label in (("de", "Gemeinsame Patientenakte (DSP)", "Mein Konto"), ("en", "Shared Care Record (DSP)", "My account")):
        page.locator(".languages a", has_text=language.upper()).click()
        page.goto(live_server.url_for("/services"))
        expect(page.get_by_role("link", name=name)).to_have_attribute("href", "http://127.0.0.1:6123/")
        expect(page.get_by_role("navigation").get_by_role("link", name=account_label).first).to_be_visible()
        shot(page, f"services-{language}")


def test_a_patient_without_password_creates_one(page, live_server, patients):
    """Item 3: an account activated through MyGuichet.lu has no password; "Mon compte" offers to
    create one with a code sent to its channel, and the patient then logs in with it."""
    patient = patients.create(status="pending", email="filat@example.lu", mobile="+352621000103", given_name="Filat", family_name="D.")
    accounts.activate(patient.account)
    accounts.mark_channel_verified(patient.account, "sms")
    db.session.commit()
    assert not credential.has_password(patient.account)
    with live_server.app.test_request_context("/"):
        sso_session.start(patient.account.id, amr=["hwk"], acr="http://eidas.europa.eu/LoA/high")
        from flask import g
        raw = g.sso_cookie
        db.session.commit()
    page.context.add_cookies([{"name": "esante_sso", "value": raw, "url": live_server.url}])
    page.goto(live_server.url_for("/account"))
    page.get_by_role("link", name="Créer un mot de passe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Créer un mot de passe")
    expect(page.get_by_label("Mot de passe actuel")).to_have_count(0)
    shot(page, "password-create")
    page.get_by_role("button", name="Recevoir un code").click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to("+352621000103"))
    page.get_by_label("Nouveau mot de passe").fill("Luxembourg2026x")
    page.get_by_label("Confirmation du mot de passe").fill("Luxembourg2026x")
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("status")).to_contain_text("Votre mot de passe a été créé")
    expect(page.get_by_role("link", name="Changer mon mot de passe")).to_be_visible()
    page.context.clear_cookies()
    page.goto(live_server.url_for("/login"))
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Mot de passe", exact=True).fill("Luxembourg2026x")
    page.get_by_role("button", name="Connexion").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Code à usage unique")


@pytest.fixture
def third_party(app):
    registered, _ = clients.create(
        name="MyDSP", redirect_uris=["https://mydsp.example.lu/callback"], first_party=False,
        scope="openid profile offline_access delegations", grant_types=["authorization_code", "refresh_token"],
        extra_metadata={"client_name#de": "MyDSP (App)", "client_name#en": "MyDSP (app)"},
    )
    db.session.commit()
    return registered


def test_consent_services_autorises_and_the_trail_speak_plain_words(page, live_server, patients, third_party):
    """Items 5 and 8: the scopes in the consent page's words on "Services autorisés"; each trail
    event a sentence with the service's name and the means of login, at Luxembourg time; in DE and EN too."""
    patient = patients.create(email=None, mobile="+352621000111", given_name="Hector", family_name="Doe", birth="19840615")
    _, challenge = pkce_pair()
    page.route("https://mydsp.example.lu/**", lambda route: route.fulfill(body="ok"))
    log_in(page, live_server, patient, authorization_url(third_party.client_id, "https://mydsp.example.lu/callback", challenge,
                                                          scope="openid profile offline_access delegations"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("MyDSP demande l'accès à votre compte eSanté")
    consent_words = page.locator("ul.scopes li").all_inner_texts()
    assert consent_words and not {"openid", "profile", "offline_access", "delegations"} & set(consent_words)
    shot(page, "consent", docs="consent")
    page.get_by_role("button", name="Autoriser").click()
    page.wait_for_url("https://mydsp.example.lu/**")

    page.goto(live_server.url_for("/account/consents"))
    listed = page.locator("table ul.scopes li").all_inner_texts()
    assert listed == consent_words, "the same words as on the consent page"
    shot(page, "consents")

    page.goto(live_server.url_for("/account/trail"))
    rows = page.locator("#trail tbody tr").evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")
    texts = [cell for row in rows for cell in row]
    assert not [text for text in texts if RAW_EVENT.search(text)], "no raw event code"
    assert ["Connexion à MyDSP avec votre mot de passe et un code reçu par SMS", "MyDSP"] in [row[1:3] for row in rows]
    assert any(row[1] == "Code à usage unique envoyé par SMS pour vous connecter" for row in rows)
    db.session.rollback()
    newest = audit.trail(patient.account.id)[0]
    luxembourg = newest.occurred_at.replace(tzinfo=timezone.utc).astimezone(ZoneInfo("Europe/Luxembourg"))
    assert rows[0][0] == luxembourg.strftime("%d/%m/%Y %H:%M"), "the newest row at Luxembourg time"
    expect(page.get_by_role("columnheader", name="Date (heure de Luxembourg)")).to_be_visible()
    shot(page, "trail", docs="trail")

    for language, service in (("de", "MyDSP (App)"), ("en", "MyDSP (app)")):
        page.locator(".languages a", has_text=language.upper()).click()
        page.goto(live_server.url_for("/account/trail"))
        rows = page.locator("#trail tbody tr").evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")
        assert not [cell for row in rows for cell in row if RAW_EVENT.search(cell)]
        assert service in [row[2] for row in rows], "the service's name in the page's language"
        assert not [row for row in rows if row[1].startswith(("Connexion", "Code à usage unique"))], "sentences translated"
        shot(page, f"trail-{language}")
        page.goto(live_server.url_for("/account/consents"))
        assert not {"openid", "profile", "offline_access", "delegations"} & set(page.locator("table ul.scopes li").all_inner_texts())
        shot(page, f"consents-{language}")


def test_no_page_asks_for_a_missing_favicon(page, live_server, patients):
    """Item 12: every page names an icon that exists; none answers 404."""
    missing = []
    page.on("response", lambda response: missing.append(response.url) if response.status >= 400 else None)
    for path in ("/login", "/activation", "/activation/request", "/password/forgotten"):
        page.goto(live_server.url_for(path))
        page.wait_for_load_state("networkidle")
        icon = page.locator("link[rel=icon]").get_attribute("href")
        answer = requests.get(live_server.url_for(icon), timeout=10)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("image/svg+xml")
    assert not missing, missing
