"""The DSP viewer: the demo web relying party (``python -m rp_demo.viewer``), in French, German or English.

A confidential client on Authlib's Flask integration, held to the FAPI 2.0 Security Profile
(it shows health records): discovery, the authorization request pushed (PAR, RFC 9126) with
PKCE (S256) and nonce, ``private_key_jwt`` client authentication with the issuer as audience
(the key ``idp demo seed`` made, ``CLIENT_KEY_FILE``), DPoP-bound tokens (RFC 9449: a key of
this process signs a proof for every token request and every call, the provider's nonces
followed; Authlib's client has neither PAR nor DPoP, so those are added here), the ID token
checked against the provider's JWKS, ``iss`` in the response (RFC 9207), a refresh token kept
(the profile does not rotate it), RP-initiated logout, and back-channel logout (a session ended
at the provider ends the visits started in it). Its pages follow the guide's DSP screenshots: the
record (Synthèse / Ligne de vie / Vue documentaire / Traçabilité) comes from the DSP API, the
"Assistants" panel from the provider's delegation API, and "Accéder aux autres dossiers
patient" opens a child's record with a token exchange (RFC 8693).

The pages follow the patient's language like the provider's (Flask-Babel, catalogues in
``rp_demo/translations``): a language picked in the header, else the ``locale`` claim of the
patient's profile, else the browser's; the login asks the provider for the same (``ui_locales``,
OpenID Connect Core §3.1.2.1). A record is read from the DSP API once per opening (its first page
after the login or after "Accéder aux autres dossiers patient"), so its trail has one row per
opening, not per tab; times are shown in Luxembourg time.

Tokens stay on the server (a per-visit store keyed by a random id in the signed cookie): they
do not fit a cookie, and a browser has no business holding them. That store, like the ``jti``
of the logout tokens already received, is this process's memory: the demo runs one viewer
process (several would need a shared one, as the provider keeps its state in Redis).
"""

import argparse
import json
import re
import secrets
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import MismatchingStateError
from authlib.integrations.flask_client import OAuth
from authlib.oauth2.client import DEFAULT_HEADERS
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from flask import Blueprint, Flask, abort, current_app, flash, jsonify, redirect, render_template, request, session, url_for
from flask_babel import Babel, format_datetime, get_locale, gettext as _, lazy_gettext as _l
from flask_wtf.csrf import CSRFError, CSRFProtect
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from werkzeug.serving import run_simple

from .protocol import (TIMEOUT, DPoPKey, InvalidToken, LogoutTokenValidator, ProviderError, ProviderKeys, discover, dpop_request,
                       origin, remember_dpop_nonce, token_exchange_parameters)

SCOPE = "openid profile offline_access delegations assisted_patients"
REFRESH_MARGIN = 30  # seconds before expiry at which a token is renewed
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 §2.2
ASSERTION_LIFETIME = 60  # seconds
USE_DPOP_NONCE = "use_dpop_nonce"
# The key ``idp demo seed`` made, in the checkout's instance folder (``--client-key-file``).
DEFAULT_CLIENT_KEY_FILE = Path(__file__).resolve().parent.parent / "instance" / "dsp-viewer-key.json"
LANGUAGES = ("fr", "de", "en")
TABS = {
    "synthese": _l("Synthèse"),
    "ligne-de-vie": _l("Ligne de vie"),
    "documents": _l("Vue documentaire"),
    "tracabilite": _l("Traçabilité"),
}
API_ERRORS = {
    "not_found": _l("Aucun patient ne correspond à ce numéro assuré."),
    "invalid_request": _l("Numéro assuré invalide : il compte 11 ou 13 chiffres."),
    "conflict": _l("Cette personne est déjà assistant de ce dossier."),
    "access_denied": _l("Vous ne pouvez pas gérer les assistants de ce dossier."),
    "too_many_requests": _l("Trop de recherches d'assistants : réessayez plus tard."),
}
# The applications that read records, by client id: the trail names them, not their ids.
APPLICATION_NAMES = {
    "dsp-viewer": _l("DSP (site web)"),
    "mydsp": _l("MyDSP (application mobile)"),
}
STEP_UP_MAX_AGE = re.compile(r'max_age="?(\d+)')


blueprint = Blueprint("viewer", __name__)


