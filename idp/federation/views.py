"""SAML endpoints of our service provider and the entry points towards the upstreams.

``/saml/<upstream>/metadata`` our SP metadata, ``/saml/<upstream>/acs`` the HTTP-POST assertion
consumer, ``/saml/<upstream>/continue`` where the browser comes back with its cookies,
``/saml/<upstream>/sls`` single logout; ``/federation/<upstream>/start`` (login buttons and
MyGuichet's deep link), ``/federation/<upstream>/link``, ``/federation/<upstream>/step-up``,
``/federation/logout``. Each rejection shows a page, is audited, and leaves password login usable.

Login CSRF: the checked answer waits for the browser that posted it, under a token the consumer
hands to that browser in a cookie (never in the URL), so a continuation link is worth nothing in
another browser. An unsolicited answer (IdP-initiated, as MyGuichet's "DSP" entry) that would
replace the session of another person in this browser is acted on only after the patient
confirms the change of account.
"""

import dataclasses

from flask import abort, current_app, make_response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from .. import account as accounts, audit, clock, delegation as delegations, federated_identity, matricule, sso_session
from ..extensions import csrf, db, limiter
from ..page_guards import safe_next
from . import blueprint, connectors, upstream as upstreams
from .forms import ActionForm
from .upstream import ResponseRejected, Upstream, UpstreamIdentity, UpstreamUnavailable

REQUEST_KEY = "federation_request"  # the AuthnRequest this browser is waiting an answer to
LOGOUT_KEY = "federation_logout"
REQUEST_TTL = 15 * 60
ARRIVAL_COOKIE = "esante_saml_arrival"  # the token of the answer that waits for this browser


def get_upstream(name: str) -> Upstream:
    try:
        return connectors.get(name)
    except connectors.UnknownUpstream:
        abort(404)


def error_page(message: str, status: int, upstream: Upstream | None = None, helpdesk: bool = False, **context) -> ResponseReturnValue:
    return render_template("federation/error.html", message=message, upstream=upstream, helpdesk=helpdesk, **context), status


def unavailable(upstream: Upstream, error: Exception) -> ResponseReturnValue:
    audit.record(audit.Event.FEDERATED_UPSTREAM_UNAVAILABLE, upstream=upstream.name, reason=str(error)[:200])
    db.session.commit()
    return error_page(_("%(name)s est momentanément indisponible. Vous pouvez vous connecter avec votre matricule et votre mot de passe.",
                        name=upstream.label), 503, upstream)


def rejected(upstream: Upstream, reason: str) -> ResponseReturnValue:
    audit.record(audit.Event.FEDERATED_RESPONSE_REJECTED, upstream=upstream.name, reason=reason)
    db.session.commit()
    return error_page(_("La réponse de %(name)s n'a pas pu être vérifiée. Par sécurité, elle a été refusée. Veuillez recommencer.",
                        name=upstream.label), 400, upstream)


def begin(upstream: Upstream, purpose: str, next_url: str, requested_acr: str | None = None, **target) -> ResponseReturnValue:
    """Send the browser to the upstream with a signed AuthnRequest, remembering what it is for."""
    try:
        location, request_id = upstream.start_login("", requested_acr=requested_acr, force_authn=purpose == "step_up")
    except UpstreamUnavailable as error:
        return unavailable(upstream, error)
    session[REQUEST_KEY] = {"upstream": upstream.name, "id": request_id, "purpose": purpose, "next": next_url,
                            "acr": requested_acr, "at": clock.timestamp(), **target}
    audit.record(audit.Event.FEDERATED_LOGIN_STARTED, upstream=upstream.name, purpose=purpose, account_id=target.get("account_id"))
    db.session.commit()
    return redirect(location, code=303)


def log_in(account: accounts.Account, identity: UpstreamIdentity, next_url: str | None) -> ResponseReturnValue:
    """Start the SSO session at the upstream's level of assurance and remember the upstream session."""
    sso = sso_session.start(account.id, amr=list(identity.amr), acr=identity.acr)
    db.session.flush()
    federated_identity.remember_login(sso.id, identity.upstream, identity.subject, identity.name_id_format, identity.session_index)
    db.session.commit()
    if account.locale and "locale" not in session:
        session["locale"] = account.locale
    return redirect(safe_next(next_url), code=303)


