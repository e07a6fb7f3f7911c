"""Mes services eSanté: what a logged-in patient can open, the DSP first (configurable)."""

from flask import current_app, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from .. import account as accounts, sso_session
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
    return render_template("flows/services.html", account=account, services=current_app.config["SERVICES"])


@blueprint.get("/language/<code>")
def language(code: str) -> ResponseReturnValue:
    """Remember the chosen language for this browser, and on the account when logged in."""
    if code in current_app.config["LANGUAGES"]:
        session["locale"] = code
        if current := sso_session.current():
            accounts.get(current.account_id).locale = code
            db.session.commit()
    return redirect(safe_next(request.args.get("next", "")), code=303)
