"""The DSP viewer in a real browser against the live provider, as the guide tells it:
the child's record, "Assistants" → "Ajouter" → the parent as Assistant DSP, then the parent
opens the child's record under "Accéder aux autres dossiers patient"; logout ends both sessions.

The screenshots also illustrate the README's walk-through (docs/screenshots/)."""

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from playwright.sync_api import expect

from tests.browser.conftest import last_code_sent_to
from tests.rp_demo.services import demo_clients, dsp_api, dsp_api_config, provider, viewer  # noqa: F401  (fixtures)
from tests.support.axe import axe_violations, format_violations
from tests.support.browser import publish_to_docs, screenshot


def illustrate(page, name: str, *, check_accessibility: bool = True) -> Path:
    """A test screenshot, also copied where the README shows it; the viewer's pages also pass axe."""
    path = screenshot(page, f"dsp-viewer/{name}")
    publish_to_docs(path, f"dsp-viewer-{path.stem}")
    if check_accessibility:
        violations = axe_violations(page)
        assert not violations, format_violations(violations)
    return path


def log_in_through_esante(page, viewer, patient, shot: str | None = None):
    """From the viewer's home: "Connexion", then the provider's pages (matricule, password, SMS code)."""
    page.goto(viewer.url)
    page.get_by_role("link", name="Connexion").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion — PATIENT")
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Mot de passe", exact=True).fill(patient.password)
    if shot:  # the provider's own pages: axe-checked in test_accessibility.py (their CSP keeps axe out here)
        illustrate(page, shot, check_accessibility=False)
    page.get_by_role("button", name="Connexion").click()
    page.get_by_label("Mobile").check()
    page.get_by_role("button", name="Valider").click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(patient.account.mobile))
    page.get_by_role("button", name="Valider").click()
    expect(page).to_have_url(viewer.url + "/dossier")


def log_out(page, viewer):
    page.get_by_role("button", name="Déconnexion").click()
    expect(page).to_have_url(viewer.url + "/")
    expect(page.get_by_role("status")).to_have_text("Vous êtes déconnecté du DSP et de votre compte eSanté.")


