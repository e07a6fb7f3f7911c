"""``idp clients ...``: the client registry from the command line.

Every command takes ``--json`` and then prints exactly one JSON document. Changes go through
the domain functions of :mod:`idp.client` (which audit them) and are committed only when the
whole change is valid: a rejected command writes nothing.
"""

import json
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Callable, Iterator

import click
from flask.cli import AppGroup

from .. import client as clients, clock
from ..cli_output import emit
from ..extensions import db

clients_cli = AppGroup("clients", help="Relying parties and machine clients.")

DEFAULT_SCOPE = "openid profile email phone offline_access"
DEFAULT_GRANT_TYPES = ("authorization_code", "refresh_token")
ACTOR = "cli"
NO_PROFILE = "none"


@contextmanager
def _one_transaction() -> Iterator[None]:
    """Commit the change and its audit events together, or nothing (one-line error, exit 1)."""
    try:
        yield
        db.session.commit()
    except clients.InvalidClientMetadata as error:
        db.session.rollback()
        raise click.ClickException(f"{error.error}: {error.description}") from None


def _existing(client_id: str) -> clients.Client:
    found = clients.get_any(client_id)
    if found is None:
        raise click.ClickException(f"no client with id {client_id!r}")
    return found


def _read_jwks(path: str | None) -> dict | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as error:
        raise click.ClickException(f"cannot read JWKS from {path}: {error}") from None
    if not isinstance(document, dict):
        raise click.ClickException(f"{path} is not a JSON Web Key Set (a JSON object with keys)")
    return document


def _resolve_auth_method(public: bool, auth_method: str | None) -> str | None:
    if public and auth_method is not None:
        raise click.UsageError(f"--public conflicts with --auth-method {auth_method}")
    return "none" if public else auth_method


def _describe(document: dict) -> str:
    lines = [f"{document['client_id']}  {document['client_name']}{'  (disabled)' if document['disabled'] else ''}"]
    if document.get("client_secret"):
        lines.append(f"client secret (shown once): {document['client_secret']}")
    for key in ("token_endpoint_auth_method", "grant_types", "scope", "redirect_uris", "post_logout_redirect_uris",
                "subject_type", "first_party", "resource_audience", "pending_approval"):
        value = document.get(key)
        if key in ("resource_audience", "pending_approval") and not value:
            continue
        lines.append(f"  {key}: {' '.join(value) if isinstance(value, list) else value}")
    lines.append(f"  security_profile: {document.get('security_profile') or NO_PROFILE}")
    return "\n".join(lines)


