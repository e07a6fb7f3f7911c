"""Real WebAuthn ceremonies in Chromium with a virtual authenticator (Chrome DevTools Protocol
``WebAuthn.addVirtualAuthenticator`` through Playwright): register, log in with the button and
through the matricule field's autofill (conditional mediation), a wrong origin refused, a deleted
credential refused, a counter rollback flagged, an admin's passkey login.

WebAuthn refuses IP addresses as RP IDs, so the provider is served as http://localhost:<port>
(a secure context, RP ID ``localhost``).
"""

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from idp import admin_account, audit, passkey, sso_session
from idp.extensions import db
from tests.browser.conftest import last_code_sent_to
from tests.support.browser import LiveServer, publish_to_docs, screenshot

# Records each navigator.credentials.get() call's mediation, so a test can tell the autofill's
# conditional request from the button's.
RECORD_MEDIATION = """
(() => {
  const get = navigator.credentials.get.bind(navigator.credentials);
  navigator.credentials.get = (options) => { window.recordMediation(options.mediation || "optional"); return get(options); };
})();
"""


@pytest.fixture
def provider(app):
    server = LiveServer(app)
    server.url = f"http://localhost:{server.port}"
    app.config["ISSUER"] = server.url
    yield server
    server.stop()


# Chromium's virtual authenticator answers a conditional (autofill) request at once: the tests of
# the button take the autofill away, as in a browser without conditional mediation.
NO_AUTOFILL = "PublicKeyCredential.isConditionalMediationAvailable = async () => false;"


@pytest.fixture
def button_only(page):
    page.add_init_script(NO_AUTOFILL)
    return page


