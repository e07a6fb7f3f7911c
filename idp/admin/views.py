"""Admin pages: the client registry, helpdesk requests and the audit log, behind password + TOTP.

The admin session lives on the server (:mod:`idp.admin_session`): revoked at logout, ended
after ``ADMIN_SESSION_IDLE_TIMEOUT`` unused and ``ADMIN_SESSION_ABSOLUTE_TIMEOUT`` in any case.
Admin logins are throttled per address and per admin name (:mod:`idp.throttle`) and lock the
admin account after repeated failures (:mod:`idp.admin_account`). Every change goes through
:mod:`idp.client`, which audits it with the admin's name. Secrets and activation codes are
shown once, in the response to the change that made them, and never again.
"""

import math

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _, lazy_gettext as _l, ngettext

from .. import account as accounts, admin_account, admin_session, audit, client as clients, helpdesk_request, throttle
from ..extensions import db, limiter
from . import blueprint, passkeys
from .forms import AUTH_METHOD_LABELS, ActionForm, ClientForm, LoginForm, RejectRequestForm
from .login_session import new_session, start_admin_session

PUBLIC_ENDPOINTS = {"admin.login", *passkeys.LOGIN_ENDPOINTS}

blueprint.after_request(admin_session.write_cookie)


@blueprint.before_request
def require_admin_session():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    current = admin_session.current()
    g.admin = admin_account.get(current.admin_id) if current else None
    if g.admin is None:
        if g.get("admin_session_expired"):
            flash(_("Votre session d'administration a expiré. Veuillez vous reconnecter."), "error")
        return redirect(url_for("admin.login"), code=303)
    return passkeys.enrolment_redirect()


@blueprint.after_request
def never_cache(response):
    """Admin pages show secrets and registry data: no copy in any cache."""
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.context_processor
def page_globals() -> dict:
    return {"auth_method_labels": AUTH_METHOD_LABELS, "action_form": ActionForm()}


def _actor() -> str:
    return f"admin:{g.admin.username}"


@blueprint.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATE_LIMIT_LOGIN"], methods=["POST"])
def login():
    form = LoginForm()
    if not form.validate_on_submit():
        return _login_page(form, 400 if request.method == "POST" else 200)
    try:
        throttle.check("RATE_LIMIT_ADMIN_LOGIN_PER_ACCOUNT", "admin", form.username.data)
    except throttle.Throttled as throttled:
        minutes = math.ceil(throttled.retry_after / 60)
        form.totp_code.errors.append(ngettext("Trop de tentatives pour cet identifiant. Réessayez dans %(num)d minute.",
                                              "Trop de tentatives pour cet identifiant. Réessayez dans %(num)d minutes.", minutes))
        response = current_app.make_response(_login_page(form, 429))
        response.headers["Retry-After"] = str(throttled.retry_after)
        return response
    try:
        admin = admin_account.authenticate(form.username.data, form.password.data, form.totp_code.data)
    except admin_account.AdminLoginFailed:
        db.session.commit()
        form.totp_code.errors.append(_("Identifiant, mot de passe ou code incorrect."))
        return _login_page(form, 400)
    if passkeys.passkey_required_for(admin):
        db.session.rollback()  # the right password and code open nothing: this admin logs in with a passkey
        audit.record(audit.Event.ADMIN_LOGIN_FAILED, actor=admin.username, reason="passkey_required")
        db.session.commit()
        form.totp_code.errors.append(_("Ce compte d'administration se connecte avec une clé d'accès."))
        return _login_page(form, 400)
    return start_admin_session(admin)


def _login_page(form: LoginForm, status: int):
    return render_template("admin/login.html", form=form, passkey_form=passkeys.PasskeyLoginForm(formdata=None)), status


@blueprint.post("/logout")
def logout():
    """Revoke the session on the server: the cookie, wherever it was copied, opens nothing any more."""
    admin_session.end(admin_session.current())
    audit.record(audit.Event.ADMIN_LOGOUT, actor=_actor())
    db.session.commit()
    new_session()
    flash(_("Vous êtes déconnecté."))
    return redirect(url_for("admin.login"), code=303)


@blueprint.get("/", endpoint="clients")
def client_list():
    return render_template("admin/clients.html", clients=clients.all_clients())


