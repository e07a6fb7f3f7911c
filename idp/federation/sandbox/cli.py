"""``idp sandbox run myguichet|luxtrust``: serve a stand-in identity provider for development."""

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from werkzeug.serving import run_simple

sandbox_cli = AppGroup("sandbox", help="Sandbox stand-ins of the upstream identity providers (development only).")


@sandbox_cli.command("run")
@click.argument("kind", type=click.Choice(["myguichet", "luxtrust"]))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, required=True, help="MyGuichet's default is 5010, LuxTrust's 5011 (FEDERATION settings).")
def run_command(kind: str, host: str, port: int) -> None:
    """Serve the stand-in; it fetches our SP metadata from ISSUER/saml/KIND/metadata when first needed."""
    from .app import create_sandbox_app

    if current_app.config["ISSUER"].startswith("https://"):
        raise click.ClickException("the sandbox lets anyone log in as a test citizen: refusing on an https issuer")
    issuer = current_app.config["ISSUER"]
    sandbox = create_sandbox_app(kind, f"http://{host}:{port}", f"{issuer}/saml/{kind}/metadata", Path(current_app.instance_path),
                                 sp_home_url=issuer)
    click.echo(f"SANDBOX {kind} stand-in on http://{host}:{port}/ (metadata /saml/metadata): test identities only, never deploy it")
    run_simple(host, port, sandbox, threaded=True, use_reloader=False)
