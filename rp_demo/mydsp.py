"""MyDSP: a command-line stand-in for the mobile app (``python -m rp_demo.mydsp``).

A public native client (RFC 8252): no secret, PKCE (S256), the redirect caught by a one-shot
HTTP server on a loopback IP address with a port chosen at run time (§7.3), the system
browser for the login (§8.12, never an embedded view). Refresh tokens keep it logged in; it
lists the records the patient may open (``assisted_patients``) and opens a child's record
through a token exchange (RFC 8693). Tokens are kept in a file readable only by the user.

Its tokens are sender-constrained with DPoP (RFC 9449): the installation's own EC P-256 key,
made at first use and kept beside the tokens, signs a proof for every token request and every
call to userinfo and the DSP API; the provider binds access and refresh tokens to that key
(``cnf.jkt``), so a copied token is useless without it. Server nonces (§8, §9) are followed.

    python -m rp_demo.mydsp login      # opens the browser on the eSanté login
    python -m rp_demo.mydsp records    # my record and the ones I assist
    python -m rp_demo.mydsp open 2     # the second record of the list
"""

import argparse
import json
import os
import secrets
import sys
import threading
import time
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.client import DEFAULT_HEADERS
from authlib.oidc.core import CodeIDToken

from .protocol import (DPoPKey, InvalidToken, ProviderError, ProviderKeys, discover, dpop_request, origin, remember_dpop_nonce,
                       token_exchange_parameters)

CLIENT_ID = "mydsp"
SCOPE = "openid profile offline_access delegations assisted_patients"
REFRESH_MARGIN = 30
DEFAULT_TOKEN_FILE = Path.home() / ".config" / "mydsp" / "tokens.json"
DPOP_KEY_FILE_NAME = "dpop-key.json"  # beside the token file
USE_DPOP_NONCE = "use_dpop_nonce"
ACCESS_WITHDRAWN = ("L'accès de MyDSP à votre compte eSanté a été retiré ou a expiré (par exemple dans « Mon compte » › "
                    "« Services autorisés »). Reconnectez-vous : python -m rp_demo.mydsp login")


class MyDspError(Exception):
    """Something the person using the app must be told; the message is French."""