def _metadata_options(for_update: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The same options for ``create`` and ``update``; on update an option left out changes nothing."""
    options = [
        click.option("--name", required=not for_update, help="Display name shown to patients."),
        click.option("--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI (repeatable)."),
        click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True,
                     help="Redirect URI after RP-initiated logout (repeatable)."),
        click.option("--public", is_flag=True, help="Public client (native app): no secret, auth method none."),
        click.option("--scope", default=None if for_update else DEFAULT_SCOPE, show_default=not for_update,
                     help="Allowed scopes, space-separated."),
        click.option("--grant-type", "grant_types", multiple=True, type=click.Choice(clients.SUPPORTED_GRANT_TYPES),
                     help="Allowed grant type (repeatable; default authorization_code and refresh_token)."),
        click.option("--auth-method", type=click.Choice([m for m in clients.SUPPORTED_AUTH_METHODS if m != "none"]),
                     default=None, help="Token endpoint authentication (default client_secret_basic)."),
        click.option("--jwks-file", type=click.Path(dir_okay=False), default=None,
                     help="JSON Web Key Set of the client's public keys (private_key_jwt)."),
        click.option("--first-party/--third-party", "first_party", default=None if for_update else False,
                     help="First-party clients skip the consent page and get public subjects by default."),
        click.option("--subject-type", type=click.Choice(["public", "pairwise"]), default=None,
                     help="Subject identifier type (OpenID Connect Core §8; default pairwise for third parties)."),
        click.option("--resource-server", "resource_audience", default=None, metavar="AUDIENCE_URI",
                     help="This client is the resource server of this audience URI: it may introspect tokens for it"
                          + (" (\"\" to stop)." if for_update else ".")),
        click.option("--profile", metavar="PROFILE", default=None,
                     help="Security profile the client is held to: fapi2 (FAPI 2.0: PAR, PKCE, private_key_jwt with "
                          "--jwks-file, DPoP), or none" + ("" if for_update else " (the default)") + "."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@clients_cli.command("create")
@_metadata_options(for_update=False)
def create_command(name: str, redirect_uris: tuple[str, ...], post_logout_redirect_uris: tuple[str, ...], public: bool,
                   scope: str, grant_types: tuple[str, ...], auth_method: str | None, jwks_file: str | None,
                   first_party: bool, subject_type: str | None, resource_audience: str | None, profile: str | None,
                   as_json: bool) -> None:
    """Register a client and print its secret, which is shown only this once."""
    method = _resolve_auth_method(public, auth_method) or "client_secret_basic"
    jwks = _read_jwks(jwks_file)
    with _one_transaction():
        client, secret = clients.create(
            name=name,
            redirect_uris=list(redirect_uris),
            post_logout_redirect_uris=list(post_logout_redirect_uris),
            grant_types=list(grant_types or DEFAULT_GRANT_TYPES),
            scope=scope,
            auth_method=method,
            first_party=first_party,
            subject_type=subject_type,
            jwks=jwks,
            resource_audience=resource_audience or None,
            security_profile=None if profile in (None, NO_PROFILE) else profile,
            actor=ACTOR,
        )
    emit({"client_id": client.client_id, "client_secret": secret, **clients.public_view(client)}, as_json, _describe)


@clients_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def list_command(as_json: bool) -> None:
    """List every client, disabled ones too."""
    documents = [clients.public_view(client) for client in clients.all_clients()]
    emit(documents, as_json, lambda items: "\n".join(
        f"{d['client_id']}  {d['client_name']}{'  (disabled)' if d['disabled'] else ''}" for d in items) or "no clients")


@clients_cli.command("show")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def show_command(client_id: str, as_json: bool) -> None:
    """Show one client's registered metadata (never its secret: only a hash is kept)."""
    emit(clients.public_view(_existing(client_id)), as_json, _describe)


@clients_cli.command("update")
@click.argument("client_id")
@_metadata_options(for_update=True)
def update_command(client_id: str, name: str | None, redirect_uris: tuple[str, ...], post_logout_redirect_uris: tuple[str, ...],
                   public: bool, scope: str | None, grant_types: tuple[str, ...], auth_method: str | None,
                   jwks_file: str | None, first_party: bool | None, subject_type: str | None, resource_audience: str | None,
                   profile: str | None, as_json: bool) -> None:
    """Change the options given; the others keep their value."""
    client = _existing(client_id)
    given = {
        "name": name,
        "redirect_uris": list(redirect_uris) or None,
        "post_logout_redirect_uris": list(post_logout_redirect_uris) or None,
        "scope": scope,
        "grant_types": list(grant_types) or None,
        "auth_method": _resolve_auth_method(public, auth_method),
        "jwks": _read_jwks(jwks_file),
        "first_party": first_party,
        "subject_type": subject_type,
        "resource_audience": resource_audience,
    }
    changes = {key: value for key, value in given.items() if value is not None}
    if profile is not None:
        changes["security_profile"] = None if profile == NO_PROFILE else profile
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    with _one_transaction():
        clients.update(client, actor=ACTOR, **changes)
    emit(clients.public_view(client), as_json, _describe)


@clients_cli.command("approve")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def approve_command(client_id: str, as_json: bool) -> None:
    """Approve what a self-registered client asked for that only an admin may give; it works from then on."""
    client = _existing(client_id)
    try:
        approved = clients.approve(client, actor=ACTOR)
    except clients.NothingToApprove:
        raise click.ClickException(f"nothing to approve: {client_id} waits for no approval") from None
    db.session.commit()
    emit({**clients.public_view(client), "approved": approved}, as_json,
         lambda d: f"approved for {d['client_id']}: {' '.join(d['approved'])}")


@clients_cli.command("disable")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def disable_command(client_id: str, as_json: bool) -> None:
    """Stop a client at once: it can no longer authorize, get or refresh tokens."""
    client = _existing(client_id)
    with _one_transaction():
        clients.disable(client, actor=ACTOR)
    emit(clients.public_view(client), as_json, _describe)


@clients_cli.command("enable")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def enable_command(client_id: str, as_json: bool) -> None:
    """Let a disabled client work again."""
    client = _existing(client_id)
    with _one_transaction():
        clients.enable(client, actor=ACTOR)
    emit(clients.public_view(client), as_json, _describe)


@clients_cli.command("rotate-secret")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def rotate_secret_command(client_id: str, as_json: bool) -> None:
    """Replace the client secret; the old one stops working at once and the new one is shown once."""
    client = _existing(client_id)
    with _one_transaction():
        secret = clients.rotate_secret(client, actor=ACTOR)
    emit({"client_id": client.client_id, "client_secret": secret}, as_json,
         lambda d: f"new secret for {d['client_id']} (shown once): {d['client_secret']}")


@clients_cli.command("initial-token")
@click.option("--expires-in", type=click.IntRange(min=1), default=24 * 3600, show_default=True,
              help="Lifetime in seconds.")
@click.option("--note", default=None, help="Who the token is for (kept with it and in the audit log).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def initial_token_command(expires_in: int, note: str | None, as_json: bool) -> None:
    """Issue a single-use initial access token for dynamic registration (RFC 7591 §3)."""
    if note is not None and len(note) > 200:
        raise click.UsageError("--note is limited to 200 characters")
    expires_at = clock.now() + timedelta(seconds=expires_in)
    token = clients.issue_initial_access_token(expires_at, note)
    db.session.commit()
    emit({"initial_access_token": token, "expires_at": expires_at.replace(microsecond=0)}, as_json,
         lambda d: f"initial access token (single use, shown once): {d['initial_access_token']}\n"
                   f"expires at {d['expires_at']:%Y-%m-%d %H:%M:%S}Z")
