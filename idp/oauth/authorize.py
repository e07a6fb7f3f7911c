"""The authorization endpoint (RFC 6749 §3.1, OpenID Connect Core §3.1.2).

Authlib's grant validates the client, redirect URI, response type and scope; the checks
OpenID Connect and RFC 9700 add (PKCE S256 for every client, nonce replay, ``prompt``,
``max_age``, ``claims``, ``id_token_hint``) are the named functions below. Errors before the
redirect URI is known render a page and never redirect (RFC 6749 §4.1.2.1).
"""

import hashlib
from datetime import datetime, timedelta
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AccessDeniedError, InvalidRequestError, scope_to_list
from authlib.oidc.core.errors import ConsentRequiredError, InteractionRequiredError, LoginRequiredError
from flask import abort, current_app, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError

from .. import account as accounts, assurance, audit, claims, clock, consent, delegation as delegations, pushed_request, sso_session
from .. import subject, token as tokens
from ..extensions import authorization, csrf, db
from . import fapi2_profile, responses, rfc9126_par
from .errors import UnmetAuthenticationRequirements
from .oidc_request_checks import check_openid_request
from .rfc6749_grants import EndUser
from .routes import blueprint



@blueprint.route("/authorize", methods=["GET", "POST"])
@csrf.exempt  # a client may POST the request (Core §3.1.2.1); the consent decision checks CSRF itself
def authorize():
    try:
        oauth_request, pushed = rfc9126_par.resolve(request)
    except OAuth2Error as error:
        return _error_response(error, {})
    params = {k: v for k, v in oauth_request.payload.data.items() if k not in ("csrf_token", "decision", "patient")}
    entry = pushed or params  # what stands for this request in redirects and forms
    try:
        grant = authorization.get_authorization_grant(oauth_request)
        redirect_uri = grant.validate_authorization_request()
    except OAuth2Error as error:
        return _error_response(error, params)
    client = grant.request.client
    response_mode = params.get("response_mode")
    try:
        if response_mode not in (None, *responses.RESPONSE_MODES):
            response_mode = None
            raise InvalidRequestError("Unsupported response_mode.")
        if pushed is None and rfc9126_par.required_for(client):
            raise InvalidRequestError("This client must use a pushed authorization request (RFC 9126).")
        check_openid_request(params, client, grant.request.scope)
        fapi2_profile.check_authorization_request(client, pushed=pushed is not None)
    except OAuth2Error as error:
        error.redirect_uri = redirect_uri
        return _error_response(error, params, response_mode)
    if "ui_locales" in params:
        _remember_locale(params["ui_locales"])

    prompts = set(params.get("prompt", "").split())
    if "create" in prompts and not (pushed and session.get("activation_for") == pushed["request_uri"]):
        return _send_to_activation(params, pushed)
    sso = sso_session.current()
    end_user = accounts.get(sso.account_id) if sso else None
    if end_user is not None and not end_user.is_active:
        end_user = None
    if end_user is None or _reauthentication_needed(params, entry, prompts, sso, client, end_user):
        if "none" in prompts:
            return _error_response(LoginRequiredError(redirect_uri=redirect_uri), params, response_mode)
        return _send_to_login(entry)
    if (required_acr := assurance.minimum_acr(params.get("acr_values"))) and assurance.acr_rank(sso.acr) < assurance.acr_rank(required_acr):
        if "none" in prompts:  # step-up needs the patient at LuxTrust (Core §3.1.2.6)
            return _error_response(InteractionRequiredError(redirect_uri=redirect_uri), params, response_mode)
        stepped = assurance.step_up_response(end_user.id, required_acr, url_for("oauth.authorize") + "?" + urlencode(entry))
        if stepped is None:
            return _error_response(UnmetAuthenticationRequirements("No means of this patient reaches the requested acr_values.",
                                                                   redirect_uri=redirect_uri), params, response_mode)
        return stepped

    delegation = None
    if "select_account" in prompts:
        delegation, page = _patient_choice(end_user, client, entry)
        if page is not None:
            return page
    record = delegation.owner if delegation else end_user  # whose record the tokens are for

    scope = grant.request.scope
    # Every claim this authorization would release, by scope or asked alone (Core §5.5): consent covers each.
    released = claims.released_anywhere(client, scope, claims.parse_claims_request(params.get("claims")))
    decision = request.form.get("decision") if request.method == "POST" else None
    if decision is not None:
        try:
            csrf.protect()
        except CSRFError:
            abort(400)
        if decision != "allow":
            return _error_response(AccessDeniedError(redirect_uri=redirect_uri), params, response_mode)
        consent.grant(record.id, client.client_id, scope, released)
        if delegation:
            audit.record(audit.Event.DELEGATED_CONSENT_GRANTED, account_id=record.id, client_id=client.client_id,
                         actor=f"account:{end_user.id}", assistant_id=end_user.id, delegation_id=delegation.id, scope=scope)
    elif not client.first_party and ("consent" in prompts or not consent.covers(record.id, client.client_id, scope, released)):
        if "none" in prompts:
            return _error_response(ConsentRequiredError(redirect_uri=redirect_uri), params, response_mode)
        return _consent_page(client, scope, released, entry)

    grant.request.user = EndUser(
        record, tokens.AuthContext(auth_time=sso.auth_time, acr=sso.acr, amr=list(sso.amr or []), sso_session_id=sso.id), delegation
    )
    code = grant.generate_authorization_code()
    grant.save_authorization_code(code, grant.request)
    if pushed:
        pushed_request.spend(pushed["request_uri"])
    session.pop("login_for", None)
    db.session.commit()
    return responses.to_client(redirect_uri, {"code": code, "state": params.get("state")}, response_mode)


