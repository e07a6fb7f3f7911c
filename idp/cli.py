"""The ``idp`` command: Flask's CLI on :func:`idp.create_app` plus each domain's commands.

``idp serve --bind HOST:PORT [--workers N]`` is the production server (:mod:`idp.server`),
``idp run`` Flask's development server, ``idp db upgrade`` applies migrations (Flask-Migrate),
and every admin command takes ``--json``.
"""

import os

import click
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


@main.command("serve")
@click.option("--bind", default=lambda: os.environ.get("IDP_BIND", "127.0.0.1:8000"), show_default="IDP_BIND or 127.0.0.1:8000",
              help="HOST:PORT to listen on (the private address the load balancer reaches).")
@click.option("--workers", type=click.IntRange(min=1), default=None, show_default="WEB_CONCURRENCY or one per core",
              help="Worker processes.")
def serve_command(bind: str, workers: int | None) -> None:
    """Serve the provider in production (granian; settings from IDP_CONFIG / IDP_*)."""
    from . import server

    try:
        server.parse_bind(bind)
    except server.InvalidBind as error:
        raise click.BadParameter(str(error), param_hint="--bind") from None
    server.serve(bind, workers or server.default_workers())