class SessionExpired(Exception):
    """The patient's own tokens can no longer be renewed: a new login is needed."""


class RecordClosed(Exception):
    """The delegation behind the open record ended; carries that record's name."""


class AuthorizationRefused(Exception):
    """The provider refused the pushed authorization request: ``error`` and its description."""

    def __init__(self, error: str, description: str | None):
        super().__init__(description or error)
        self.error, self.description = error, description


class IssuerAssertion(PrivateKeyJWT):
    """``private_key_jwt`` for Authlib's token requests, as the FAPI 2.0 Security Profile wants it
    (:func:`client_assertion`)."""

    def sign(self, auth, token_endpoint):
        return client_assertion()


class Visits:
    """Server-side state of each logged-in visit (tokens, patient, the ID token's ``sid``, open record).

    A visit never logged out is forgotten after ``MAX_AGE``, the provider's longest SSO session.
    A visit ended by the provider (back-channel logout) is remembered as such for as long, so
    the browser still holding its id is told why it has to log in again.
    """

    MAX_AGE = 12 * 3600

    def __init__(self) -> None:
        self._visits: dict[str, dict[str, Any]] = {}
        self._logged_out: dict[str, float] = {}  # visit id -> when the provider ended it
        self._lock = threading.Lock()

    def start(self, state: dict[str, Any]) -> str:
        visit_id = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            for stale in [key for key, visit in self._visits.items() if visit["started_at"] < now - self.MAX_AGE]:
                del self._visits[stale]
            for stale in [key for key, ended_at in self._logged_out.items() if ended_at < now - self.MAX_AGE]:
                del self._logged_out[stale]
            self._visits[visit_id] = {**state, "started_at": now}
        return visit_id

    def end_logged_out(self, *, sid: str | None, sub: str | None) -> int:
        """Back-Channel Logout 1.0 §2.7: end the visits of the provider session ``sid`` (all the
        patient's visits when only ``sub`` is given); every claim given must match."""
        if not sid and not sub:
            return 0
        now = time.time()
        with self._lock:
            ended = [key for key, visit in self._visits.items()
                     if (not sid or visit.get("sid") == sid) and (not sub or visit["user"]["sub"] == sub)]
            for key in ended:
                del self._visits[key]
                self._logged_out[key] = now
        return len(ended)

    def was_logged_out(self, visit_id: str | None) -> bool:
        """Whether the provider ended this visit; answered once, for the browser's next request."""
        with self._lock:
            return self._logged_out.pop(visit_id, None) is not None if visit_id else False

    def get(self, visit_id: str | None) -> dict[str, Any] | None:
        with self._lock:
            return self._visits.get(visit_id) if visit_id else None

    def end(self, visit_id: str | None) -> dict[str, Any] | None:
        with self._lock:
            return self._visits.pop(visit_id, None) if visit_id else None


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """``ISSUER``, ``CLIENT_ID``, ``CLIENT_KEY_FILE`` (the private JWK it authenticates with, read
    at the first login), ``PUBLIC_URL`` (this app), ``DSP_API_URL``."""
    app = Flask(__name__, template_folder="templates/viewer", static_folder="static")
    app.config.update(
        ISSUER="http://127.0.0.1:5000",
        CLIENT_ID="dsp-viewer",
        CLIENT_KEY_FILE=str(DEFAULT_CLIENT_KEY_FILE),
        PUBLIC_URL="http://127.0.0.1:5001",
        DSP_API_URL="http://127.0.0.1:5002",
        SECRET_KEY=secrets.token_urlsafe(32),
        # The provider shares the host 127.0.0.1 (cookies ignore ports): keep our cookie apart.
        SESSION_COOKIE_NAME="dsp_viewer_session",
        SESSION_COOKIE_SAMESITE="Lax",
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).parent / "translations"),
        BABEL_DEFAULT_TIMEZONE="Europe/Luxembourg",
    )
    app.config.update(config or {})
    Babel(app, locale_selector=_select_locale)
    csrf = CSRFProtect(app)
    csrf.exempt(backchannel_logout)  # the provider posts it, server to server (Back-Channel Logout §2.5)
    oauth = OAuth(app)
    oauth.register(
        "esante",
        client_id=app.config["CLIENT_ID"],
        server_metadata_url=app.config["ISSUER"].rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256", "token_endpoint_auth_method": "private_key_jwt"},
        client_auth_methods=[IssuerAssertion()],
        compliance_fix=lambda client: client.hooks["response"].append(lambda response, *args, **kwargs: _remember_nonce(response)),
    )
    app.extensions["dsp_viewer"] = {"visits": Visits(), "metadata": None, "logout_tokens": None, "client_key": None,
                                    "dpop_key": DPoPKey(ECKey.generate_key("P-256", private=True)), "dpop_nonces": {}}
    app.register_blueprint(blueprint)
    app.register_error_handler(SessionExpired, lambda error: _end_visit_and_login())
    app.register_error_handler(RecordClosed, _record_closed)
    app.register_error_handler(AuthorizationRefused, lambda error: (render_template(
        "error.html", error=error.error, description=error.description), 400))
    app.register_error_handler(CSRFError, lambda error: (render_template(
        "error.html", title=_("Formulaire expiré"), error="csrf", description=_("Le formulaire a expiré : veuillez réessayer.")), 400))
    app.register_error_handler(requests.RequestException, _service_unavailable)
    app.register_error_handler(ProviderError, _service_unavailable)
    app.add_template_filter(local_time, "viewer_datetime")
    return app


