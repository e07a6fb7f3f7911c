"""The guide's minor scenario end to end in a real browser ("Pour un enfant mineur", "Assistant DSP
d'un enfant mineur", "Accès au DSP d'un enfant mineur"): the parent activates the child's account
with the child's letter, logs in as the child, adds themself as Assistant DSP by matricule, logs
out, logs in with their own account at the DSP viewer and picks the child under "Accéder aux autres
dossiers patient"; the DSP viewer receives tokens for the child whose ``act`` names the parent."""

from datetime import date
from urllib.parse import parse_qs, urlsplit

import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import expect

from idp import activation_letter, clock, delegation as delegations
from idp.extensions import db
from tests.browser.conftest import last_code_sent_to
from tests.browser.test_accessibility import a11y_page, check, report  # noqa: F401  (a11y_page is a fixture)
from tests.browser.test_activation_browser import NEW_PASSWORD, accept_cgu, fill_code_step
from tests.conftest import authorization_url, pkce_pair
from tests.support.browser import screenshot

FAMILY_MOBILE = "+352621555777"
CALLBACK = "https://dsp.example.lu/callback"


def log_in(page, matricule: str, password: str, mobile: str) -> None:
    page.get_by_label("Matricule", exact=True).fill(matricule)
    page.get_by_label("Mot de passe", exact=True).fill(password)
    page.get_by_role("button", name="Connexion").click()
    if page.get_by_text("Code à usage unique à recevoir par").is_visible():
        page.get_by_label("Mobile").check()
        page.get_by_role("button", name="Valider").click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(mobile))
    page.get_by_role("button", name="Valider").click()


def test_a_parent_becomes_the_childs_assistant_and_opens_the_childs_record(page, live_server, patients, rp_client):
    today = clock.now().date()
    parent = patients.create(given_name="Hector", family_name="Doe", birth="19800105", email=None, mobile="+352621000001")
    child = patients.create(given_name="Rita", family_name="Doe", birth=date(today.year - 10, 3, 15).strftime("%Y%m%d"),
                            status="pending", email=None, mobile=None)
    _, letter_code = activation_letter.issue(child.account)
    db.session.commit()

    # "Pour un enfant mineur": the parent activates the child's account with the child's letter.
    accept_cgu(page, live_server)
    fill_code_step(page, child.matricule, letter_code)
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_label("Mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Confirmation du mot de passe", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_label("Mobile", exact=True).check()
    page.get_by_label("Numéro de mobile ou adresse e-mail").fill(FAMILY_MOBILE)
    page.get_by_role("button", name="Valider").click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(FAMILY_MOBILE))
    page.get_by_role("button", name="Valider").click()
    page.get_by_role("button", name="Etape suivante").click()
    expect(page.get_by_text("Votre activation est terminée!")).to_be_visible()

    # "Assistant DSP d'un enfant mineur": logged in as the child, Assistants → Ajouter → Numéro assuré.
    page.get_by_role("link", name="Connectez-vous").click()
    log_in(page, child.matricule, NEW_PASSWORD, FAMILY_MOBILE)
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")
    page.goto(live_server.url_for("/account"))
    page.get_by_role("link", name="Assistants").click()
    page.get_by_role("link", name="Ajouter").click()
    page.get_by_label("Numéro assuré").fill(parent.matricule)
    page.get_by_role("button", name="Rechercher").click()
    expect(page.get_by_text("H. Doe")).to_be_visible()
    expect(page.get_by_text("Hector")).to_have_count(0)
    screenshot(page, "minor-1-assistant-found")
    page.get_by_role("link", name="Choisir H. Doe").click()
    expect(page.get_by_label("Type")).to_have_value("assistant_dsp")
    expect(page.get_by_label("Rôle")).to_have_value("")
    page.get_by_label("Votre mot de passe, pour confirmer").fill(NEW_PASSWORD)
    screenshot(page, "minor-2-assistant-type")
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_text("H. Doe est maintenant votre assistant DSP.")).to_be_visible()
    screenshot(page, "minor-3-assistant-added")
    page.goto(live_server.url_for("/services"))
    page.get_by_role("button", name="Se déconnecter").click()

    # "Accès au DSP d'un enfant mineur": the parent logs in with their own account at the DSP viewer.
    verifier, challenge = pkce_pair()
    callbacks = []
    page.route("https://dsp.example.lu/**", lambda route: (callbacks.append(route.request.url), route.fulfill(body="ok")))
    page.goto(live_server.url_for(authorization_url(rp_client.client_id, CALLBACK, challenge, prompt="select_account")))
    log_in(page, parent.matricule, parent.password, parent.account.mobile)
    expect(page.get_by_role("heading", level=1)).to_have_text("Accéder aux autres dossiers patient")
    expect(page.get_by_role("button", name="Mon dossier : Hector Doe")).to_be_visible()
    screenshot(page, "minor-4-select-patient")
    page.get_by_role("button", name="Rita Doe").click()
    page.wait_for_url("https://dsp.example.lu/**")

    answer = {k: v[0] for k, v in parse_qs(urlsplit(callbacks[-1]).query).items()}
    response = requests.post(live_server.url_for("/token"), data={
        "grant_type": "authorization_code", "code": answer["code"], "redirect_uri": CALLBACK, "code_verifier": verifier},
        auth=(rp_client.client_id, rp_client.plain_secret), timeout=10)
    assert response.status_code == 200, response.text
    keys = KeySet.import_key_set(requests.get(live_server.url_for("/jwks.json"), timeout=10).json())
    db.session.rollback()
    for name in ("id_token", "access_token"):
        claims = jwt.decode(response.json()[name], keys, algorithms=["RS256", "ES256"]).claims
        assert claims["sub"] == child.account.subject, name
        assert claims["act"] == {"sub": parent.account.subject}, name
    userinfo = requests.get(live_server.url_for("/userinfo"), headers={"Authorization": "Bearer " + response.json()["access_token"]}, timeout=10)
    assert userinfo.json()["name"] == "Rita Doe"