@blueprint.get("/saml/<upstream>/metadata")
def metadata(upstream: str) -> ResponseReturnValue:
    connector = get_upstream(upstream)
    return current_app.response_class(connector.sp_metadata(), mimetype="application/samlmetadata+xml")


@blueprint.get("/federation/<upstream>/start")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_LOGIN"])
def start(upstream: str) -> ResponseReturnValue:
    """"Connexion" with an upstream, from our login page or a deep link from MyGuichet."""
    connector = get_upstream(upstream)
    return begin(connector, "login", safe_next(request.args.get("next")))


@blueprint.post("/saml/<upstream>/acs")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_LOGIN"])  # each answer costs signature checks
@csrf.exempt  # the upstream posts here (SAML HTTP-POST binding); the signed response is the proof
def assertion_consumer(upstream: str) -> ResponseReturnValue:
    connector = get_upstream(upstream)
    try:
        identity = connector.finish_login(request.form)
    except ResponseRejected as error:
        return rejected(connector, error.reason)
    except UpstreamUnavailable as error:
        return unavailable(connector, error)
    if identity.in_response_to is None and not connector.allow_unsolicited:
        return rejected(connector, "unsolicited")
    token = federated_identity.keep_arrival(connector.name, {"identity": dataclasses.asdict(identity),
                                                             "relay_state": request.form.get("RelayState") or ""})
    db.session.commit()
    return _hand_arrival_to_browser(redirect(url_for("federation.arrive", upstream=connector.name), code=303), token)


def _hand_arrival_to_browser(response, token: str):
    """The answer's token goes to the browser that posted it, and only there (SameSite=Lax: the
    top-level GET that follows the cross-site POST carries it back)."""
    response.set_cookie(ARRIVAL_COOKIE, token, max_age=int(federated_identity.ARRIVAL_TTL.total_seconds()), path="/saml/",
                        secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True, samesite="Lax")
    return response


def _without_arrival_cookie(rv: ResponseReturnValue):
    response = make_response(rv)
    response.delete_cookie(ARRIVAL_COOKIE, path="/saml/", secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True,
                           samesite="Lax")
    return response


@blueprint.route("/saml/<upstream>/continue", methods=["GET", "POST"])
def arrive(upstream: str) -> ResponseReturnValue:
    """The browser that posted the answer is back with its cookies: match the answer with its
    request, confirm a change of person when it was unsolicited, then act on it.

    GET comes right after the assertion consumer; POST is the patient's answer on the page that
    asks before replacing another person's session.
    """
    connector = get_upstream(upstream)
    arrival = federated_identity.take_arrival(request.cookies.get(ARRIVAL_COOKIE))
    if arrival is None or arrival.upstream != connector.name:
        db.session.rollback()
        return _without_arrival_cookie(error_page(_("Cette connexion a expiré. Veuillez recommencer."), 400, connector))
    details = dict(arrival.details)
    identity = UpstreamIdentity(**details["identity"])
    if request.method == "POST":
        if not ActionForm().validate_on_submit():
            db.session.rollback()
            abort(400)
        context = details["context"]
        if request.form.get("decision") != "switch":
            current = sso_session.current()
            audit.record(audit.Event.FEDERATED_RESPONSE_REJECTED, account_id=current.account_id if current else None,
                         upstream=connector.name, reason="account_switch_declined")
            db.session.commit()
            return _without_arrival_cookie(redirect(url_for("flows.services"), code=303))
    else:
        pending = session.pop(REQUEST_KEY, None) or {}
        if identity.in_response_to:
            fresh = clock.timestamp() - pending.get("at", 0) <= REQUEST_TTL
            if pending.get("upstream") != connector.name or pending.get("id") != identity.in_response_to or not fresh:
                return _without_arrival_cookie(rejected(connector, "in_response_to_mismatch"))
            context = pending
        else:
            relay_state = details.get("relay_state") or ""
            context = {"purpose": "login", "next": safe_next(relay_state) if relay_state.startswith("/") else None}
            if (question := _ask_before_switching(connector, identity, details, context)) is not None:
                return question
    db.session.commit()
    return _without_arrival_cookie(upstreams.arrival_for(connector)(connector, identity, context))