def local_time(timestamp: float) -> str:
    """A Unix time as Luxembourg time (``BABEL_DEFAULT_TIMEZONE``), whatever the server's zone."""
    return format_datetime(datetime.fromtimestamp(timestamp, timezone.utc), "dd/MM/yyyy HH:mm:ss")


def _select_locale() -> str:
    """The header's choice, else the patient's language at the provider, else the browser's."""
    chosen = session.get("locale")
    if chosen in LANGUAGES:
        return chosen
    visit = _visits().get(session.get("visit")) if "dsp_viewer" in current_app.extensions else None
    profile = ((visit or {}).get("user") or {}).get("locale")
    if profile and profile.split("-")[0] in LANGUAGES:
        return profile.split("-")[0]
    return request.accept_languages.best_match(LANGUAGES) or LANGUAGES[0]


def _service_unavailable(error: Exception):
    """The provider or the DSP API did not answer as expected: say so instead of a 500."""
    current_app.logger.warning("service unavailable: %s", error)
    return render_template("error.html", title=_("Service indisponible"), error="temporarily_unavailable",
                           description=_("Un service eSanté ne répond pas. Veuillez réessayer dans quelques instants.")), 503


# --- the provider and its tokens ---------------------------------------------------------------


def _client():
    return current_app.extensions["authlib.integrations.flask_client"].esante


def _metadata() -> dict[str, Any]:
    """Discovery, once: its ``issuer`` must be ours (Discovery §4.3) before anything is trusted."""
    state = current_app.extensions["dsp_viewer"]
    if state["metadata"] is None:
        state["metadata"] = discover(current_app.config["ISSUER"])
    return state["metadata"]


def _visits() -> Visits:
    return current_app.extensions["dsp_viewer"]["visits"]


def _client_key() -> ECKey:
    """The private key of ``private_key_jwt``, read once from ``CLIENT_KEY_FILE``."""
    state = current_app.extensions["dsp_viewer"]
    if state["client_key"] is None:
        path = Path(current_app.config["CLIENT_KEY_FILE"])
        try:
            state["client_key"] = ECKey.import_key(json.loads(path.read_text()))
        except (OSError, ValueError, JoseError) as error:
            raise ProviderError(f"the client key {path} is unusable ({error}): run `idp demo seed`") from None
    return state["client_key"]


def client_assertion() -> str:
    """``private_key_jwt`` (OpenID Connect Core §9, RFC 7523 §2.2) as FAPI 2.0 §5.3.3.1 wants it:
    the issuer identifier, a string, as ``aud``; ES256 (§5.4.1); short-lived, a fresh ``jti``."""
    key = _client_key()
    return private_key_jwt_sign(key, client_id=current_app.config["CLIENT_ID"], token_endpoint=_metadata()["issuer"], alg="ES256",
                                header={"kid": key.kid}, expires_in=ASSERTION_LIFETIME)


