"""The browser test support works: Debian's Chromium, driven by Playwright, against a
Flask app served by LiveServer."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from flask import Flask, request

from tests.support.browser import LiveServer, screenshot

# Harmless if the top-level conftest already loads it; lets this file run on its own.
pytest_plugins = ["tests.support.browser"]

PAGE = """<!doctype html>
<html lang="fr">
<head><meta charset="utf-8"><title>Support navigateur</title>
<style>body {{ font-family: "DejaVu Sans", sans-serif; margin: 2em; }}</style></head>
<body>
  <h1>Connexion</h1>
  <p id="status">En attente</p>
  <p>Accept-Language: <span id="header">{accept_language}</span></p>
  <p>navigator.language: <span id="nav"></span></p>
  <button id="go" type="button">Cliquer ici</button>
  <script>
    document.getElementById("nav").textContent = navigator.language;
    document.getElementById("go").addEventListener("click", function () {{
      document.getElementById("status").textContent = "Bouton cliqué ✓";
    }});
  </script>
</body>
</html>"""


def make_app() -> Flask:
    app = Flask("browser_support_selftest")

    @app.get("/")
    def index():
        return PAGE.format(accept_language=request.headers.get("Accept-Language", ""))

    return app


@pytest.fixture
def server():
    live = LiveServer(make_app())
    yield live
    live.stop()


def test_click_changes_text_and_screenshot(page, server):
    assert server.url.startswith("http://127.0.0.1:")
    page.goto(server.url_for("/"))
    status = page.locator("#status")
    assert status.text_content() == "En attente"

    page.get_by_role("button", name="Cliquer ici").click()
    page.wait_for_function(
        "document.getElementById('status').textContent === 'Bouton cliqué ✓'"
    )
    assert status.text_content() == "Bouton cliqué ✓"

    # the default locale is French, both in JS and in the request header
    assert page.locator("#nav").text_content() == "fr-FR"
    assert page.locator("#header").text_content().startswith("fr-FR")

    path = screenshot(page, "support/browser-click")
    assert path.name == "browser-click.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000


@pytest.mark.parametrize("browser_locale", ["de-DE"])
def test_locale_is_parametrisable(page, server):
    page.goto(server.url)
    assert page.locator("#nav").text_content() == "de-DE"
    assert page.locator("#header").text_content().startswith("de-DE")


def test_live_server_stops():
    live = LiveServer(make_app())
    with urllib.request.urlopen(live.url, timeout=5) as resp:
        assert resp.status == 200
        assert "Connexion" in resp.read().decode()
    live.stop()
    live.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(live.url, timeout=2)