def _account_named_by(identity: UpstreamIdentity) -> accounts.Account | None:
    """The account this upstream identity would be logged in to: its linked account, else the
    registry's account of its national identifier (MyGuichet's activation and first login)."""
    linked = federated_identity.find(identity.upstream, identity.subject)
    if linked is not None:
        return accounts.get(linked.account_id)
    national_id = identity.national_id or ""
    return accounts.find_by_matricule(national_id) if matricule.is_valid(national_id) else None


def _ask_before_switching(connector: Upstream, identity: UpstreamIdentity, details: dict, context: dict) -> ResponseReturnValue | None:
    """An unsolicited answer for another person than the one logged in here: the page that asks
    (anyone can make a browser post an answer to the consumer; only the patient may say yes)."""
    current = sso_session.current()
    named = _account_named_by(identity) if current is not None else None
    if named is None or named.id == current.account_id:
        return None
    logged_in = accounts.get(current.account_id)
    token = federated_identity.keep_arrival(connector.name, {**details, "context": context})
    db.session.commit()
    page = render_template("federation/switch_account.html", upstream=connector, form=ActionForm(),
                           logged_in=delegations.masked_name(logged_in), arriving=delegations.masked_name(named))
    return _hand_arrival_to_browser(make_response(page), token)


@blueprint.app_context_processor
def _logout_target() -> dict:
    """Where the patient's "Se déconnecter" goes: after a MyGuichet or LuxTrust login, to the
    single logout that ends the upstream session too; else to the provider's own logout."""

    def logout_url() -> str:
        current = sso_session.current()
        upstream_login = federated_identity.login_of(current.id) if current else None
        if upstream_login is not None and connectors.is_enabled(upstream_login.upstream):
            return url_for("federation.logout")
        return url_for("oauth.logout")

    return {"logout_url": logout_url}


@blueprint.post("/federation/logout")
def logout() -> ResponseReturnValue:
    """Log out here and, when the session came from an upstream, there too (SP-initiated single logout)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    current = sso_session.current()
    if current is None:
        return render_template("oauth/logged_out.html")
    upstream_login = federated_identity.login_of(current.id)
    audit.record(audit.Event.LOGOUT, account_id=current.account_id)
    sso_session.end(current, reason="logout")
    db.session.commit()
    if upstream_login is None or not connectors.is_enabled(upstream_login.upstream):
        return render_template("oauth/logged_out.html")
    connector = get_upstream(upstream_login.upstream)
    try:
        location, request_id = connector.logout_url(upstream_login.name_id, upstream_login.name_id_format, upstream_login.session_index, "")
    except UpstreamUnavailable as error:
        audit.record(audit.Event.FEDERATED_UPSTREAM_UNAVAILABLE, upstream=connector.name, reason=str(error)[:200])
        db.session.commit()
        return render_template("federation/logged_out.html", upstream=connector, upstream_done=False)
    session[LOGOUT_KEY] = {"upstream": connector.name, "id": request_id}
    audit.record(audit.Event.FEDERATED_LOGOUT, account_id=current.account_id, upstream=connector.name, initiated_by="sp")
    db.session.commit()
    return redirect(location, code=303)


@blueprint.get("/saml/<upstream>/sls")
def single_logout(upstream: str) -> ResponseReturnValue:
    """The upstream's LogoutResponse to our request, or its own LogoutRequest (IdP-initiated)."""
    connector = get_upstream(upstream)
    pending = session.pop(LOGOUT_KEY, None) or {}
    request_id = pending.get("id") if pending.get("upstream") == connector.name else None
    if "SAMLResponse" in request.args and request_id is None:
        return rejected(connector, "unsolicited_logout_response")
    try:
        location, name_id = connector.process_logout(request.args, request_id)
    except ResponseRejected as error:
        return rejected(connector, error.reason)
    except UpstreamUnavailable as error:
        return unavailable(connector, error)
    if name_id is not None:
        for session_id in federated_identity.forget_logins(connector.name, name_id):
            ended = sso_session.get(session_id)
            if ended is not None and ended.ended_at is None:
                sso_session.end(ended, reason="upstream_logout")
        audit.record(audit.Event.FEDERATED_LOGOUT, upstream=connector.name, initiated_by="upstream")
        db.session.commit()
    if location:
        return redirect(location, code=303)
    return render_template("federation/logged_out.html", upstream=connector, upstream_done=True)
