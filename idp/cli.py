"""The ``idp`` command: Flask's CLI on :func:`idp.create_app` plus each domain's commands.

``idp run`` (``--host``/``--port``) serves the app, ``idp db upgrade`` applies migrations
(Flask-Migrate), and every admin command takes ``--json``.
"""

from flask import Flask
from flask.cli import FlaskGroup


def register_commands(app: Flask) -> None:
    from . import account, activation_letter, admin_account, audit, backchannel_logout, delegation, demo, helpdesk_request
    from . import housekeeping, messaging, signing_key
    from . import account_suspension  # noqa: F401  (adds `idp patients disable|enable`)
    from .admin import clients_cli
    from .federation.sandbox.cli import sandbox_cli

    for group in (
        account.patients_cli,
        activation_letter.letters_cli,
        admin_account.admins_cli,
        messaging.outbox_cli,
        signing_key.keys_cli,
        backchannel_logout.logout_cli,
        clients_cli.clients_cli,
        helpdesk_request.requests_cli,
        demo.demo_cli,
        audit.audit_cli,
        housekeeping.housekeeping_cli,
        delegation.delegations_cli,
        sandbox_cli,
    ):
        app.cli.add_command(group)


def _create_app() -> Flask:
    from . import create_app

    return create_app()


main = FlaskGroup(create_app=_create_app, help="eSanté identity provider.")