def _show_secret(client: clients.Client, secret: str | None, created: bool):
    return render_template("admin/client_secret.html", client=client, secret=secret, created=created)


def _add_registry_error(form: ClientForm, error: clients.InvalidClientMetadata) -> None:
    target = form.redirect_uris if error.error == "invalid_redirect_uri" else form.name
    target.errors = [*target.errors, _("Enregistrement refusé : %(reason)s", reason=error.description)]


@blueprint.route("/clients/new", methods=["GET", "POST"])
def client_new():
    form = ClientForm()
    if not form.validate_on_submit():
        return render_template("admin/client_form.html", form=form, client=None), 400 if request.method == "POST" else 200
    try:
        client, secret = clients.create(**form.registry_fields(), actor=_actor())
    except clients.InvalidClientMetadata as error:
        db.session.rollback()
        _add_registry_error(form, error)
        return render_template("admin/client_form.html", form=form, client=None), 400
    db.session.commit()
    return _show_secret(client, secret, created=True)


def _existing_client(client_id: str) -> clients.Client:
    found = clients.get_any(client_id)
    if found is None:
        abort(404)
    return found


def _current_fields(client: clients.Client) -> dict:
    return {
        "name": client.name,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "grant_types": list(client.grant_types),
        "scope": client.scope,
        "auth_method": client.token_endpoint_auth_method,
        "jwks": client.jwks,
        "first_party": client.first_party,
        "subject_type": client.subject_type,
        "resource_audience": client.resource_audience,
        "security_profile": client.security_profile,
    }


@blueprint.route("/clients/<client_id>", methods=["GET", "POST"])
def client_edit(client_id: str):
    client = _existing_client(client_id)
    form = ClientForm()
    form.subject_type.choices = form.subject_type.choices[1:]  # an existing client has a subject type
    if request.method == "GET":
        form.fill_from(client)
    if not form.validate_on_submit():
        return render_template("admin/client_form.html", form=form, client=client), 400 if request.method == "POST" else 200
    current = _current_fields(client)
    changes = {key: value for key, value in form.registry_fields().items() if value != current[key]}
    if not changes:
        flash(_("Aucune modification."))
        return redirect(url_for("admin.client_edit", client_id=client.client_id), code=303)
    try:
        clients.update(client, actor=_actor(), **changes)
    except clients.InvalidClientMetadata as error:
        db.session.rollback()
        _add_registry_error(form, error)
        return render_template("admin/client_form.html", form=form, client=client), 400
    db.session.commit()
    flash(_("Client modifié."))
    return redirect(url_for("admin.client_edit", client_id=client.client_id), code=303)


@blueprint.post("/clients/<client_id>/disable")
def client_disable(client_id: str):
    clients.disable(_existing_client(client_id), actor=_actor())
    db.session.commit()
    flash(_("Client désactivé : il ne peut plus obtenir de jetons."))
    return redirect(url_for("admin.client_edit", client_id=client_id), code=303)


@blueprint.post("/clients/<client_id>/approve")
def client_approve(client_id: str):
    """Approve what a self-registered client asked for that only an admin may give."""
    try:
        clients.approve(_existing_client(client_id), actor=_actor())
    except clients.NothingToApprove:
        abort(409)
    db.session.commit()
    flash(_("Client approuvé : il peut désormais utiliser la plateforme."))
    return redirect(url_for("admin.client_edit", client_id=client_id), code=303)


@blueprint.post("/clients/<client_id>/enable")
def client_enable(client_id: str):
    clients.enable(_existing_client(client_id), actor=_actor())
    db.session.commit()
    flash(_("Client réactivé."))
    return redirect(url_for("admin.client_edit", client_id=client_id), code=303)


@blueprint.post("/clients/<client_id>/rotate-secret")
def client_rotate_secret(client_id: str):
    client = _existing_client(client_id)
    try:
        secret = clients.rotate_secret(client, actor=_actor())
    except clients.InvalidClientMetadata:
        db.session.rollback()
        flash(_("Ce client ne s'authentifie pas avec un secret."), "error")
        return redirect(url_for("admin.client_edit", client_id=client_id), code=303)
    db.session.commit()
    return _show_secret(client, secret, created=False)


@blueprint.get("/audit")
def audit_events():
    name = request.args.get("name") or None
    return render_template("admin/audit.html", events=audit.recent(limit=200, name=name), name=name,
                           names=[event.value for event in audit.Event])