def _authentication() -> dict[str, str]:
    return {"client_id": current_app.config["CLIENT_ID"], "client_assertion_type": ASSERTION_TYPE, "client_assertion": client_assertion()}


def _dpop_key() -> DPoPKey:
    return current_app.extensions["dsp_viewer"]["dpop_key"]


def _dpop_nonces() -> dict[str, str]:
    return current_app.extensions["dsp_viewer"]["dpop_nonces"]


def _remember_nonce(response: requests.Response) -> None:
    remember_dpop_nonce(_dpop_nonces(), response)


def _proof(url: str) -> str:
    """A DPoP proof for a POST to the provider (RFC 9449 §4.2), with its latest nonce (§8)."""
    return _dpop_key().proof("POST", url, nonce=_dpop_nonces().get(origin(url)))


def _push(parameters: dict[str, str]) -> str:
    """RFC 9126 §2: the authorization request, authenticated and with a DPoP proof that binds the
    code to our key (RFC 9449 §10.1); once more with the provider's nonce if it asks (§8).
    Returns the ``request_uri``."""
    url = _metadata()["pushed_authorization_request_endpoint"]
    sent_nonce = _dpop_nonces().get(origin(url))
    status, answer = _post_pushed_request(url, parameters)
    if answer.get("error") == USE_DPOP_NONCE and _dpop_nonces().get(origin(url)) not in (None, sent_nonce):
        status, answer = _post_pushed_request(url, parameters)
    if status != 201 or not isinstance(answer.get("request_uri"), str):
        raise AuthorizationRefused(answer.get("error") or "invalid_response", answer.get("error_description"))
    return answer["request_uri"]


def _post_pushed_request(url: str, parameters: dict[str, str]) -> tuple[int, dict[str, Any]]:
    response = requests.post(url, data={**parameters, **_authentication()}, headers={"DPoP": _proof(url)}, timeout=TIMEOUT)
    _remember_nonce(response)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    return response.status_code, answer if isinstance(answer, dict) else {}


def _token_request(**parameters: Any) -> dict[str, Any]:
    """A token request through Authlib (``private_key_jwt``) with a DPoP proof (RFC 9449 §5); once
    more with the provider's nonce when it answers ``use_dpop_nonce`` (§8). The tokens must come
    back DPoP-bound: FAPI 2.0 allows no bearer token."""
    url = _metadata()["token_endpoint"]
    sent_nonce = _dpop_nonces().get(origin(url))
    try:
        token = _client().fetch_access_token(headers={**DEFAULT_HEADERS, "DPoP": _proof(url)}, **parameters)
    except AuthlibBaseError as error:
        if error.error != USE_DPOP_NONCE or _dpop_nonces().get(origin(url)) in (None, sent_nonce):
            raise
        token = _client().fetch_access_token(headers={**DEFAULT_HEADERS, "DPoP": _proof(url)}, **parameters)
    if str(token.get("token_type", "")).lower() != "dpop":
        raise ProviderError("the provider did not bind the tokens to our DPoP key")
    return token


def _logout_tokens() -> LogoutTokenValidator:
    """Checks logout tokens against the provider's published keys."""
    state = current_app.extensions["dsp_viewer"]
    if state["logout_tokens"] is None:
        metadata = _metadata()
        state["logout_tokens"] = LogoutTokenValidator(
            ProviderKeys(metadata["jwks_uri"]), issuer=metadata["issuer"], client_id=current_app.config["CLIENT_ID"])
    return state["logout_tokens"]


def _visit() -> dict[str, Any] | None:
    return _visits().get(session.get("visit"))


def _expiring(token: Mapping[str, Any]) -> bool:
    return token.get("expires_at", 0) - REFRESH_MARGIN <= time.time()


def _own_token(visit: dict[str, Any]) -> str:
    """The patient's access token, renewed with the refresh token when it is about to expire."""
    if _expiring(visit["token"]):
        try:
            renewed = _token_request(grant_type="refresh_token", refresh_token=visit["token"]["refresh_token"])
        except (AuthlibBaseError, KeyError, requests.RequestException) as error:
            current_app.logger.info("refresh failed: %s", error)
            raise SessionExpired() from None
        visit["id_token"] = renewed.get("id_token") or visit["id_token"]
        # FAPI 2.0 §5.3.2.1: the refresh token is not rotated; keep ours when none comes back.
        visit["token"] = {**renewed, "refresh_token": renewed.get("refresh_token") or visit["token"]["refresh_token"]}
    return visit["token"]["access_token"]


