"""Federation in a real browser (Debian Chromium) against the pysaml2 sandbox stand-ins served on
free loopback ports: activation and login via MyGuichet, consent revocation, LuxTrust linking in
the wizard's step 4 and in the settings, "Connexion" with LuxTrust, step-up from ``acr_values``."""

from playwright.sync_api import expect

from idp import activation_letter, federated_identity, national_id_consent
from idp.extensions import db
from idp.federation.sandbox.citizens import Citizen
from tests.browser.conftest import last_code_sent_to
from tests.browser.test_activation_browser import accept_cgu, fill_code_step
from tests.conftest import authorization_url, pkce_pair
from tests.federation.conftest import federation, key_folder  # noqa: F401  (fixtures)
from tests.support.browser import screenshot

CONSENT = "Je consens à ce que MyGuichet.lu partage mon identifiant national avec l'Agence eSanté."
CGU = "En cochant cette case, je reconnais avoir lu et accepté"
HIGH = "http://eidas.europa.eu/LoA/high"


def at(federation, path: str) -> str:
    return federation.provider.url_for(path)


def test_activation_via_myguichet_with_consent_and_cgu(page, federation, patients):
    patient = patients.create(status="pending", email=None, mobile=None)
    federation.myguichet.add_citizen(Citizen("mg-marie", "Marie", "Schmit", patient.matricule, "marie.mg@example.lu", "+352621555444"))
    page.goto(federation.myguichet.server.url_for("/"))
    screenshot(page, "myguichet-1-mes-donnees")
    page.get_by_role("button", name="Accéder à mon DSP").click()

    expect(page).to_have_url(at(federation, "/federation/myguichet/consent"))
    expect(page.get_by_text("Ce consentement est révocable à tout moment dans l'onglet Paramètres.")).to_be_visible()
    page.get_by_label(CONSENT).check()
    screenshot(page, "myguichet-2-consent")
    page.get_by_role("button", name="Valider").click()

    expect(page).to_have_url(at(federation, "/federation/myguichet/cgu"))
    page.get_by_label(CGU).check()
    screenshot(page, "myguichet-3-cgu")
    page.get_by_role("button", name="Valider").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Votre compte eSanté est activé !")
    screenshot(page, "myguichet-4-activated")
    page.get_by_role("link", name="Accéder à mes services eSanté").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")
    db.session.rollback()
    db.session.refresh(patient.account)
    assert patient.account.is_active and patient.account.email == "marie.mg@example.lu"


def test_login_via_myguichet_then_the_consent_is_revoked(page, federation, patients):
    patient = patients.create()
    federation.myguichet.add_citizen(Citizen("mg-marie", "Marie", "Schmit", patient.matricule, None, None))
    national_id_consent.give(patient.account.id)
    federated_identity.link(patient.account.id, "myguichet", "mg-marie")
    db.session.commit()

    page.goto(at(federation, "/login"))
    page.get_by_role("link", name="Connexion avec MyGuichet.lu").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("MyGuichet.lu")
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")

    page.goto(at(federation, "/account"))
    page.get_by_role("link", name="Paramètres").click()
    expect(page.get_by_text("Vous avez consenti le")).to_be_visible()
    screenshot(page, "myguichet-5-settings")
    page.get_by_role("button", name="Révoquer mon consentement").click()
    expect(page.get_by_text("Votre consentement a été révoqué")).to_be_visible()
    screenshot(page, "myguichet-6-revoked")
    db.session.rollback()
    assert national_id_consent.current(patient.account.id) is None
    assert federated_identity.find("myguichet", "mg-marie") is None


def test_luxtrust_is_linked_in_step_4_of_the_activation_wizard(page, federation, patients):
    patient = patients.create(status="pending", email=None, mobile=None)
    _, code = activation_letter.issue(patient.account)
    db.session.commit()
    federation.luxtrust.add_citizen(Citizen("lt-marie", "Marie", "Schmit"))
    live_server = federation.provider
    accept_cgu(page, live_server)
    fill_code_step(page, patient.matricule, code)
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_label("Mot de passe", exact=True).fill("Luxembourg2026x")
    page.get_by_label("Confirmation du mot de passe", exact=True).fill("Luxembourg2026x")
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_label("Mobile", exact=True).check()
    page.get_by_label("Numéro de mobile ou adresse e-mail").fill("+352621555777")
    page.get_by_role("button", name="Valider").click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to("+352621555777"))
    page.get_by_role("button", name="Valider").click()

    expect(page).to_have_url(at(federation, "/activation/other-means"))
    page.get_by_role("link", name="Associer un produit LuxTrust").click()
    page.get_by_label("LuxTrust Mobile").check()
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url(at(federation, "/activation/other-means"))
    expect(page.get_by_text("Un produit LuxTrust est associé à votre compte.")).to_be_visible()
    screenshot(page, "luxtrust-1-wizard-step-4")
    page.get_by_role("button", name="Etape suivante").click()
    expect(page.get_by_text("Votre activation est terminée!")).to_be_visible()
    db.session.rollback()
    assert federated_identity.find("luxtrust", "lt-marie").account_id == patient.account.id


def test_luxtrust_is_linked_in_the_settings_then_used_to_log_in(page, federation, patients):
    patient = patients.create(email=None)
    federation.luxtrust.add_citizen(Citizen("lt-marie", "Marie", "Schmit"))
    page.goto(at(federation, "/login"))
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Mot de passe", exact=True).fill(patient.password)
    page.get_by_role("button", name="Connexion", exact=True).click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(patient.account.mobile))
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")

    page.goto(at(federation, "/account/settings"))
    page.get_by_role("link", name="Associer un produit LuxTrust").click()
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_text("Votre produit LuxTrust est associé à votre compte eSanté.")).to_be_visible()
    expect(page.get_by_role("button", name="Dissocier mon produit LuxTrust")).to_be_visible()
    screenshot(page, "luxtrust-2-settings")

    page.context.clear_cookies()
    page.goto(at(federation, "/login"))
    screenshot(page, "luxtrust-3-login-page")
    page.get_by_role("link", name="Connexion avec LuxTrust").click()
    page.get_by_label("LuxTrust Smartcard").check()
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")


def test_acr_values_high_step_up_through_luxtrust(page, federation, patients, rp_client):
    patient = patients.create(email=None)
    federation.luxtrust.add_citizen(Citizen("lt-marie", "Marie", "Schmit"))
    federated_identity.link(patient.account.id, "luxtrust", "lt-marie")
    db.session.commit()
    page.route("https://dsp.example.lu/**", lambda route: route.fulfill(body="ok"))
    _, challenge = pkce_pair()
    page.goto(at(federation, authorization_url(rp_client.client_id, "https://dsp.example.lu/callback", challenge, acr_values=HIGH)))
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Mot de passe", exact=True).fill(patient.password)
    page.get_by_role("button", name="Connexion", exact=True).click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(patient.account.mobile))
    page.get_by_role("button", name="Valider").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("LuxTrust")  # step-up: substantial is not enough
    expect(page.get_by_label("LuxTrust Token")).to_have_count(0)
    screenshot(page, "luxtrust-4-step-up")
    page.get_by_label("LuxTrust Smartcard").check()
    with page.expect_request("https://dsp.example.lu/**") as callback:  # page.route misses this cross-origin redirect chain
        page.get_by_role("button", name="Se connecter").click()
    assert "code=" in callback.value.url and "error" not in callback.value.url