def test_the_assistant_trail_and_selection_pages_have_no_serious_accessibility_violation(a11y_page, live_server, patients, rp_client):
    page, failures = a11y_page, {}
    parent = patients.create(given_name="Hector", family_name="Doe", birth="19800105", email=None, mobile="+352621000001")
    mother = patients.create(given_name="Anna", family_name="Doe", birth="19820303", email=None, mobile="+352621000003")
    child = patients.create(given_name="Rita", family_name="Doe", birth="20160315", email=None, mobile=FAMILY_MOBILE, password="Ecole2026okay")
    delegations.grant(child.account, parent.account, created_by=child.account)
    db.session.commit()
    page.goto(live_server.url_for("/login"))
    log_in(page, child.matricule, child.password, FAMILY_MOBILE)
    page.goto(live_server.url_for("/account/assistants"))
    check(page, "assistants", failures)
    page.get_by_role("link", name="Ajouter").click()
    page.get_by_label("Numéro assuré").fill("1893120105732")
    page.get_by_role("button", name="Rechercher").click()
    check(page, "assistants-not-found", failures)
    page.get_by_label("Numéro assuré").fill(mother.matricule)
    page.get_by_role("button", name="Rechercher").click()
    check(page, "assistants-found", failures)
    page.get_by_role("link", name="Choisir A. Doe").click()
    check(page, "assistants-new", failures)
    page.goto(live_server.url_for("/account/trail"))
    check(page, "trail", failures)
    page.goto(live_server.url_for("/services"))
    page.get_by_role("button", name="Se déconnecter").click()
    _, challenge = pkce_pair()
    page.goto(live_server.url_for(authorization_url(rp_client.client_id, CALLBACK, challenge, prompt="select_account")))
    log_in(page, parent.matricule, parent.password, parent.account.mobile)
    expect(page.get_by_role("heading", level=1)).to_have_text("Accéder aux autres dossiers patient")
    check(page, "select-patient", failures)
    assert failures == {}, report(failures)