def _record_token(visit: dict[str, Any]) -> str:
    """The token for the open record: ours, or one from a token exchange, redone when it expires.

    A refused exchange means the delegation ended: the record closes, and the patient is back
    on their own.
    """
    record = visit.get("record")
    if record is None:
        return _own_token(visit)
    if _expiring(record["token"]):
        try:
            record["token"] = _exchange(visit, record["sub"])
        except AuthlibBaseError as error:
            current_app.logger.info("token exchange refused: %s", error)
            visit["record"] = None
            raise RecordClosed(record["name"]) from None
    return record["token"]["access_token"]


def _exchange(visit: dict[str, Any], patient_sub: str) -> dict[str, Any]:
    """RFC 8693: our own access token for one naming the patient as subject and us as actor.

    No ``audience``: the record's pages use the token at the DSP API, at the provider's
    delegation API (the child's assistants) and at its userinfo (the child's name and age).
    """
    parameters = token_exchange_parameters(_own_token(visit), patient_sub)
    # scope="" keeps Authlib from adding the login's scope: the provider picks the delegated one.
    return _token_request(**parameters, scope="")


def _userinfo(visit: dict[str, Any]) -> dict[str, Any]:
    """Fresh claims: ``assisted_patients`` changes whenever someone adds or removes us."""
    return _claims_of(_own_token(visit), visit["user"]["sub"])


def _claims_of(access_token: str, subject: str) -> dict[str, Any]:
    """Userinfo (OpenID Connect Core §5.3) with a DPoP-bound token; it must name ``subject`` (§5.3.2)."""
    response = _call("GET", _metadata()["userinfo_endpoint"], access_token)
    if response.status_code != 200:
        raise ProviderError(f"userinfo answered {response.status_code}")
    claims = response.json()
    if claims.get("sub") != subject:
        raise ProviderError("userinfo names another patient")
    return claims


def _call(method: str, url: str, token: str, **kwargs) -> requests.Response:
    """A call to the DSP API or the provider with our DPoP-bound token (RFC 9449 §7.1)."""
    return dpop_request(method, url, token, _dpop_key(), _dpop_nonces(), **kwargs)


def _delegations_url(*path: str) -> str:
    return "/".join([current_app.config["ISSUER"].rstrip("/"), "api/v1/delegations", *path])


def _record_closed(error: RecordClosed):
    flash(_("Votre accès au dossier de %(name)s a pris fin : vous êtes revenu à votre dossier.", name=str(error)), "error")
    return redirect(url_for("viewer.record"))


def _end_visit_and_login():
    _visits().end(session.pop("visit", None))
    flash(_("Votre session a expiré : veuillez vous reconnecter."), "info")
    return redirect(url_for("viewer.home"))


# --- pages -----------------------------------------------------------------------------------


def age_in_years(birthdate: str | None, today: date | None = None) -> int | None:
    if not birthdate:
        return None
    born, today = date.fromisoformat(birthdate), today or date.today()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@blueprint.before_app_request
def tell_who_the_provider_logged_out():
    """A visit the provider ended by back-channel logout: the browser learns it at its next page."""
    if request.endpoint in ("static", "viewer.backchannel_logout") or not _visits().was_logged_out(session.get("visit")):
        return None
    session.pop("visit", None)
    if request.endpoint in ("viewer.login", "viewer.callback"):  # already logging in again
        return None
    flash(_("Votre session eSanté a pris fin : vous avez été déconnecté du DSP. Veuillez vous reconnecter."), "info")
    return None if request.endpoint == "viewer.home" else redirect(url_for("viewer.home"))


@blueprint.app_context_processor
def shared():
    return {"age_in_years": age_in_years, "tabs": TABS, "helpdesk": "(+352) 27 12 50 18 33", "languages": LANGUAGES,
            "get_locale": get_locale, "application_name": lambda client_id: str(APPLICATION_NAMES.get(client_id, client_id or "—"))}


