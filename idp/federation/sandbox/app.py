"""Sandbox stand-ins for MyGuichet and LuxTrust: SAML identity providers for development and tests.

Built on pysaml2 with Debian's ``xmlsec1``, an implementation independent of our service provider
(python3-saml), so that our SP is tested against a different SAML stack. Each stand-in has its
own key pair (generated on first start into ``<instance>/sandbox/``), publishes its metadata at
``/saml/metadata`` and fetches our SP's metadata from ``sp_metadata_url`` when it first needs it.
Never deploy it: any visitor can log in as any test citizen. It says so at start-up.
"""

import base64
import logging
import secrets
import threading
import urllib.request
from pathlib import Path
from typing import Any

from flask import Flask, abort, render_template, request
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, xmldsig
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server

from ...assurance import ACR_VALUES
from ..keys import ensure_key_pair
from .citizens import Citizen, luxtrust_citizens, myguichet_citizens

XMLSEC_BINARY = "/usr/bin/xmlsec1"
KINDS = {"myguichet": "MyGuichet.lu (bac à sable)", "luxtrust": "LuxTrust (bac à sable)"}
# The stand-ins' authentication devices and the eIDAS level each reaches (LuxTrust Token and
# Mobile: substantial; smartcard and the electronic identity card: high).
DEVICES = {
    "token": ("LuxTrust Token", ACR_VALUES[1]),
    "mobile": ("LuxTrust Mobile", ACR_VALUES[1]),
    "smartcard": ("LuxTrust Smartcard", ACR_VALUES[2]),
    "eid": ("Carte d'identité électronique (eID)", ACR_VALUES[2]),
}
log = logging.getLogger(__name__)


class SpUnreachable(Exception):
    pass


def create_sandbox_app(kind: str, base_url: str, sp_metadata_url: str, instance_path: Path,
                       citizens: list[Citizen] | None = None, sp_home_url: str | None = None) -> Flask:
    """A stand-in identity provider of ``kind`` ("myguichet" or "luxtrust") served at ``base_url``."""
    if kind not in KINDS:
        raise ValueError(f"unknown stand-in {kind!r}")
    app = Flask(__name__, template_folder=str(Path(__file__).parents[2] / "templates" / "federation" / "sandbox"))
    app.config["SECRET_KEY"] = secrets.token_urlsafe(32)
    base_url = base_url.rstrip("/")
    key_file, cert_file = ensure_key_pair(Path(instance_path) / "sandbox", kind, f"{kind} sandbox IdP")
    stand_in = _StandIn(kind, base_url, sp_metadata_url, key_file, cert_file,
                        citizens if citizens is not None else (myguichet_citizens() if kind == "myguichet" else luxtrust_citizens()))
    sp_home_url = sp_home_url or sp_metadata_url.split("/saml/")[0]
    log.warning("SANDBOX %s stand-in at %s: test identities only, never deploy it", kind, base_url)
    context = {"title": KINDS[kind], "kind": kind, "devices": DEVICES, "sp_home_url": sp_home_url}

    @app.get("/saml/metadata")
    def metadata():
        return app.response_class(stand_in.metadata(), mimetype="application/samlmetadata+xml")

    @app.get("/")
    def home():
        return render_template("home.html", citizens=stand_in.citizens, **context)

    @app.get("/saml/sso")
    def single_sign_on():
        try:
            server = stand_in.server()
            parsed = server.parse_authn_request(request.args.get("SAMLRequest", ""), BINDING_HTTP_REDIRECT,
                                                relay_state=request.args.get("RelayState"),
                                                sigalg=request.args.get("SigAlg"), signature=request.args.get("Signature"))
        except SpUnreachable:
            return render_template("error.html", message="Le service eSanté est injoignable (métadonnées).", **context), 502
        except Exception as error:  # noqa: BLE001 - any unreadable or unsigned request is refused the same way
            return render_template("error.html", message=f"Demande d'authentification refusée : {error}", **context), 400
        minimum = _requested_level(parsed.message)
        token = stand_in.remember({"request": parsed.message, "relay_state": request.args.get("RelayState")})
        devices = {key: value for key, value in DEVICES.items() if ACR_VALUES.index(value[1]) >= ACR_VALUES.index(minimum)}
        return render_template("login.html", citizens=stand_in.citizens, token=token, **{**context, "devices": devices})

    @app.post("/saml/sso")
    def single_sign_on_answer():
        pending = stand_in.take(request.form.get("token", ""))
        citizen = stand_in.citizen(request.form.get("citizen", ""))
        device = request.form.get("device", "token")
        if pending is None or citizen is None or device not in DEVICES:
            abort(400)
        server = stand_in.server()
        arguments = server.response_args(pending["request"])
        response = stand_in.authn_response(citizen, device, arguments["destination"], arguments["sp_entity_id"], arguments["in_response_to"])
        return render_template("post.html", action=arguments["destination"], response=response, relay_state=pending["relay_state"], **context)

    @app.post("/idp-initiated")
    def idp_initiated():
        """MyGuichet's "Dossier de Soins Partagé (DSP)" entry: an unsolicited response to eSanté."""
        citizen = stand_in.citizen(request.form.get("citizen", ""))
        device = request.form.get("device", "token")
        if citizen is None or device not in DEVICES:
            abort(400)
        try:
            server = stand_in.server()
        except SpUnreachable:
            return render_template("error.html", message="Le service eSanté est injoignable (métadonnées).", **context), 502
        sp_entity_id = stand_in.sp_entity_id
        destination = server.metadata.assertion_consumer_service(sp_entity_id, binding=BINDING_HTTP_POST)[0]["location"]
        response = stand_in.authn_response(citizen, device, destination, sp_entity_id, None)
        return render_template("post.html", action=destination, response=response, relay_state="", **context)

    @app.get("/saml/slo")
    def single_logout():
        try:
            server = stand_in.server()
            parsed = server.parse_logout_request(request.args.get("SAMLRequest", ""), BINDING_HTTP_REDIRECT,
                                                 relay_state=request.args.get("RelayState"),
                                                 sigalg=request.args.get("SigAlg"), signature=request.args.get("Signature"))
        except Exception as error:  # noqa: BLE001
            return render_template("error.html", message=f"Demande de déconnexion refusée : {error}", **context), 400
        issuer = parsed.message.issuer.text
        destination = server.metadata.single_logout_service(issuer, BINDING_HTTP_REDIRECT, "spsso")[0]["location"]
        answer = server.create_logout_response(parsed.message, [BINDING_HTTP_REDIRECT], sign_alg=xmldsig.SIG_RSA_SHA256,
                                               digest_alg=xmldsig.DIGEST_SHA256)
        binding = server.apply_binding(BINDING_HTTP_REDIRECT, str(answer), destination, request.args.get("RelayState"),
                                       response=True, sign=True, sigalg=xmldsig.SIG_RSA_SHA256)
        location = dict(binding["headers"])["Location"]
        return "", 303, {"Location": location}

    app.extensions["sandbox_stand_in"] = stand_in
    return app


