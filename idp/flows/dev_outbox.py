"""Development-only page listing the outbox: the demo's one-time codes without a terminal.

It shows every code sent to anyone, so it exists only when both messaging backends are the
outbox (nothing leaves the machine) and ``DEMO_OUTBOX_PAGE`` is on, and never on an https
issuer: a deployment that turns it on by mistake refuses to start instead of leaking codes.
"""

from flask import Blueprint, Flask, render_template

from .. import messaging
from ..settings import InvalidSettings

blueprint = Blueprint("dev_outbox", __name__)
SHOWN = 50


def init_app(app: Flask) -> None:
    """Register the page when the settings allow it (see the module docstring)."""
    config = app.config
    if not config.get("DEMO_OUTBOX_PAGE"):
        return
    if config["ISSUER"].startswith("https://"):
        raise InvalidSettings("DEMO_OUTBOX_PAGE shows every one-time code: development only, refused on an https issuer")
    if config["MAIL_BACKEND"] != "outbox" or config["SMS_BACKEND"] != "outbox":
        raise InvalidSettings("DEMO_OUTBOX_PAGE needs MAIL_BACKEND and SMS_BACKEND set to \"outbox\"")
    app.register_blueprint(blueprint)


@blueprint.get("/dev/outbox")
def outbox():
    """Newest first: the code a demo user waits for is at the top."""
    messages = messaging.outbox_messages()[-SHOWN:][::-1]
    return render_template("flows/dev_outbox.html", messages=messages)