@blueprint.get("/langue/<code>")
def language(code: str):
    """The header's FR / DE / EN: remembered for this browser."""
    if code in LANGUAGES:
        session["locale"] = code
    target = request.args.get("suite", "")
    return redirect(target if target.startswith("/") and not target.startswith("//") and "\\" not in target else url_for("viewer.home"))


@blueprint.get("/")
def home():
    if request.args.get("state"):
        try:
            _client().validate_logout_response()
        except AuthlibBaseError:
            return render_template("error.html", error="invalid_state", description=_("Retour de déconnexion inattendu.")), 400
        flash(_("Vous êtes déconnecté du DSP et de votre compte eSanté."), "info")
        return redirect(url_for("viewer.home"))
    if _visit() is not None:
        return redirect(url_for("viewer.record"))
    return render_template("home.html")


@blueprint.get("/login")
def login():
    """FAPI 2.0 §5.3.3.2: the request is pushed; the browser carries only ``client_id`` and
    ``request_uri``. ``max_age``: a fresh login asked by the provider's step-up challenge (RFC 9470 §4)."""
    metadata = _metadata()
    max_age = request.args.get("max_age", type=int)
    extra = {"max_age": max_age} if max_age is not None else {}
    redirect_uri = current_app.config["PUBLIC_URL"].rstrip("/") + "/callback"
    prepared = _client().create_authorization_url(redirect_uri, ui_locales=str(get_locale()), **extra)  # state, nonce, PKCE verifier
    request_uri = _push(dict(parse_qsl(urlsplit(prepared["url"]).query)))
    _client().save_authorize_data(redirect_uri=redirect_uri, **prepared)
    return redirect(metadata["authorization_endpoint"] + "?" + urlencode({"client_id": current_app.config["CLIENT_ID"],
                                                                          "request_uri": request_uri}))


@blueprint.get("/callback")
def callback():
    metadata = _metadata()
    if request.args.get("error"):
        return render_template("error.html", error=request.args["error"],
                               description=request.args.get("error_description")), 400
    if metadata.get("authorization_response_iss_parameter_supported") and request.args.get("iss") != metadata["issuer"]:
        return render_template("error.html", error="invalid_issuer", description=_("Réponse d'un autre émetteur.")), 400
    try:
        token, identity = _redeem(request.args.get("code"), request.args.get("state"))
    except AuthlibBaseError as error:
        return render_template("error.html", error=error.error or "invalid_response", description=error.description or None), 400
    except JoseError as error:  # the ID token's signature or claims (Core §3.1.3.7)
        current_app.logger.warning("ID token refused: %s", error)
        return render_template("error.html", error="invalid_id_token", description=_("Jeton d'identité invalide.")), 400
    if identity is None:
        return render_template("error.html", error="invalid_response", description=_("Aucun jeton d'identité reçu.")), 400
    visit = {"token": token, "id_token": token["id_token"], "user": {"sub": identity["sub"]}, "sid": identity.get("sid"),
             "record": None}
    claims = _claims_of(token["access_token"], identity["sub"])
    visit["user"].update(name=claims.get("name"), birthdate=claims.get("birthdate"), locale=claims.get("locale"))
    _visits().end(session.pop("visit", None))
    session["visit"] = _visits().start(visit)
    return redirect(url_for("viewer.record"))