@pytest.fixture
def authenticator(page):
    """A CTAP2 platform authenticator with user verification, attached to this page's browser."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    found = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True,
    }})
    return cdp, found["authenticatorId"]


def shot(page, name: str, docs: str | None = None) -> None:
    path = screenshot(page, f"passkeys/{name}")
    if docs:
        publish_to_docs(path, docs)


def log_in_with_password(page, provider, patient) -> None:
    page.goto(provider.url + "/login")
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Mot de passe", exact=True).fill(patient.password)
    page.get_by_role("button", name="Connexion", exact=True).click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(patient.account.mobile))
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")


def add_passkey(page, provider, name: str = "Ordinateur de Marie") -> None:
    page.goto(provider.url + "/account/passkeys")
    page.get_by_role("link", name="Ajouter une clé d'accès").click()
    page.get_by_label("Nom de la clé d'accès").fill(name)
    page.get_by_role("button", name="Ajouter une clé d'accès").click()
    expect(page.get_by_text(f"La clé d'accès « {name} » a été ajoutée")).to_be_visible()


def log_out(page) -> None:
    page.context.clear_cookies()


def passkey_sessions() -> list[sso_session.SsoSession]:
    db.session.rollback()
    return [row for row in db.session.scalars(select(sso_session.SsoSession)) if "user" in (row.amr or [])]


@pytest.fixture
def patient(patients):
    return patients.create(email=None, mobile="+352621000111")


def test_a_patient_registers_a_passkey_and_logs_in_with_the_button(page, button_only, provider, authenticator, patient):
    log_in_with_password(page, provider, patient)
    page.goto(provider.url + "/account/passkeys")
    shot(page, "1-empty", "passkeys-1-list-empty")
    page.get_by_role("link", name="Ajouter une clé d'accès").click()
    page.get_by_label("Nom de la clé d'accès").fill("Ordinateur de Marie")
    shot(page, "2-new", "passkeys-2-add")
    page.get_by_role("button", name="Ajouter une clé d'accès").click()
    expect(page.get_by_text("La clé d'accès « Ordinateur de Marie » a été ajoutée")).to_be_visible()
    expect(page.get_by_role("cell", name="Liée à un seul appareil")).to_be_visible()
    shot(page, "3-list", "passkeys-3-list")
    log_out(page)

    page.goto(provider.url + "/login")
    expect(page.get_by_role("button", name="Se connecter avec une clé d'accès")).to_be_visible()
    shot(page, "4-login", "login-passkey")
    page.get_by_role("button", name="Se connecter avec une clé d'accès").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")
    [session] = passkey_sessions()
    assert session.account_id == patient.account.id and session.amr == ["hwk", "user", "mfa"]
    assert session.acr == "http://eidas.europa.eu/LoA/substantial"
    page.goto(provider.url + "/account/trail")
    expect(page.get_by_text("Connexion à votre compte eSanté avec une clé d'accès").first).to_be_visible()
    shot(page, "5-trail")


def test_the_matricule_fields_autofill_logs_in_with_the_passkey(page, provider, authenticator, patient):
    log_in_with_password(page, provider, patient)
    add_passkey(page, provider)
    log_out(page)
    mediations = []
    page.expose_function("recordMediation", lambda mediation: mediations.append(mediation))
    page.add_init_script(RECORD_MEDIATION)

    page.goto(provider.url + "/login")  # no click: the conditional request of the autofill answers

    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")
    assert mediations == ["conditional"], "the autofill's request, not the button's"
    [session] = passkey_sessions()
    assert session.account_id == patient.account.id and session.amr == ["hwk", "user", "mfa"]


def test_an_answer_made_for_another_origin_is_refused(page, button_only, provider, authenticator, patient, app):
    log_in_with_password(page, provider, patient)
    add_passkey(page, provider)
    log_out(page)
    with LiveServer(app) as look_alike:  # the same RP ID (localhost), another origin (port)
        page.goto(f"http://localhost:{look_alike.port}/login")
        page.get_by_role("button", name="Se connecter avec une clé d'accès").click()
        expect(page.get_by_role("alert")).to_contain_text("La clé d'accès n'a pas pu être vérifiée")
        shot(page, "wrong-origin")
    assert passkey_sessions() == []


def test_a_deleted_passkey_is_refused(page, button_only, provider, authenticator, patient):
    cdp, authenticator_id = authenticator
    log_in_with_password(page, provider, patient)
    add_passkey(page, provider)
    [copy] = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
    page.get_by_role("button", name="Supprimer la clé d'accès « Ordinateur de Marie »").click()
    expect(page.get_by_text("a été supprimée")).to_be_visible()
    # The list page signals the passkeys still accepted (WebAuthn Level 3): this authenticator forgets it.
    wait_until(lambda: cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"] == [])
    log_out(page)
    # A copy the signal did not reach (another device of a synced passkey) still offers it.
    cdp.send("WebAuthn.addCredential", {"authenticatorId": authenticator_id, "credential": copy})

    page.goto(provider.url + "/login")
    page.get_by_role("button", name="Se connecter avec une clé d'accès").click()

    expect(page.get_by_role("alert")).to_contain_text("n'est pas (ou plus) enregistrée")
    shot(page, "deleted")
    assert passkey_sessions() == []
    wait_until(lambda: cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"] == [])


def wait_until(condition, seconds: float = 5) -> None:
    """Poll ``condition`` (the browser acts on a signal asynchronously)."""
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.1)


def test_a_signature_counter_rolled_back_is_flagged(page, button_only, provider, authenticator, patient):
    cdp, authenticator_id = authenticator
    log_in_with_password(page, provider, patient)
    add_passkey(page, provider)
    log_out(page)
    page.goto(provider.url + "/login")
    page.get_by_role("button", name="Se connecter avec une clé d'accès").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")
    [copy] = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
    assert copy["signCount"] >= 1, "the virtual authenticator counts its signatures"
    log_out(page)
    page.goto(provider.url + "/login")
    page.get_by_role("button", name="Se connecter avec une clé d'accès").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes services eSanté")
    log_out(page)
    # A clone made earlier: the same key with the counter it had then.
    cdp.send("WebAuthn.removeCredential", {"authenticatorId": authenticator_id, "credentialId": copy["credentialId"]})
    cdp.send("WebAuthn.addCredential", {"authenticatorId": authenticator_id, "credential": {**copy, "signCount": copy["signCount"] - 1}})

    page.goto(provider.url + "/login")
    page.get_by_role("button", name="Se connecter avec une clé d'accès").click()

    expect(page.get_by_role("alert")).to_contain_text("cette clé d'accès est suspendue")
    shot(page, "counter-rollback")
    db.session.rollback()
    assert db.session.scalars(select(audit.AuditEvent).where(audit.AuditEvent.name == audit.Event.PASSKEY_COUNTER_REGRESSION.value)).all()
    [stored] = passkey.passkeys_of(passkey.Owner(account_id=patient.account.id))
    assert stored.suspended_at is not None
    assert len(passkey_sessions()) == 2, "the two genuine logins only"


def test_the_passkey_is_offered_at_step_4_of_the_activation(page, button_only, provider, authenticator, patients):
    from idp import activation_letter

    pending = patients.create(status="pending", email=None, mobile=None)
    _, code = activation_letter.issue(pending.account)
    db.session.commit()
    page.goto(provider.url + "/activation")
    page.get_by_label("J'accepte").check()
    page.get_by_role("button", name="Activer mon compte").click()
    page.get_by_label("Matricule").fill(pending.matricule)
    page.get_by_label("Code d'activation").fill(code)
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_label("Mot de passe", exact=True).fill("Luxembourg2026x")
    page.get_by_label("Confirmation").fill("Luxembourg2026x")
    page.get_by_role("button", name="Etape suivante").click()
    page.get_by_role("radio", name="Mobile").check()
    page.locator("input[name='send-destination']").fill("+352621555777")
    page.get_by_role("button", name="Valider").first.click()
    page.locator("input[name='verify-code']").fill(last_code_sent_to("+352621555777"))
    page.get_by_role("button", name="Valider").last.click()
    expect(page.get_by_role("heading", name="Clé d'accès")).to_be_visible()
    page.get_by_label("Nom de la clé d'accès").fill("Téléphone")
    shot(page, "activation-4", "activation-4-passkey")

    page.get_by_role("button", name="Créer une clé d'accès").click()

    expect(page.get_by_text("Clé d'accès « Téléphone » créée.")).to_be_visible()
    assert [item.name for item in passkey.passkeys_of(passkey.Owner(account_id=pending.account.id))] == ["Téléphone"]


@pytest.mark.parametrize("browser_locale, button, added", [
    ("de-DE", "Mit einem Passkey anmelden", "wurde hinzugefügt"),
    ("en-GB", "Log in with a passkey", "was added"),
])
def test_the_passkey_pages_in_german_and_english(page, button_only, provider, authenticator, patient, browser_locale, button, added):
    log_in_with_password_any_language(page, provider, patient)
    page.goto(provider.url + "/account/passkeys/new")
    page.locator("input[name='name']").fill("Laptop")
    page.locator("form[data-passkey=register] button[type=submit]").click()
    expect(page.get_by_text(added)).to_be_visible()
    shot(page, f"list-{browser_locale}")
    log_out(page)
    page.goto(provider.url + "/login")
    expect(page.get_by_role("button", name=button)).to_be_visible()
    shot(page, f"login-{browser_locale}")


def log_in_with_password_any_language(page, provider, patient) -> None:
    page.goto(provider.url + "/login")
    page.locator("input[name='matricule']").fill(patient.matricule)
    page.locator("input[name='password']").fill(patient.password)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.locator("input[name='code']").fill(last_code_sent_to(patient.account.mobile))
    page.locator("input[name='code']").press("Enter")
    expect(page).to_have_url(provider.url + "/services")


def test_an_admin_logs_in_with_a_passkey(page, button_only, provider, authenticator):
    admin = admin_account.create("alice", "Correct-Horse-42-battery")
    db.session.commit()
    totp = pyotp.TOTP(admin_account.totp_seed(admin))
    page.goto(provider.url + "/admin/login")
    page.get_by_label("Identifiant").fill("alice")
    page.get_by_label("Mot de passe").fill("Correct-Horse-42-battery")
    page.get_by_label("Code de l'application d'authentification").fill(totp.now())
    page.get_by_role("button", name="Connexion", exact=True).click()
    page.get_by_role("link", name="Mes clés d'accès").click()
    page.get_by_label("Nom de la clé d'accès").fill("YubiKey d'Alice")
    page.get_by_role("button", name="Ajouter une clé d'accès").click()
    expect(page.get_by_text("Clé d'accès « YubiKey d'Alice » enregistrée.")).to_be_visible()
    shot(page, "admin-list")
    log_out(page)

    page.goto(provider.url + "/admin/login")
    shot(page, "admin-login")
    page.get_by_role("button", name="Se connecter avec une clé d'accès").click()

    expect(page.get_by_role("link", name="Nouveau client", exact=True)).to_be_visible()
    db.session.rollback()
    last = db.session.scalars(select(audit.AuditEvent).where(audit.AuditEvent.name == audit.Event.ADMIN_LOGIN_SUCCEEDED.value)).all()[-1]
    assert last.details.get("method") == "passkey"
