"""The ``idp`` command: Flask's CLI on :func:`idp.create_app` plus each domain's commands.

``idp serve --bind HOST:PORT [--workers N]`` is the production server (:mod:`idp.server`),
``idp run`` Flask's development server, ``idp db upgrade`` applies migrations (Flask-Migrate),
and every admin command takes ``--json``.

Each command group is imported only when it runs (click's "lazily loading subcommands"
pattern): ``idp --help`` builds no app, and a command builds the app without Alembic or fpdf
unless it needs them, so an operator's ``idp outbox list`` answers in well under a second.
"""

import importlib
import os
import re

import click
from flask import Flask
from flask.cli import FlaskGroup

# name: ("module:attribute" of the click group, its one-line help for `idp --help`)
COMMAND_GROUPS = {
    "patients": ("idp.account_suspension:patients_cli", "The insured-person registry."),
    "letters": ("idp.activation_letter:letters_cli", "Activation letters."),
    "admins": ("idp.admin_account:admins_cli", "Administrator accounts."),
    "outbox": ("idp.messaging:outbox_cli", "Messages kept by the outbox backend (development)."),
    "keys": ("idp.signing_key:keys_cli", "Token signing keys."),
    "logout": ("idp.backchannel_logout:logout_cli", "Back-channel logout deliveries to relying parties."),
    "clients": ("idp.admin.clients_cli:clients_cli", "Relying parties and machine clients."),
    "requests": ("idp.helpdesk_request:requests_cli", "\"Je n'ai pas de code d'activation\" requests."),
    "demo": ("idp.demo:demo_cli", "Demo data for the embedded default."),
    "audit": ("idp.audit:audit_cli", "The audit log."),
    "housekeeping": ("idp.housekeeping:housekeeping_cli", "Deleting rows that are past use."),
    "delegations": ("idp.delegation:delegations_cli", "Assistants DSP (delegations)."),
    "sandbox": ("idp.federation.sandbox.cli:sandbox_cli", "Sandbox stand-ins of the upstream identity providers (development only)."),
    "db": ("flask_migrate.cli:db", "Database migrations (Alembic, through Flask-Migrate)."),
}


def load_group(name: str) -> click.Group:
    """The click group ``name`` of :data:`COMMAND_GROUPS`, importing its module now."""
    module, attribute = COMMAND_GROUPS[name][0].split(":")
    return getattr(importlib.import_module(module), attribute)


def register_commands(app: Flask) -> None:
    """The groups on ``app.cli``, for ``app.test_cli_runner()`` and ``flask --app idp``.

    ``db`` stays with :class:`IdpGroup`: Flask-Migrate's group would import Alembic with every app.
    """
    for name in COMMAND_GROUPS:
        if name != "db":
            app.cli.add_command(load_group(name))


class IdpGroup(FlaskGroup):
    """Flask's group, listing our groups from :data:`COMMAND_GROUPS` without building the app or
    importing them, and importing only the one a command line names."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*click.Group.list_commands(self, ctx), *COMMAND_GROUPS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMAND_GROUPS:
            return load_group(name)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        """A database without our tables (or behind the code) gets one line saying what to run,
        and an unreachable one the driver's reason, not a traceback."""
        try:
            return super().invoke(ctx)
        except Exception as error:
            from sqlalchemy.exc import DBAPIError

            if not isinstance(error, DBAPIError):
                raise
            raise click.ClickException(database_problem(error)) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMAND_GROUPS[name][1] if name in COMMAND_GROUPS else self.commands[name].get_short_help_str())
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


# SQLite's "no such table: x" / "no such column: x"; PostgreSQL's 'relation "x" does not exist' /
# "column x.y does not exist" (not 'database "x" does not exist', which an upgrade would not mend).
SCHEMA_BEHIND = re.compile(r"no such (table|column)|\b(relation|column) \S+ does not exist")


def database_problem(error: Exception) -> str:
    """One line for an operator: the driver's first line, and what to do about a missing table or column."""
    reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
    if SCHEMA_BEHIND.search(reason):
        return f"the database is not at this version's schema ({reason}): run `idp db upgrade` first"
    return f"database error: {reason}"


def _create_app() -> Flask:
    from . import create_app

    return create_app()


main = IdpGroup(create_app=_create_app, help="eSanté identity provider.")


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
