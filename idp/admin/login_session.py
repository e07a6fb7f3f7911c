"""The end of every admin login (password + TOTP, or a passkey): a new server-side session."""

from flask import current_app, g, redirect, session, url_for
from flask.typing import ResponseReturnValue

from .. import admin_account, admin_session
from ..extensions import db


def new_session() -> None:
    """Start over: nothing from the previous session carries over, not even its CSRF secret."""
    session.clear()
    g.pop(current_app.config["WTF_CSRF_FIELD_NAME"], None)  # Flask-WTF's token cached for this request


def start_admin_session(admin: admin_account.AdminAccount) -> ResponseReturnValue:
    new_session()
    admin_session.start(admin)
    db.session.commit()
    return redirect(url_for("admin.clients"), code=303)
