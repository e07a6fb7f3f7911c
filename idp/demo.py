"""``idp demo seed``: the demo data ``make run`` needs, created once and reused.

Patients from the registry, one per scenario of the README's walk-through: a parent with a
password (Hector Doe), his minor child waiting for activation with a letter (Rita Doe), an adult
the MyGuichet.lu sandbox knows, to activate through MyGuichet (Filat D.), and an adult waiting
for a printed letter (``idp letters render``) or a helpdesk request (Claire Weber); and the
two demo relying parties with fixed client ids, named in French, German and English: the DSP
viewer, a FAPI 2.0 client whose private key the seed makes once into the instance folder
(``dsp-viewer-key.json``, read by ``python -m rp_demo.viewer --client-key-file``), and MyDSP, a
public native client.
Activation codes exist in clear only when a letter is issued, so a re-run cannot show them
again; it re-issues letters only when asked (``--reissue-letters``) or when none is usable.
"""

import csv
import io
import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup
from joserfc.jwk import ECKey
from sqlalchemy import select

from . import account as accounts, activation_letter, client as clients, clock, credential, matricule
from .cli_output import emit
from .extensions import db

DEMO_PASSWORD = "Sante-Demo-2026"
DSP_VIEWER_ID = "dsp-viewer"
MYDSP_ID = "mydsp"
DSP_API_ID = "dsp-api"
# Both demo apps manage a record's assistants and open the records their patient assists.
DELEGATION_SCOPES = "delegations assisted_patients"
DEMO_GRANT_TYPES = ["authorization_code", "refresh_token", clients.TOKEN_EXCHANGE]
DSP_VIEWER_KEY_FILE = "dsp-viewer-key.json"  # in the instance folder


@dataclass(frozen=True)
class DemoPatient:
    given_name: str
    family_name: str
    sequence: str  # the matricule's 3-digit sequence number
    born: date | None  # None: ten years before the first seed, so a minor for years to come
    email: str | None
    mobile: str | None
    active: bool
    scenario: str  # what the README's walk-through does with this person
    address: str = ""

    def birth_date(self, today: date) -> date:
        return self.born or today.replace(year=today.year - 10, day=1)


PATIENTS = (
    DemoPatient("Hector", "Doe", "101", date(1984, 6, 15), "hector.doe@example.lu", "+352621000101", active=True,
                scenario="parent: log in, become Rita's Assistant DSP, open her record", address="12, rue de la Gare\nL-4131 Esch-sur-Alzette"),
    DemoPatient("Rita", "Doe", "102", None, None, None, active=False,
                scenario="his child: activate with the letter's code (J'active mon compte)", address="12, rue de la Gare\nL-4131 Esch-sur-Alzette"),
    DemoPatient("Filat", "D.", "103", date(1991, 9, 3), "filat.d@example.lu", "+352621000103", active=False,
                scenario="activate through MyGuichet.lu (sandbox citizen mg-filat), then Mon compte > Créer un mot de passe",
                address="4, avenue de la Liberté\nL-1930 Luxembourg"),
    DemoPatient("Claire", "Weber", "104", date(1968, 2, 21), None, None, active=False,
                scenario="no letter yet: idp letters render, or Je n'ai pas de code d'activation",
                address="27, route d'Arlon\nL-8009 Strassen"),
)


class DemoRefused(click.ClickException):
    """The demo would put known credentials where they do not belong."""