class _Callback(BaseHTTPRequestHandler):
    """Receives the one authorization response, then tells the browser to go back to the app."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        if parts.path != "/callback":
            self.send_error(404)
            return
        self.server.response_url = self.path  # type: ignore[attr-defined]
        body = "<!doctype html><html lang=fr><meta charset=utf-8><title>MyDSP</title><p>Vous pouvez revenir à MyDSP.</p>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the terminal is the app's screen
        pass


class MyDsp:
    def __init__(self, issuer: str, dsp_api: str, *, dsp_api_audience: str | None = None, client_id: str = CLIENT_ID,
                 token_file: Path = DEFAULT_TOKEN_FILE):
        self.issuer, self.client_id, self.token_file = issuer, client_id, Path(token_file)
        self.dsp_api = dsp_api.rstrip("/")
        self.dsp_api_audience = dsp_api_audience or self.dsp_api
        self.metadata = discover(issuer)
        self.keys = ProviderKeys(self.metadata["jwks_uri"])
        self.state: dict[str, Any] | None = json.loads(self.token_file.read_text()) if self.token_file.exists() else None
        self.dpop_key = DPoPKey.load_or_create(self.token_file.with_name(DPOP_KEY_FILE_NAME))
        self.dpop_nonces: dict[str, str] = {}  # per server origin, the last DPoP-Nonce it gave (§8, §9)

    # --- login -------------------------------------------------------------------------------

    def login(self, open_url: Callable[[str], Any] = webbrowser.open, timeout: float = 300) -> dict[str, Any]:
        """Authorization code + PKCE through the browser; returns the verified ID token's claims."""
        server = HTTPServer(("127.0.0.1", 0), _Callback)
        server.response_url = None  # type: ignore[attr-defined]
        server.timeout = 1
        redirect_uri = f"http://127.0.0.1:{server.server_port}/callback"
        client = self._session(redirect_uri=redirect_uri)
        verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        url, state = client.create_authorization_url(self.metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
        opener = threading.Thread(target=open_url, args=(url,), daemon=True)
        opener.start()
        deadline = time.monotonic() + timeout
        try:
            while server.response_url is None and time.monotonic() < deadline:  # type: ignore[attr-defined]
                server.handle_request()
        finally:
            server.server_close()
        response_url = server.response_url  # type: ignore[attr-defined]
        if response_url is None:
            raise MyDspError("Aucune réponse de la page de connexion eSanté.")
        answer = {key: values[0] for key, values in parse_qs(urlsplit(response_url).query).items()}
        if answer.get("state") != state:
            raise MyDspError("Réponse de connexion inattendue (state).")
        if "error" in answer:
            raise MyDspError(f"Connexion refusée : {answer['error']} {answer.get('error_description', '')}".strip())
        if self.metadata.get("authorization_response_iss_parameter_supported") and answer.get("iss") != self.issuer:
            raise MyDspError("Réponse de connexion d'un autre émetteur (iss).")  # RFC 9207 §2.4
        try:
            token = self._token_request(lambda headers: client.fetch_token(
                self.metadata["token_endpoint"], code=answer["code"], code_verifier=verifier, grant_type="authorization_code",
                headers=headers))
        except AuthlibBaseError as error:
            raise MyDspError(f"Connexion refusée par eSanté : {error}") from None
        claims = self._verify_id_token(token, nonce)
        self._save({"sub": claims["sub"], "token": dict(token)})
        return claims

    def _verify_id_token(self, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        """OpenID Connect Core §3.1.3.7 via Authlib's CodeIDToken: iss, aud, azp, exp, iat, nonce, at_hash."""
        try:
            decoded = self.keys.verify(token["id_token"])
            claims = CodeIDToken(decoded.claims, decoded.header, {"iss": {"values": [self.issuer]}},
                                 {"nonce": nonce, "client_id": self.client_id, "access_token": token["access_token"]})
            claims.validate(leeway=60)
        except (KeyError, AuthlibBaseError, InvalidToken, ProviderError) as error:
            raise MyDspError(f"Jeton d'identité refusé : {error}") from None
        return dict(claims)

    # --- using the tokens --------------------------------------------------------------------

    def access_token(self) -> str:
        """The patient's access token, renewed with the refresh token shortly before it expires."""
        if self.state is None:
            raise MyDspError("Vous n'êtes pas connecté : lancez d'abord « login ».")
        token = self.state["token"]
        # A token saved before MyDSP used DPoP is renewed at once, bound this time.
        if token.get("expires_at", 0) - REFRESH_MARGIN <= time.time() or str(token.get("token_type")).lower() != "dpop":
            session = self._session()
            try:
                renewed = self._token_request(lambda headers: session.refresh_token(
                    self.metadata["token_endpoint"], refresh_token=token["refresh_token"], headers=headers))
            except OAuthError as error:
                if error.error == "invalid_grant":  # RFC 6749 §5.2: revoked, expired or withdrawn
                    raise MyDspError(ACCESS_WITHDRAWN) from None
                raise MyDspError(f"eSanté refuse de renouveler l'accès ({error.error}) : reconnectez-vous avec « login ».") from None
            except (AuthlibBaseError, KeyError):
                raise MyDspError(ACCESS_WITHDRAWN) from None
            self._save({**self.state, "token": dict(renewed)})
        return self.state["token"]["access_token"]

    def records(self) -> list[dict[str, Any]]:
        """My record first, then those I assist: ``{"sub", "name", "own"}``."""
        response = self._resource_request("GET", self.metadata["userinfo_endpoint"], self.access_token())
        if response.status_code == 401 and 'error="invalid_token"' in response.headers.get("WWW-Authenticate", ""):
            raise MyDspError(ACCESS_WITHDRAWN)  # RFC 6750 §3.1: the token was revoked with the access
        if response.status_code != 200:
            raise MyDspError(f"eSanté refuse la lecture du profil ({response.status_code}).")
        userinfo = response.json()
        if userinfo.get("sub") != self.state["sub"]:
            raise MyDspError("Profil d'un autre patient reçu.")  # Core §5.3.2
        own = {"sub": userinfo["sub"], "name": userinfo.get("name"), "own": True}
        return [own, *({"sub": p["sub"], "name": p.get("name"), "own": False} for p in userinfo.get("assisted_patients", []))]

    def open_record(self, subject: str) -> dict[str, Any]:
        """The DSP API's record of ``subject``: with my token for mine, an exchanged one otherwise."""
        own_token = self.access_token()
        if subject == self.state["sub"]:
            token = own_token
        else:
            session = self._session()
            try:
                exchanged = self._token_request(lambda headers: session.fetch_token(
                    self.metadata["token_endpoint"], scope="", headers=headers,
                    **token_exchange_parameters(own_token, subject, self.dsp_api_audience),
                ))
            except AuthlibBaseError as error:
                raise MyDspError(f"Accès au dossier refusé par eSanté : {error}") from None
            token = exchanged["access_token"]
        response = self._resource_request("GET", f"{self.dsp_api}/v1/record", token)
        if response.status_code != 200:
            raise MyDspError(f"Le DSP refuse l'accès ({response.status_code}).")
        return response.json()

    # --- DPoP (RFC 9449) ------------------------------------------------------------------------

    def _token_request(self, send: Callable[[dict[str, str]], dict[str, Any]]) -> dict[str, Any]:
        """``send(headers)`` to the token endpoint with a proof (§5); once more with the server's
        nonce when it answers ``use_dpop_nonce`` (§8). The tokens must come back DPoP-bound."""
        url = self.metadata["token_endpoint"]
        sent_nonce = self.dpop_nonces.get(origin(url))
        try:
            token = send(self._token_request_headers(url))
        except OAuthError as error:
            if error.error != USE_DPOP_NONCE or self.dpop_nonces.get(origin(url)) in (None, sent_nonce):
                raise
            token = send(self._token_request_headers(url))
        if str(token.get("token_type", "")).lower() != "dpop":  # §5: a bearer token would not be bound to our key
            raise MyDspError("eSanté n'a pas lié le jeton à la clé de MyDSP (DPoP) : connexion refusée.")
        return token

    def _token_request_headers(self, url: str) -> dict[str, str]:
        return {**DEFAULT_HEADERS, "DPoP": self.dpop_key.proof("POST", url, nonce=self.dpop_nonces.get(origin(url)))}

    def _resource_request(self, method: str, url: str, access_token: str) -> requests.Response:
        return dpop_request(method, url, access_token, self.dpop_key, self.dpop_nonces)

    def _remember_nonce(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        remember_dpop_nonce(self.dpop_nonces, response)

    def _session(self, redirect_uri: str | None = None) -> OAuth2Session:
        session = OAuth2Session(self.client_id, scope=SCOPE, redirect_uri=redirect_uri, code_challenge_method="S256",
                                token_endpoint_auth_method="none")
        session.hooks["response"].append(self._remember_nonce)  # the token endpoint's nonces (§8)
        return session

    def _save(self, state: dict[str, Any]) -> None:
        """Written 0600 before any byte lands: tokens are credentials."""
        self.token_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # an older file may have been created wider
        with os.fdopen(descriptor, "w") as handle:
            json.dump(state, handle)
        self.state = state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rp_demo.mydsp", description="MyDSP, the DSP app, on the command line.")
    parser.add_argument("--issuer", default="http://127.0.0.1:5000")
    parser.add_argument("--dsp-api", default="http://127.0.0.1:5002")
    parser.add_argument("--token-file", type=Path, default=DEFAULT_TOKEN_FILE)
    commands = parser.add_subparsers(dest="command", required=True)
    login = commands.add_parser("login", help="log in through the browser")
    login.add_argument("--no-browser", action="store_true", help="print the URL instead of opening a browser")
    commands.add_parser("records", help="the records you may open")
    opening = commands.add_parser("open", help="open a record: its number in `records`, or its sub")
    opening.add_argument("record")
    arguments = parser.parse_args(argv)
    try:
        app = MyDsp(arguments.issuer, arguments.dsp_api, token_file=arguments.token_file)
        if arguments.command == "login":
            opener = (lambda url: print(f"Ouvrez cette adresse dans votre navigateur :\n{url}", flush=True)) if arguments.no_browser else webbrowser.open
            claims = app.login(opener)
            print(f"Connecté (sub {claims['sub']}).")
        elif arguments.command == "records":
            for number, record in enumerate(app.records(), start=1):
                print(f"{number}. {record['name']}{' (mon dossier)' if record['own'] else ''}")
        else:
            listed = app.records()
            chosen = next((r for r in listed if r["sub"] == arguments.record), None)
            if chosen is None and arguments.record.isdigit() and 1 <= int(arguments.record) <= len(listed):
                chosen = listed[int(arguments.record) - 1]
            if chosen is None:
                raise MyDspError("Dossier inconnu : choisissez un numéro de la liste « records ».")
            record = app.open_record(chosen["sub"])
            acting = " (vous agissez en tant qu'assistant DSP)" if record.get("acting") else ""
            print(f"Dossier de {chosen['name']}{acting} — mes derniers documents :")
            for document in record["documents"]:
                print(f"  {document['date']}  {document['title']} — {document['author']}")
    except (MyDspError, ProviderError, requests.RequestException) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