def test_parent_becomes_assistant_of_the_child_and_opens_the_childs_record(page, provider, viewer, demo_clients, patients):
    parent = patients.create(given_name="Marc", family_name="Weber", birth="19800214", email="marc@example.lu", mobile="+352621000201")
    child = patients.create(given_name="Léa", family_name="Weber", birth="20170520", email="lea@example.lu", mobile="+352621000202")

    # The parent logs in to the child's DSP with the child's credentials (guide p.19).
    log_in_through_esante(page, viewer, child, shot="1-login")
    expect(page.get_by_role("heading", level=1)).to_have_text("Léa Weber")
    expect(page.locator(".age")).to_contain_text("ans (né(e) le 20/05/2017)")
    expect(page.locator("#record-banner")).to_contain_text("Votre dossier — Léa Weber")
    for tab in ("Synthèse", "Ligne de vie", "Vue documentaire", "Traçabilité"):
        expect(page.get_by_role("link", name=tab, exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Mes derniers documents")).to_be_visible()
    expect(page.locator(".documents li")).to_have_count(4)
    expect(page.locator("#assistants-panel")).to_contain_text("Aucune donnée disponible dans le tableau")
    illustrate(page, "2-child-record")

    # "Assistants" → "Ajouter" → "Numéro assuré" → "Rechercher" → the name → "Assistant DSP" → ✓
    page.get_by_role("link", name="Ajouter").click()
    page.get_by_label("Numéro assuré").fill(parent.matricule)
    page.get_by_role("button", name="Rechercher").click()
    page.get_by_label("M. Weber").check()
    expect(page.get_by_label("Type")).to_have_value("assistant_dsp")
    expect(page.get_by_label("Rôle")).to_have_value("")
    illustrate(page, "3-add-assistant")
    page.get_by_role("button", name="Valider l'ajout").click()
    expect(page.get_by_role("status")).to_have_text("M. Weber est maintenant assistant DSP de ce dossier.")
    added = page.locator("#assistants-panel tbody tr").first.locator("td")
    expect(added.nth(0)).to_have_text("M. Weber")
    expect(added.nth(1)).to_have_text("Assistant DSP")
    expect(added.nth(2)).to_have_text("")
    illustrate(page, "4-assistant-added")

    # Logout ends the provider's session too: its pages ask for a login again.
    log_out(page, viewer)
    page.goto(provider.url + "/services")
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion — PATIENT")

    # The parent, with his own account, opens the child's record.
    log_in_through_esante(page, viewer, parent)
    expect(page.locator("#record-banner")).to_contain_text("Votre dossier — Marc Weber")
    page.get_by_role("link", name="Accéder aux autres dossiers patient").click()
    illustrate(page, "5-other-records")
    page.get_by_role("button", name="Léa Weber").click()
    expect(page.locator("#record-banner")).to_have_text(
        "Dossier de Léa Weber ouvert — vous agissez en tant qu'assistant DSP : Marc Weber")
    expect(page.get_by_role("heading", level=1)).to_have_text("Léa Weber")
    expect(page.locator(".age")).to_contain_text("né(e) le 20/05/2017")
    illustrate(page, "6-child-record-as-assistant")
    page.get_by_role("link", name="Traçabilité").click()
    expect(page.locator("#trail tbody tr").first).to_contain_text("Assistant DSP : Marc Weber")
    expect(page.locator("#trail")).to_contain_text("Titulaire du dossier")
    illustrate(page, "7-trail")

    # Back to his own record.
    page.get_by_role("link", name="Accéder aux autres dossiers patient").click()
    page.get_by_role("button", name="Marc Weber (mon dossier)").click()
    expect(page.locator("#record-banner")).to_contain_text("Votre dossier — Marc Weber")
    log_out(page, viewer)


def test_an_unknown_matricule_is_told_next_to_the_search(page, viewer, demo_clients, patients):
    patient = patients.create(given_name="Anna", family_name="Klein", mobile="+352621000203")
    log_in_through_esante(page, viewer, patient)
    page.get_by_role("link", name="Ajouter").click()
    page.get_by_label("Numéro assuré").fill("12345")
    page.get_by_role("button", name="Rechercher").click()
    expect(page.get_by_role("alert")).to_have_text("Numéro assuré invalide : il compte 11 ou 13 chiffres.")
    expect(page.get_by_label("Numéro assuré")).to_have_value("12345")


@pytest.mark.parametrize("browser_locale", ["de-DE"])
def test_the_viewer_follows_the_patients_language_and_its_trail_has_one_row_per_opening(page, viewer, demo_clients, patients):
    """Issue 14, item 10: the viewer speaks the patient's language (here German, the browser's, and
    the provider's pages with it: ``ui_locales``), names the application instead of its client id,
    keeps one trail row per opening of the record whatever the tabs clicked, and gives Luxembourg time."""
    patient = patients.create(given_name="Anna", family_name="Klein", email=None, mobile="+352621000204")
    page.goto(viewer.url)
    expect(page.locator("html")).to_have_attribute("lang", "de")
    page.get_by_role("link", name="Anmeldung").click()
    expect(page.locator("html")).to_have_attribute("lang", "de")
    page.locator("#matricule").fill(patient.matricule)
    page.locator("#password").fill(patient.password)
    page.locator("#password").press("Enter")
    page.locator("#code").fill(last_code_sent_to(patient.account.mobile))
    page.locator("#code").press("Enter")
    expect(page).to_have_url(viewer.url + "/dossier")
    for tab in ("Lebenslinie", "Dokumente", "Übersicht", "Lebenslinie", "Zugriffsprotokoll"):
        page.get_by_role("link", name=tab, exact=True).click()
    rows = page.locator("#trail tbody tr").evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")
    assert len(rows) == 1, rows
    opened_at, who, application = rows[0]
    assert who == "Inhaber der Akte" and application == "DSP (Website)"
    shown = datetime.strptime(opened_at, "%d/%m/%Y %H:%M:%S").replace(tzinfo=ZoneInfo("Europe/Luxembourg"))
    assert abs((datetime.now(timezone.utc) - shown).total_seconds()) < 120, "Luxembourg time, not the server's zone"
    screenshot(page, "dsp-viewer/trail-de")
    violations = axe_violations(page)
    assert not violations, format_violations(violations)
    page.locator(".languages a", has_text="EN").click()
    expect(page.get_by_role("link", name="Access log", exact=True)).to_be_visible()
    screenshot(page, "dsp-viewer/record-en")