def seed(reissue_letters: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Create what is missing of the demo data; returns what a person needs to use it."""
    if current_app.config["ISSUER"].startswith("https://"):
        raise DemoRefused("the demo has a known password and client secret: refusing on an https issuer")
    created = _import_missing_patients()
    patients = [_prepare_patient(person, person in created, reissue_letters) for person in PATIENTS]
    registered = [_ensure_dsp_viewer(), _ensure_mydsp()]
    resource_servers = [_ensure_dsp_api()]
    db.session.commit()
    return {"patients": patients, "clients": registered, "resource_servers": resource_servers}


def _find(person: DemoPatient) -> accounts.Account | None:
    """By name: the child's matricule depends on the day of the first seed."""
    return db.session.scalar(
        select(accounts.Account).where(
            accounts.Account.given_name == person.given_name, accounts.Account.family_name == person.family_name
        )
    )


def _import_missing_patients() -> list[DemoPatient]:
    """Bring the missing demo patients in through the registry import, as real ones arrive."""
    missing = [person for person in PATIENTS if _find(person) is None]
    if not missing:
        return []
    today = clock.now().date()
    extract = io.StringIO()
    writer = csv.writer(extract)
    writer.writerow(accounts.REGISTRY_HEADER)
    for person in missing:
        born = person.birth_date(today)
        value = matricule.with_check_digits(born.strftime("%Y%m%d") + person.sequence)
        if accounts.find_by_matricule(value) is not None:
            raise DemoRefused(f"matricule {value} already belongs to a patient who is not {person.given_name} {person.family_name}")
        writer.writerow([value, person.family_name, person.given_name, born.isoformat(), person.email or "", person.mobile or "", person.address])
    accounts.import_registry(extract.getvalue())
    return missing


def _prepare_patient(person: DemoPatient, created: bool, reissue_letters: bool) -> dict[str, Any]:
    account = _find(person)
    shown: dict[str, Any] = {
        "name": account.display_name,
        "matricule": account.matricule,
        "birth_date": account.birth_date,
        "created": created,
        "scenario": person.scenario,
    }
    if person.active:
        _activate_with_password(account)
        return {**shown, "status": account.status, "password": DEMO_PASSWORD, "email": account.email, "mobile": account.mobile}
    if account.is_active:
        return {**shown, "status": account.status, "letter": "not_needed"}
    letter = activation_letter.current_letter(account)
    if letter is not None and letter.expires_at > clock.now() and not reissue_letters:
        return {**shown, "status": account.status, "letter": "shown_at_first_seed"}
    _, code = activation_letter.issue(account, actor="demo")
    return {**shown, "status": account.status, "letter": "issued", "activation_code": code}


def _activate_with_password(account: accounts.Account) -> None:
    """Active, with the printed password working (set again if changed or locked since).

    Activation and the password are committed together, so an active demo parent has one.
    """
    if not account.is_active:
        accounts.activate(account)
        for channel in account.channels():
            accounts.mark_channel_verified(account, channel)
        credential.set_password(account, DEMO_PASSWORD)
        return
    try:
        credential.verify_password(account, DEMO_PASSWORD)
    except (credential.WrongPassword, credential.AccountLocked):
        credential.set_password(account, DEMO_PASSWORD)


def _ensure(client_id: str, **registration: Any) -> tuple[clients.Client, bool]:
    """Register a demo client, or bring an earlier seed's registration up to date."""
    registered = clients.get_any(client_id)
    if registered is None:
        registered, _ = clients.create(client_id=client_id, actor="demo", **registration)
        return registered, True
    wanted = dict(registration)
    wanted["extra_metadata"] = {**(registered.extra_metadata or {}), **wanted.get("extra_metadata", {})}
    current = {key: getattr(registered, "token_endpoint_auth_method" if key == "auth_method" else key) for key in wanted}
    if current != wanted:
        clients.update(registered, actor="demo", **wanted)
    return registered, False


def _dsp_api_audiences() -> dict[str, list[str]]:
    """Access tokens for the DSP API name it in ``aud`` (RFC 9068 §3), as it requires."""
    return {"access_token_audiences": [current_app.config["DEMO_DSP_API_AUDIENCE"]]}


def _ensure_dsp_viewer() -> dict[str, Any]:
    """The DSP viewer web app, which shows health records: confidential, first-party, held to the
    FAPI 2.0 Security Profile (PAR, PKCE, ``private_key_jwt`` with the demo key, DPoP-bound
    tokens); it takes back-channel logout tokens, so a logout at the provider ends its visits too."""
    viewer_url = current_app.config["DEMO_DSP_VIEWER_URL"].rstrip("/")
    key_file, key = _dsp_viewer_key()
    registered, created = _ensure(
        DSP_VIEWER_ID,
        name="Dossier de Soins Partagé (DSP)",
        redirect_uris=[f"{viewer_url}/callback"],
        post_logout_redirect_uris=[f"{viewer_url}/"],
        grant_types=DEMO_GRANT_TYPES,
        scope=f"openid profile email phone offline_access matricule {DELEGATION_SCOPES}",
        auth_method="private_key_jwt",
        jwks={"keys": [{**key.as_dict(private=False), "kid": key.kid, "alg": "ES256", "use": "sig"}]},
        security_profile="fapi2",
        first_party=True,
        extra_metadata={**_dsp_api_audiences(), "backchannel_logout_uri": f"{viewer_url}/backchannel-logout",
                        "backchannel_logout_session_required": True,
                        # OpenID Connect Dynamic Client Registration §2.1: the name in each page language
                        "client_name#fr": "Dossier de Soins Partagé (DSP)", "client_name#de": "Gemeinsame Patientenakte (DSP)",
                        "client_name#en": "Shared Care Record (DSP)"},
    )
    return {**_shown(registered, created), "client_key_file": str(key_file)}


def _dsp_viewer_key() -> tuple[Path, ECKey]:
    """The viewer's private key (EC P-256, ES256), made at the first seed into the instance
    folder, readable by its owner only, and kept: the viewer reads it from there."""
    path = Path(current_app.instance_path) / DSP_VIEWER_KEY_FILE
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = ECKey.generate_key("P-256", private=True)
        try:  # O_EXCL: of two seeds at once, the second reads the first one's key
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as handle:
                json.dump({**key.as_dict(private=True), "kid": key.thumbprint()}, handle)
    return path, ECKey.import_key(json.loads(path.read_text()))


def _ensure_mydsp() -> dict[str, Any]:
    """The MyDSP mobile app: a public native client (RFC 8252), any loopback port, its tokens
    bound to the app's key: no token without a DPoP proof (RFC 9449 §5.2)."""
    registered, created = _ensure(
        MYDSP_ID,
        name="MyDSP",
        redirect_uris=["http://127.0.0.1/callback"],
        grant_types=DEMO_GRANT_TYPES,
        scope=f"openid profile offline_access {DELEGATION_SCOPES}",
        auth_method="none",
        extra_metadata={**_dsp_api_audiences(), "dpop_bound_access_tokens": True},
    )
    return _shown(registered, created)


def _ensure_dsp_api() -> dict[str, Any]:
    """The DSP API, registered as the resource server of its audience: the access tokens both
    apps get for it name each patient by one identifier chosen for it (RFC 9068 §6), and it alone
    may introspect them (RFC 7662 §4). Its secret is shown when it is created."""
    audience = current_app.config["DEMO_DSP_API_AUDIENCE"]
    registered = clients.get_any(DSP_API_ID)
    secret = None
    if registered is None:
        registered, secret = clients.create(client_id=DSP_API_ID, name="DSP API (demo)", grant_types=["client_credentials"],
                                            scope="openid", resource_audience=audience, actor="demo")
    elif registered.resource_audience != audience:
        clients.update(registered, actor="demo", resource_audience=audience)
    shown = {"client_id": registered.client_id, "name": registered.name, "created": secret is not None, "resource_audience": audience}
    return {**shown, "client_secret": secret} if secret else shown


def _shown(registered: clients.Client, created: bool) -> dict[str, Any]:
    return {
        "client_id": registered.client_id,
        "name": registered.name,
        "created": created,
        "token_endpoint_auth_method": registered.token_endpoint_auth_method,
        "redirect_uris": list(registered.redirect_uris),
        "scope": registered.scope,
    }


def _as_text(report: dict[str, list[dict[str, Any]]]) -> str:
    issuer = current_app.config["ISSUER"]
    lines = [f"Demo patients (log in at {issuer}/login; one-time codes: idp outbox list):"]
    for patient in report["patients"]:
        if "password" in patient:
            detail = f"password {patient['password']}"
        elif patient["letter"] == "issued":
            detail = f"activation code {patient['activation_code']}"
        elif patient["letter"] == "shown_at_first_seed":
            detail = "activation code shown when first issued (new one: idp demo seed --reissue-letters)"
        else:
            detail = "already activated"
        lines.append(f"  {patient['name']:<11} matricule {patient['matricule']}  {patient['status']:<7}  {detail}")
    lines.append("Demo relying parties:")
    for registered in report["clients"]:
        if registered["token_endpoint_auth_method"] == "none":
            how = "public client (PKCE), any loopback port"
        else:
            how = f"FAPI 2.0, private_key_jwt with the key in {registered['client_key_file']}"
        lines.append(f"  {registered['client_id']:<11} {how:<40} redirect {' '.join(registered['redirect_uris'])}")
    lines.append("Demo resource server:")
    for server in report["resource_servers"]:
        secret = f", secret {server['client_secret']} (shown once)" if server.get("client_secret") else ""
        lines.append(f"  {server['client_id']:<11} resource server of {server['resource_audience']}{secret}")
    return "\n".join(lines)


demo_cli = AppGroup("demo", help="Demo data for the embedded default.")


@demo_cli.command("seed")
@click.option("--reissue-letters", is_flag=True, help="Issue new activation codes for the pending demo patients.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def seed_command(reissue_letters: bool, as_json: bool) -> None:
    """Create the demo patients and relying parties (idempotent) and print how to use them."""
    emit(seed(reissue_letters), as_json, _as_text)