@blueprint.get("/audit/patient")
def patient_trail_export():
    """One patient's whole trail (Traçabilité) as CSV or JSON, for a patient's request or an inquiry; audited."""
    kind = request.args.get("format", "csv")
    patient = accounts.find_by_matricule(request.args.get("matricule", ""))
    if kind not in ("csv", "json") or patient is None:
        abort(404)
    rows = audit.trail_rows(audit.trail(patient.id), with_ip_address=True)
    audit.record(audit.Event.TRAIL_EXPORTED, account_id=patient.id, actor=_actor(), format=kind, rows=len(rows))
    db.session.commit()
    body, mimetype = audit.serialize_trail(rows, kind, audit.ADMIN_TRAIL_FIELDS)
    response = current_app.response_class(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="trail-{patient.id}.{kind}"'
    return response


REQUEST_STATUS_LABELS = {
    helpdesk_request.RequestStatus.OPEN.value: _l("Ouverte"),
    helpdesk_request.RequestStatus.LETTER_ISSUED.value: _l("Nouveau courrier émis"),
    helpdesk_request.RequestStatus.REJECTED.value: _l("Rejetée"),
}


ACCOUNT_STATE_LABELS = {
    "none": _l("Aucun compte pour ce matricule"),
    "pending": _l("En attente d'activation"),
    "active": _l("Déjà activé"),
    "disabled": _l("Suspendu"),
}


@blueprint.get("/requests")
def helpdesk_requests():
    """"Je n'ai pas de code d'activation" requests: the open ones, or all with ``?status=all``."""
    status = request.args.get("status", helpdesk_request.RequestStatus.OPEN.value)
    if status != "all" and status not in REQUEST_STATUS_LABELS:
        status = helpdesk_request.RequestStatus.OPEN.value
    rows = [helpdesk_request.view(item) for item in helpdesk_request.listing(None if status == "all" else status)]
    return render_template("admin/requests.html", rows=rows, status=status, status_labels=REQUEST_STATUS_LABELS,
                           account_states=ACCOUNT_STATE_LABELS, reject_form=RejectRequestForm(formdata=None))


def _existing_request(request_id: int) -> helpdesk_request.HelpdeskRequest:
    found = helpdesk_request.get(request_id)
    if found is None:
        abort(404)
    return found


def _resolve_request(found: helpdesk_request.HelpdeskRequest, *, issue_letter: bool, note: str | None) -> tuple[bool, str | None]:
    """Resolve and commit; or flash why not, write nothing and return ``(False, None)``."""
    try:
        code = helpdesk_request.resolve(found, actor=_actor(), issue_letter=issue_letter, note=note)
    except helpdesk_request.RequestNotOpen:
        db.session.rollback()
        flash(_("Cette demande a déjà été traitée : aucune modification."), "error")
        return False, None
    except helpdesk_request.NoMatchingPatient:
        db.session.rollback()
        flash(_("Aucun patient en attente d'activation ne correspond à cette demande (matricule, nom et date de "
                "naissance) : aucun courrier n'a été émis. Vérifiez les informations ou rejetez la demande."), "error")
        return False, None
    db.session.commit()
    return True, code


@blueprint.post("/requests/<int:request_id>/issue-letter")
def helpdesk_request_issue(request_id: int):
    found = _existing_request(request_id)
    done, code = _resolve_request(found, issue_letter=True, note=None)
    if not done:
        return redirect(url_for("admin.helpdesk_requests"), code=303)
    return render_template("admin/request_letter.html", row=helpdesk_request.view(found), code=code)


@blueprint.post("/requests/<int:request_id>/reject")
def helpdesk_request_reject(request_id: int):
    found = _existing_request(request_id)
    form = RejectRequestForm()
    if not form.validate_on_submit():
        flash(_("Le motif du rejet est trop long (2000 caractères au plus)."), "error")
        return redirect(url_for("admin.helpdesk_requests"), code=303)
    done, _code = _resolve_request(found, issue_letter=False, note=(form.note.data or "").strip() or None)
    if done:
        flash(_("Demande n° %(id)s rejetée.", id=found.id))
    return redirect(url_for("admin.helpdesk_requests"), code=303)
