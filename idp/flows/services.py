"""Mes services eSanté: what a logged-in patient can open, the DSP first (configurable)."""

from flask import current_app, redirect, render_template, request, session, url_for

from .. import account as accounts, sso_session
from . import blueprint


@blueprint.get("/")
def home():
    return redirect(url_for("flows.services"))


@blueprint.get("/services")
def services():
    current = sso_session.current()
    if current is None:
        return redirect(url_for("flows.login", next=url_for("flows.services")), code=303)
    account = accounts.get(current.account_id)
    return render_template("flows/services.html", account=account, services=current_app.config["SERVICES"])


@blueprint.get("/language/<code>")
def language(code: str):
    if code in current_app.config["LANGUAGES"]:
        session["locale"] = code
    target = request.args.get("next", "")
    from .login import safe_next

    return redirect(safe_next(target), code=303)