def _redeem(code: str | None, state: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The code for tokens (Authlib's ``authorize_access_token``, with :func:`_token_request`'s DPoP
    proof and nonce retry), and the ID token's verified claims (None without an ID token)."""
    esante = _client()
    state_data = esante.framework.get_state_data(session, state)
    esante.framework.clear_state_data(session, state)
    if state_data is None:
        raise MismatchingStateError()
    token = _token_request(code=code, state=state, redirect_uri=state_data["redirect_uri"], code_verifier=state_data["code_verifier"])
    identity = esante.parse_id_token(token, nonce=state_data["nonce"]) if "id_token" in token else None
    return token, dict(identity) if identity else None


@blueprint.get("/dossier")
def record():
    visit = _visit()
    if visit is None:
        return redirect(url_for("viewer.home"))
    tab = request.args.get("onglet", "synthese")
    if tab not in TABS:
        abort(404)
    return _render_record(visit, tab)


@blueprint.post("/assistants/recherche")
def search_assistant():
    visit = _require_visit()
    matricule = "".join(request.form.get("matricule", "").split())
    response = _call("POST", _delegations_url("lookup"), _record_token(visit), json={"matricule": matricule})
    if response.status_code != 200:
        flash(_api_error(response), "error")
        return _render_record(visit, "synthese", adding={"matricule": matricule})
    return _render_record(visit, "synthese", adding={"matricule": matricule, "display_name": response.json()["display_name"]})


@blueprint.post("/assistants")
def add_assistant():
    visit = _require_visit()
    body = {"matricule": request.form.get("matricule", ""), "type": request.form.get("type", ""),
            "role": request.form.get("role", "").strip() or None, "valid_until": None}
    response = _call("POST", _delegations_url(), _record_token(visit), json=body)
    step_up = STEP_UP_MAX_AGE.search(response.headers.get("WWW-Authenticate", "")) if response.status_code == 401 else None
    if step_up and "insufficient_user_authentication" in response.headers["WWW-Authenticate"]:
        flash(_("Ajouter un assistant lui ouvre tout votre dossier : confirmez votre identité en vous reconnectant, "
                "puis ajoutez-le à nouveau."), "info")
        return redirect(url_for("viewer.login", max_age=step_up.group(1)))
    if response.status_code != 201:
        flash(_api_error(response), "error")
    else:
        flash(_("%(name)s est maintenant assistant DSP de ce dossier.", name=response.json()["assistant"]["display_name"]), "success")
    return redirect(url_for("viewer.record"))


@blueprint.post("/assistants/<delegation_id>/retirer")
def remove_assistant(delegation_id: str):
    visit = _require_visit()
    if not delegation_id.isalnum():  # it becomes a path segment of the provider's API
        abort(404)
    response = _call("DELETE", _delegations_url(delegation_id), _record_token(visit))
    if response.status_code == 204:
        flash(_("L'assistant a été retiré de ce dossier."), "success")
    else:
        flash(_api_error(response), "error")
    return redirect(url_for("viewer.record"))


@blueprint.get("/dossiers")
def records():
    visit = _require_visit()
    assisted = _userinfo(visit).get("assisted_patients", [])
    return render_template("records.html", visit=visit, assisted=assisted)


@blueprint.post("/dossiers/ouvrir")
def open_record():
    visit = _require_visit()
    wanted = request.form.get("sub", "")
    if wanted == visit["user"]["sub"]:
        visit["record"] = None
        visit["user"].pop("documents", None)  # opened again: read again
        return redirect(url_for("viewer.record"))
    patient = next((p for p in _userinfo(visit).get("assisted_patients", []) if p.get("sub") == wanted), None)
    if patient is None:
        flash(_("Vous n'êtes pas assistant DSP de ce dossier."), "error")
        return redirect(url_for("viewer.records"))
    try:
        token = _exchange(visit, wanted)
    except AuthlibBaseError as error:
        current_app.logger.info("token exchange refused: %s", error)
        flash(_("L'accès à ce dossier a été refusé par eSanté."), "error")
        return redirect(url_for("viewer.records"))
    claims = _claims_of(token["access_token"], wanted)  # Core §5.3.2: the profile must be the record's
    visit["record"] = {"sub": wanted, "name": claims.get("name") or patient.get("name"),
                       "birthdate": claims.get("birthdate"), "token": token}
    return redirect(url_for("viewer.record"))


@blueprint.post("/logout")
def logout():
    """RP-Initiated Logout 1.0 §2, after revoking our refresh token (RFC 7009): both sessions end."""
    visit = _visits().end(session.pop("visit", None))
    if visit is None:
        return redirect(url_for("viewer.home"))
    metadata = _metadata()
    refresh_token = visit["token"].get("refresh_token")
    if refresh_token and metadata.get("revocation_endpoint"):
        try:
            requests.post(metadata["revocation_endpoint"], data={"token": refresh_token, "token_type_hint": "refresh_token",
                                                                 **_authentication()}, timeout=TIMEOUT)
        except requests.RequestException as error:
            current_app.logger.warning("refresh token not revoked: %s", error)
    return _client().logout_redirect(post_logout_redirect_uri=current_app.config["PUBLIC_URL"].rstrip("/") + "/",
                                     id_token_hint=visit["id_token"])


@blueprint.post("/backchannel-logout")
def backchannel_logout():
    """Back-Channel Logout 1.0 §2.5-§2.8: the provider says a session ended; end our visits in it.

    The token is checked as §2.6 says; a valid one answers 200 even when no visit matches any
    more (the patient may have logged out here first). The pages follow the patient's language like the provider's (Flask-Babel, catalogues in
``rp_demo/translations``): a language picked in the header, else the ``locale`` claim of the
patient's profile, else the browser's; the login asks the provider for the same (``ui_locales``,
OpenID Connect Core §3.1.2.1). A record is read from the DSP API once per opening (its first page
after the login or after "Accéder aux autres dossiers patient"), so its trail has one row per
opening, not per tab; times are shown in Luxembourg time.

Tokens stay on the server and simply go
    with the visit; refresh tokens with ``offline_access`` are the provider's to revoke (§2.7).
    """
    try:
        claims = _logout_tokens().validate(request.form.get("logout_token", ""))
    except InvalidToken as error:
        current_app.logger.warning("logout token refused: %s", error)
        response = jsonify(error="invalid_request", error_description=f"logout_token: {error}")
        response.status_code = 400
    else:
        ended = _visits().end_logged_out(sid=claims.get("sid"), sub=claims.get("sub"))
        current_app.logger.info("back-channel logout ended %d visit(s)", ended)
        response = current_app.response_class(status=200)
    response.headers["Cache-Control"] = "no-store"  # §2.8
    return response


def _require_visit() -> dict[str, Any]:
    visit = _visit()
    if visit is None:
        raise SessionExpired()
    return visit


def _api_error(response: requests.Response) -> str:
    try:
        code = response.json().get("error")
    except ValueError:
        code = None
    if code in API_ERRORS:
        return str(API_ERRORS[code])
    return _("Le service eSanté a refusé la demande (%(status)s).", status=response.status_code)


def _open(visit: dict[str, Any]) -> None:
    """Read the open record from the DSP API: once per opening (its first page after the login or
    after "Accéder aux autres dossiers patient"), which the API's trail records; tabs reuse it."""
    record = _call("GET", current_app.config["DSP_API_URL"].rstrip("/") + "/v1/record", _record_token(visit))
    record.raise_for_status()
    (visit["record"] or visit["user"])["documents"] = record.json()["documents"]


def _render_record(visit: dict[str, Any], tab: str, adding: dict[str, Any] | None = None):
    token = _record_token(visit)
    api = current_app.config["DSP_API_URL"].rstrip("/")
    owner = visit["record"] or visit["user"]
    if "documents" not in owner:
        _open(visit)
    accesses = []
    if tab == "tracabilite":
        trail = _call("GET", api + "/v1/record/accesses", token)
        trail.raise_for_status()
        accesses = trail.json()["accesses"]
    assistants = None
    if tab == "synthese":
        listed = _call("GET", _delegations_url(), token)
        assistants = listed.json()["delegations"] if listed.status_code == 200 else None
    return render_template(
        "record.html", visit=visit, owner=owner, tab=tab, documents=owner["documents"], accesses=accesses,
        assistants=assistants, adding=adding if adding is not None else ({} if request.args.get("ajouter") else None),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rp_demo.viewer", description="The demo DSP viewer (web relying party).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--issuer", default="http://127.0.0.1:5000")
    parser.add_argument("--client-id", default="dsp-viewer")
    parser.add_argument("--client-key-file", default=str(DEFAULT_CLIENT_KEY_FILE),
                        help="the private JWK of private_key_jwt (idp demo seed makes it in the provider's instance folder)")
    parser.add_argument("--dsp-api", default="http://127.0.0.1:5002", help="the DSP API's URL (also its audience)")
    arguments = parser.parse_args(argv)
    app = create_app({
        "ISSUER": arguments.issuer, "CLIENT_ID": arguments.client_id, "CLIENT_KEY_FILE": arguments.client_key_file,
        "PUBLIC_URL": f"http://{arguments.host}:{arguments.port}", "DSP_API_URL": arguments.dsp_api,
    })
    run_simple(arguments.host, arguments.port, app, threaded=True)


if __name__ == "__main__":
    main()