def _requested_level(authn_request: Any) -> str:
    context = getattr(authn_request, "requested_authn_context", None)
    refs = [ref.text for ref in (context.authn_context_class_ref if context else [])]
    known = [ref for ref in refs if ref in ACR_VALUES]
    return min(known, key=ACR_VALUES.index) if known else ACR_VALUES[0]


class _StandIn:
    """The pysaml2 server of one stand-in, built once our SP's metadata could be fetched."""

    def __init__(self, kind: str, base_url: str, sp_metadata_url: str, key_file: Path, cert_file: Path, citizens: list[Citizen]):
        self.kind, self.base_url, self.sp_metadata_url = kind, base_url, sp_metadata_url
        self.key_file, self.cert_file = key_file, cert_file
        self.citizens = citizens
        self.sp_entity_id = sp_metadata_url
        self._server: Server | None = None
        self._pending: dict[str, dict] = {}
        self._lock = threading.Lock()

    def _config(self, sp_metadata: str | None) -> IdPConfig:
        document: dict[str, Any] = {
            "entityid": self.base_url + "/saml/metadata",
            "name": KINDS[self.kind],
            "service": {"idp": {
                "endpoints": {
                    "single_sign_on_service": [(self.base_url + "/saml/sso", BINDING_HTTP_REDIRECT)],
                    "single_logout_service": [(self.base_url + "/saml/slo", BINDING_HTTP_REDIRECT)],
                },
                "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                "want_authn_requests_signed": True,
                "sign_response": True,
                "sign_assertion": True,
                "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None}},
            }},
            "key_file": str(self.key_file),
            "cert_file": str(self.cert_file),
            "xmlsec_binary": XMLSEC_BINARY,
            "crypto_backend": "xmlsec1",
            "allow_unknown_attributes": True,
            "signing_algorithm": xmldsig.SIG_RSA_SHA256,
            "digest_algorithm": xmldsig.DIGEST_SHA256,
            "accepted_time_diff": 60,
        }
        if sp_metadata:
            document["metadata"] = {"inline": [sp_metadata]}
        config = IdPConfig()
        config.load(document)
        return config

    def metadata(self) -> str:
        return create_metadata_string(None, config=self._config(None), valid=None, sign=True)

    def server(self) -> Server:
        with self._lock:
            if self._server is None:
                try:
                    with urllib.request.urlopen(self.sp_metadata_url, timeout=5) as answer:  # noqa: S310 - configured URL
                        sp_metadata = answer.read().decode()
                except OSError as error:
                    raise SpUnreachable(str(error)) from None
                self._server = Server(config=self._config(sp_metadata))
            return self._server

    def remember(self, value: dict) -> str:
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._pending[token] = value
        return token

    def take(self, token: str) -> dict | None:
        with self._lock:
            return self._pending.pop(token, None)

    def citizen(self, subject: str) -> Citizen | None:
        return next((citizen for citizen in self.citizens if citizen.subject == subject), None)

    def authn_response(self, citizen: Citizen, device: str, destination: str, sp_entity_id: str, in_response_to: str | None) -> str:
        """A signed (assertion and response) SAML Response, base64 for the HTTP-POST binding."""
        identity = {"givenName": [citizen.given_name], "sn": [citizen.family_name], "authnDevice": [device]}
        if citizen.national_id:
            identity["nationalIdentifier"] = [citizen.national_id]
        if citizen.email:
            identity["mail"] = [citizen.email]
        if citizen.phone:
            identity["mobile"] = [citizen.phone]
        server = self.server()
        name_id = NameID(format=NAMEID_FORMAT_PERSISTENT, text=citizen.subject, sp_name_qualifier=sp_entity_id,
                         name_qualifier=server.config.entityid)
        response = server.create_authn_response(
            identity, in_response_to, destination, sp_entity_id, name_id=name_id,
            authn={"class_ref": DEVICES[device][1], "authn_auth": server.config.entityid},
            sign_response=True, sign_assertion=True, sign_alg=xmldsig.SIG_RSA_SHA256, digest_alg=xmldsig.DIGEST_SHA256,
        )
        return base64.b64encode(str(response).encode()).decode()
