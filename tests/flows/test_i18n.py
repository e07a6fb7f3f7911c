"""Pages in French by default, in German and English on request (Flask-Babel catalogs)."""

import html as html_entities
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from idp import messaging
from tests.conftest import csrf_token

TRANSLATIONS = Path(__file__).resolve().parents[2] / "idp" / "translations"
LANGUAGES = ["de", "en"]


def page_text(response) -> str:
    return html_entities.unescape(response.get_data(as_text=True))


def test_login_page_is_in_french_by_default(client):
    html = page_text(client.get("/login"))
    assert '<html lang="fr">' in html
    assert "Connexion — PATIENT" in html and '<label for="matricule">Matricule</label>' in html


def test_login_page_follows_accept_language(client):
    html = page_text(client.get("/login", headers={"Accept-Language": "de-LU,de;q=0.9,fr;q=0.5"}))
    assert '<html lang="de">' in html
    assert "Anmeldung — PATIENT" in html
    assert "Matrikelnummer & Passwort" in html
    assert '<label for="matricule">Matrikelnummer</label>' in html and '<label for="password">Passwort</label>' in html
    assert "Mot de passe" not in html


def test_an_unsupported_language_falls_back_to_french(client):
    html = page_text(client.get("/login", headers={"Accept-Language": "pt-PT,es;q=0.8"}))
    assert '<html lang="fr">' in html and "Connexion" in html


def test_language_link_switches_and_overrides_the_browser(client):
    switched = client.get("/language/en?next=/login")
    assert switched.status_code == 303 and switched.headers["Location"] == "/login"
    html = page_text(client.get("/login", headers={"Accept-Language": "de"}))
    assert '<html lang="en">' in html
    assert "Log in — PATIENT" in html and '<label for="password">Password</label>' in html
    client.get("/language/fr")
    assert '<html lang="fr">' in page_text(client.get("/login", headers={"Accept-Language": "de"}))


def test_an_unknown_language_code_changes_nothing(client):
    client.get("/language/xx")
    assert '<html lang="fr">' in page_text(client.get("/login"))


def test_errors_and_the_code_message_follow_the_language(client, patients):
    patient = patients.create(email=None)
    german = {"Accept-Language": "de"}
    page = client.get("/login", headers=german)
    wrong = client.post("/login", headers=german, data={
        "csrf_token": csrf_token(page.get_data(as_text=True)), "matricule": patient.matricule, "password": "Wrong2026pass",
    })
    assert "Matrikelnummer oder Passwort falsch." in page_text(wrong)
    page = client.get("/login", headers=german)
    client.post("/login", headers=german, data={
        "csrf_token": csrf_token(page.get_data(as_text=True)), "matricule": patient.matricule, "password": patient.password,
    })
    [message] = messaging.outbox_messages()
    assert message.body.startswith("Ihr eSanté-Einmalcode: ")
    assert "5 Minuten gültig" in message.body


@pytest.mark.settings(RATE_LIMIT_LOGIN="1 per minute")
def test_the_rate_limit_page_is_translated(client):
    english = {"Accept-Language": "en"}
    for _ in range(2):
        page = client.get("/login", headers=english)
        response = client.post("/login", headers=english, data={
            "csrf_token": csrf_token(page.get_data(as_text=True)), "matricule": "1893120105732", "password": "x",
        })
    assert response.status_code == 429
    assert "Too many requests" in page_text(response) and '<html lang="en">' in page_text(response)


# --- the catalogs themselves -----------------------------------------------------------------


def load_po(language: str):
    with open(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po", "rb") as handle:
        return read_po(handle, locale=language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_extracted_string_is_translated(language):
    with open(TRANSLATIONS / "messages.pot", "rb") as handle:
        template = read_po(handle)
    catalog = load_po(language)
    expected = {message.id if isinstance(message.id, str) else message.id[0] for message in template if message.id}
    translated = {
        message.id if isinstance(message.id, str) else message.id[0]
        for message in catalog
        if message.id and not message.fuzzy and all(message.string if isinstance(message.string, tuple) else (message.string,))
    }
    assert sorted(expected - translated) == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_their_placeholders(language):
    problems = [(message.id, [str(error) for error in errors]) for message, errors in load_po(language).check()]
    assert problems == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_are_real_not_copies_of_the_french(language):
    catalog = load_po(language)
    singular = [message for message in catalog if message.id and isinstance(message.id, str)]
    copies = [message.id for message in singular if message.string == message.id]
    assert len(copies) <= len(singular) // 20, copies  # a few words are the same in both languages (PATIENT, DSP)


def as_tuple(value) -> tuple:
    """Plural entries come as lists from .mo files and tuples from .po files."""
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalogs_match_the_sources(language):
    with open(TRANSLATIONS / language / "LC_MESSAGES" / "messages.mo", "rb") as handle:
        compiled = {as_tuple(message.id): as_tuple(message.string) for message in read_mo(handle) if message.id}
    sources = {as_tuple(message.id): as_tuple(message.string) for message in load_po(language) if message.id and not message.fuzzy}
    assert compiled == sources, "run scripts/update-translations.sh compile"
