"""Mes services eSanté: what a logged-in patient can open, the DSP first (configurable)."""

import string
from typing import Any

from flask import current_app, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale

from .. import account as accounts, plain_words, sso_session
from ..extensions import db
from . import blueprint
from ..page_guards import safe_next


@blueprint.get("/")
def home() -> ResponseReturnValue:
    return redirect(url_for("flows.services"))


@blueprint.get("/services")
def services() -> ResponseReturnValue:
    current = sso_session.current()
    if current is None:
        return redirect(url_for("flows.login", next=url_for("flows.services")), code=303)
    account = accounts.get(current.account_id)
    return render_template("flows/services.html", account=account, services=[_shown(service) for service in current_app.config["SERVICES"]])


def in_page_language(text: str | dict[str, str]) -> str:
    """A configured text: one string, or one per language (the default language when the page's is missing)."""
    if isinstance(text, str):
        return text
    languages = current_app.config["LANGUAGES"]
    return text.get(str(get_locale())) or text.get(languages[0]) or next(iter(text.values()), "")


class _Settings(dict):
    """``{SETTING}`` placeholders of a service URL: upper-case settings only, a missing one left as it was."""

    def __missing__(self, key: str) -> str:
        value = current_app.config.get(key) if key.isupper() else None
        return str(value).rstrip("/") if isinstance(value, str) else "{" + key + "}"


def _shown(service: dict[str, Any]) -> dict[str, str]:
    return {
        "name": in_page_language(service["name"]),
        "description": in_page_language(service.get("description", "")),
        "url": string.Formatter().vformat(service["url"], (), _Settings()),
    }


@blueprint.app_context_processor
def menu_context() -> dict[str, Any]:
    """The header shows the patient's menu on pages that found a live session (no extra query);
    every page words scopes, claims and services the same way (:mod:`idp.plain_words`)."""
    return {"signed_in_patient": lambda: g.get("sso_session") is not None, "plain_words": plain_words}


@blueprint.get("/language/<code>")
def language(code: str) -> ResponseReturnValue:
    """Remember the chosen language for this browser, and on the account when logged in."""
    if code in current_app.config["LANGUAGES"]:
        session["locale"] = code
        if current := sso_session.current():
            accounts.get(current.account_id).locale = code
            db.session.commit()
    return redirect(safe_next(request.args.get("next", "")), code=303)