def _reauthentication_needed(params: dict, entry: dict, prompts: set, sso, client, end_user) -> bool:
    """True when the session may not answer this request: ``prompt=login``, ``max_age``, another user."""
    requested_at = session.get("login_for", {}).get(_request_key(entry))
    if requested_at is not None and sso.auth_time > datetime.fromisoformat(requested_at):
        return False  # the patient logged in after this very request sent them to the login page
    if "login" in prompts:
        return True
    if "max_age" in params and sso.auth_time + timedelta(seconds=int(params["max_age"])) < clock.now():
        return True
    if hint := params.get("id_token_hint"):
        hinted = tokens.decode_id_token_hint(hint)
        if hinted is None or hinted.get("sub") != subject.subject_for(end_user, client):
            return True
    return False


def _patient_choice(end_user, client, entry: dict):
    """``prompt=select_account``: "Accéder aux autres dossiers patient", the patient themself or one they assist.

    Returns ``(delegation or None, page or None)``. The choice is kept per request (like
    ``login_for``), so the consent page that may follow still knows it.
    """
    assisted = delegations.for_assistant(end_user)
    if not assisted:
        return None, None  # nobody else to choose
    key = _request_key(entry)
    choices = dict(list(session.get("patient_for", {}).items())[-4:])
    if request.method == "POST" and "patient" in request.form:
        try:
            csrf.protect()
        except CSRFError:
            abort(400)
        picked = request.form["patient"]
        found = next((d for d in assisted if d.id == picked), None)
        if picked == "self" or found is not None:
            choices[key] = picked
            session["patient_for"] = choices
        if found is not None:
            audit.record(audit.Event.PATIENT_SELECTED, account_id=found.owner_id, client_id=client.client_id,
                         actor=f"account:{end_user.id}", assistant_id=end_user.id, delegation_id=found.id)
            db.session.commit()
    picked = choices.get(key)
    if picked == "self":
        return None, None
    found = next((d for d in assisted if d.id == picked), None)
    if found is None:
        return None, render_template("flows/select_patient.html", client=client, me=end_user, assisted=assisted, params=entry)
    return found, None


def _request_key(params: dict) -> str:
    return hashlib.sha256(urlencode(sorted(params.items())).encode()).hexdigest()[:32]


def _send_to_login(params: dict):
    pending = session.get("login_for", {})
    pending = dict(list(pending.items())[-4:])  # bounded: the last few requests of this browser
    pending[_request_key(params)] = clock.now().isoformat()
    session["login_for"] = pending
    next_url = url_for("oauth.authorize") + "?" + urlencode(params)
    return redirect(url_for("flows.login", next=next_url, login_hint=params.get("login_hint")), code=303)


def _send_to_activation(params: dict, pushed: dict | None):
    """``prompt=create`` (OpenID Connect Prompt Create 1.0): activate, then come back logged in.

    The way back drops ``create``; a pushed request cannot change, so the flow cookie
    remembers that this one already went to the activation.
    """
    if pushed:
        session["activation_for"] = pushed["request_uri"]
        again = pushed
    else:
        remaining = " ".join(p for p in params.get("prompt", "").split() if p != "create")
        again = {k: v for k, v in params.items() if k != "prompt"} | ({"prompt": remaining} if remaining else {})
    session["activation_return_to"] = url_for("oauth.authorize") + "?" + urlencode(again)
    return redirect(url_for("flows.activation_start"), code=303)


def _consent_page(client, scope: str, released: list[str], entry: dict):
    """Lists what the client would receive: its scopes, and the claims asked for alone that no
    listed scope already names (nothing the client may not have)."""
    by_scope = claims.claims_of_scopes(scope)
    alone = [name for name in released if name not in by_scope]
    return render_template("oauth/consent.html", client=client, scopes=scope_to_list(scope), claims=alone, params=entry)


def _remember_locale(ui_locales: str) -> None:
    for candidate in ui_locales.split():
        language = candidate.split("-")[0].lower()
        if language in current_app.config["LANGUAGES"]:
            session["locale"] = language
            return


def _error_response(error: OAuth2Error, params: dict, response_mode: str | None = None):
    if error.redirect_uri:
        return responses.to_client(
            error.redirect_uri,
            {"error": error.error, "error_description": error.description or None, "state": params.get("state")},
            response_mode or params.get("response_mode") if (response_mode or params.get("response_mode")) in responses.RESPONSE_MODES else None,
        )
    return render_template("oauth/error.html", error=error.error, description=error.description), 400
