"""Drives the passkey pages as the pages' script does: fetch the options, answer them with a
:class:`~tests.support.soft_authenticator.SoftAuthenticator`, post the answer in the form.

Works with Flask's test client and with ``requests`` sessions (the live-server tests): both
have ``get``/``post``; the CSRF token comes from the page, as a browser's script reads it.
"""

from __future__ import annotations

import json
import re

from tests.support.soft_authenticator import SoftAuthenticator

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _text(response) -> str:
    return response.get_data(as_text=True) if hasattr(response, "get_data") else response.text


def _json(response) -> dict:
    return response.get_json() if hasattr(response, "get_json") else response.json()


def csrf_of(http, page: str) -> str:
    return CSRF.search(_text(http.get(page))).group(1)


def fetch_options(http, url: str, token: str):
    return http.post(url, headers={"X-CSRFToken": token, "Accept": "application/json"})


def register(http, authenticator: SoftAuthenticator, name: str = "iPhone de Rita", *, page: str = "/account/passkeys/new",
             options_url: str = "/account/passkeys/options", post_to: str | None = None, **answer_changes):
    """Add a passkey through ``page``; returns the response to the posted answer."""
    token = csrf_of(http, page)
    options = fetch_options(http, options_url, token)
    assert options.status_code == 200, _text(options)[:500]
    answer = authenticator.create(_json(options), **answer_changes)
    return http.post(post_to or page, data={"csrf_token": token, "name": name, "credential": json.dumps(answer)})


def login_options(http, *, page: str = "/login", options_url: str = "/login/passkey/options") -> tuple[str, dict]:
    token = csrf_of(http, page)
    options = fetch_options(http, options_url, token)
    assert options.status_code == 200, _text(options)[:500]
    return token, _json(options)


def log_in(http, authenticator: SoftAuthenticator, *, next_url: str = "", remember: bool = False, page: str = "/login",
           options_url: str = "/login/passkey/options", post_to: str = "/login/passkey", **answer_changes):
    """« Se connecter avec une clé d'accès »; returns the response to the posted answer."""
    token, options = login_options(http, page=page, options_url=options_url)
    answer = authenticator.get(options, **answer_changes)
    return post_answer(http, token, answer, next_url=next_url, remember=remember, post_to=post_to)


def post_answer(http, token: str, answer: dict, *, next_url: str = "", remember: bool = False, post_to: str = "/login/passkey"):
    return http.post(post_to, data={"csrf_token": token, "credential": json.dumps(answer), "next": next_url,
                                    "remember": "y" if remember else ""})
