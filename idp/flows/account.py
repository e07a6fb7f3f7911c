""""Mon compte": profile, contact details, password, one-time-code channel, consents, sessions and
the applications that hold a refresh token ("Applications connectées").

Every page needs a live SSO session; every change is audited by the domain functions.
"""


from flask import abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from wtforms import SelectChoice

from .. import account as accounts, activation, client as clients, consent, credential, messaging, one_time_code
from .. import audit, backchannel_logout, self_service, sso_session, throttle, token as tokens
from ..extensions import db, limiter
from ..page_guards import login_required
from . import blueprint
from .account_forms import (ActionForm, ChannelPreferenceForm, CodeForm, ContactChangeForm, ForgottenPasswordForm,
                            LogoutElsewhereForm, NewPasswordForm, PasswordChangeForm)
from .activation import add_rule_errors
from .login import code_accepted, code_refused_message, mask_destination, throttled_message



def _own_challenge(session_key: str, purpose: str) -> one_time_code.OneTimeCode | None:
    """The challenge this browser started for ``purpose`` on the logged-in account, if any."""
    challenge = one_time_code.get(session.get(session_key))
    if challenge is None or challenge.account_id != g.account.id or challenge.purpose != purpose:
        return None
    return challenge


def password_error(form, error: Exception) -> None:
    if isinstance(error, credential.AccountLocked):
        form.current_password.errors.append(_("Trop de tentatives. Réessayez plus tard."))
    else:
        form.current_password.errors.append(_("Mot de passe incorrect."))


@blueprint.get("/account")
@login_required
def account_home():
    return render_template("flows/account/home.html", account=g.account, mask=mask_destination,
                           has_password=credential.has_password(g.account))


@blueprint.route("/account/contact", methods=["GET", "POST"])
@login_required
@limiter.limit(lambda: current_app.config["RATE_LIMIT_ONE_TIME_CODE"], methods=["POST"])
def account_contact():
    form = ContactChangeForm()
    if not form.validate_on_submit():
        return render_template("flows/account/contact.html", form=form), 400 if request.method == "POST" else 200
    try:
        challenge = self_service.start_contact_change(g.account, form.channel.data, form.destination.data, form.current_password.data)
    except (credential.WrongPassword, credential.AccountLocked) as error:
        db.session.commit()
        password_error(form, error)
        return render_template("flows/account/contact.html", form=form), 400
    except activation.InvalidDestination:
        form.destination.errors.append(_("Numéro de mobile ou adresse e-mail invalide."))
        return render_template("flows/account/contact.html", form=form), 400
    except messaging.MessageNotSent:
        db.session.commit()
        form.destination.errors.append(_("Le code n'a pas pu être envoyé. Veuillez réessayer dans un instant."))
        return render_template("flows/account/contact.html", form=form), 503
    except (one_time_code.ResendTooSoon, one_time_code.SendLimitReached) as refused:
        db.session.commit()  # the password attempt counts
        form.destination.errors.append(code_refused_message(refused))
        return render_template("flows/account/contact.html", form=form), 429
    db.session.commit()
    session["contact_change"] = challenge.id
    return redirect(url_for("flows.account_contact_verify"), code=303)


@blueprint.route("/account/contact/verify", methods=["GET", "POST"])
@login_required
@limiter.limit(lambda: current_app.config["RATE_LIMIT_ONE_TIME_CODE"], methods=["POST"])
def account_contact_verify():
    challenge = _own_challenge("contact_change", self_service.CONTACT_PURPOSE)
    if challenge is None:
        return redirect(url_for("flows.account_contact"), code=303)
    form = CodeForm()
    destination = mask_destination(challenge.channel, challenge.destination)
    if not form.validate_on_submit():
        return render_template("flows/account/code.html", form=form, destination=destination), 400 if request.method == "POST" else 200
    if not code_accepted(lambda: self_service.finish_contact_change(g.account, challenge, form.code.data), form.code):
        return render_template("flows/account/code.html", form=form, destination=destination), 400
    db.session.commit()
    session.pop("contact_change", None)
    flash(_("Vos coordonnées ont été mises à jour."), "info")
    return redirect(url_for("flows.account_home"), code=303)


@blueprint.route("/account/password", methods=["GET", "POST"])
@login_required
@limiter.limit(lambda: current_app.config["RATE_LIMIT_LOGIN"], methods=["POST"])
def account_password():
    if not credential.has_password(g.account):
        return _create_password()
    form = PasswordChangeForm()
    if not form.validate_on_submit():
        return render_template("flows/account/password.html", form=form), 400 if request.method == "POST" else 200
    try:
        challenge = self_service.start_password_change(g.account, form.current_password.data)
    except (credential.WrongPassword, credential.AccountLocked) as error:
        db.session.commit()
        password_error(form, error)
        return render_template("flows/account/password.html", form=form), 400
    except messaging.MessageNotSent:
        db.session.commit()
        flash(_("Le code n'a pas pu être envoyé. Veuillez réessayer dans un instant."), "error")
        return render_template("flows/account/password.html", form=form), 503
    except (one_time_code.ResendTooSoon, one_time_code.SendLimitReached) as refused:
        db.session.commit()  # the password attempt counts
        form.current_password.errors.append(code_refused_message(refused))
        return render_template("flows/account/password.html", form=form), 429
    db.session.commit()
    session["password_change"] = challenge.id
    return redirect(url_for("flows.account_password_verify"), code=303)


def _create_password():
    """"Créer un mot de passe": an account activated through MyGuichet.lu has none to confirm, so
    a code to its preferred channel proves the patient instead."""
    form = ActionForm()
    if not form.validate_on_submit():
        return render_template("flows/account/password_create.html", form=form,
                               channels=g.account.channels()), 400 if request.method == "POST" else 200
    try:
        challenge = self_service.start_password_creation(g.account)
    except self_service.NoChannel:
        return render_template("flows/account/password_create.html", form=form, channels=[]), 409
    except messaging.MessageNotSent:
        db.session.commit()
        flash(_("Le code n'a pas pu être envoyé. Veuillez réessayer dans un instant."), "error")
        return render_template("flows/account/password_create.html", form=form, channels=g.account.channels()), 503
    except (one_time_code.ResendTooSoon, one_time_code.SendLimitReached) as refused:
        db.session.rollback()
        flash(code_refused_message(refused), "error")
        return render_template("flows/account/password_create.html", form=form, channels=g.account.channels()), 429
    db.session.commit()
    session["password_change"] = challenge.id
    return redirect(url_for("flows.account_password_verify"), code=303)


@blueprint.route("/account/password/new", methods=["GET", "POST"])
@login_required
@limiter.limit(lambda: current_app.config["RATE_LIMIT_ONE_TIME_CODE"], methods=["POST"])
def account_password_verify():
    creating = not credential.has_password(g.account)
    purpose = self_service.PASSWORD_CREATION_PURPOSE if creating else self_service.PASSWORD_PURPOSE
    challenge = _own_challenge("password_change", purpose)
    if challenge is None:
        return redirect(url_for("flows.account_password"), code=303)
    form = NewPasswordForm()
    destination = mask_destination(challenge.channel, challenge.destination)
    if not form.validate_on_submit():
        return render_template("flows/account/reset.html", form=form, destination=destination), 400 if request.method == "POST" else 200
    finish = self_service.finish_password_creation if creating else self_service.finish_password_change
    try:
        changed = code_accepted(lambda: finish(g.account, challenge, form.code.data, form.password.data, form.confirmation.data),
                                form.code)
    except self_service.AccountHasPassword:
        return redirect(url_for("flows.account_password"), code=303)
    except credential.PasswordTooWeak as weak:
        add_rule_errors(form, weak)
        changed = False
    if not changed:
        return render_template("flows/account/reset.html", form=form, destination=destination), 400
    db.session.commit()
    session.pop("password_change", None)
    flash(_("Votre mot de passe a été créé : vous pouvez aussi vous connecter avec votre matricule et ce mot de passe.") if creating
          else _("Votre mot de passe a été modifié."), "success")
    return redirect(url_for("flows.account_home"), code=303)


@blueprint.route("/account/channel", methods=["GET", "POST"])
@login_required
def account_channel():
    form = ChannelPreferenceForm()
    form.channel.choices = [SelectChoice(c, _("Mobile") if c == "sms" else _("E-mail")) for c in g.account.channels()]
    if form.validate_on_submit():
        self_service.set_preferred_channel(g.account, form.channel.data)
        db.session.commit()
        flash(_("Votre préférence a été enregistrée."), "info")
        return redirect(url_for("flows.account_home"), code=303)
    if request.method == "GET":
        form.channel.data = g.account.channels()[0] if g.account.channels() else None
    return render_template("flows/account/channel.html", form=form), 400 if request.method == "POST" else 200


@blueprint.get("/account/consents")
@login_required
def account_consents():
    rows = [(c, clients.get_any(c.client_id)) for c in consent.active_for(g.account.id)]
    return render_template("flows/account/consents.html", consents=rows, form=ActionForm())


@blueprint.post("/account/consents/<client_id>/revoke")
@login_required
def account_consent_revoke(client_id: str):
    if ActionForm().validate_on_submit() and consent.revoke(g.account.id, client_id):
        tokens.revoke_for_client(g.account.id, client_id)
        db.session.commit()
        flash(_("L'accès a été retiré."), "info")
    return redirect(url_for("flows.account_consents"), code=303)


def _render_sessions(logout_form: LogoutElsewhereForm, status: int = 200):
    return render_template("flows/account/sessions.html", sessions=sso_session.live_sessions(g.account.id), current=g.sso,
                           logout_form=logout_form, applications=tokens.connected_applications(g.account.id), form=ActionForm()), status


@blueprint.get("/account/sessions")
@login_required
def account_sessions():
    return _render_sessions(LogoutElsewhereForm())


@blueprint.post("/account/sessions/logout-elsewhere")
@login_required
@limiter.limit(lambda: current_app.config["RATE_LIMIT_LOGIN"], methods=["POST"])
def account_logout_elsewhere():
    """Ending the other sessions needs the password again (ASVS 5.0 §7.5.2): a stolen session
    cannot lock the patient out of their other devices. A wrong password counts towards the
    account's lockout, like at login, and ends nothing."""
    form = LogoutElsewhereForm()
    if not form.validate_on_submit():
        return _render_sessions(form, 400)
    try:
        credential.verify_password(g.account, form.current_password.data)
    except credential.WrongPassword:
        db.session.commit()  # the failure count
        form.current_password.errors.append(_("Mot de passe incorrect : aucune session n'a été fermée."))
        return _render_sessions(form, 400)
    except credential.AccountLocked as error:
        db.session.commit()
        password_error(form, error)
        return _render_sessions(form, 429)
    ended = sso_session.end_all(g.account.id, except_id=g.sso.id)
    db.session.commit()
    backchannel_logout.send_queued()
    flash(_("%(count)d autre(s) session(s) fermée(s).", count=ended), "info")
    return redirect(url_for("flows.account_sessions"), code=303)


@blueprint.post("/account/sessions/applications/<family_id>/revoke")
@login_required
def account_application_revoke(family_id: str):
    """Revoke one application's refresh token, and with it its whole family (RFC 9700 §4.14.2):
    the application must send the patient through a login again. Another patient's family is a 404."""
    if not ActionForm().validate_on_submit():
        return redirect(url_for("flows.account_sessions"), code=303)
    client_id = tokens.client_of_family_held_by(family_id, g.account.id)
    if client_id is None:
        abort(404)
    revoked = tokens.revoke_family(family_id)
    audit.record(audit.Event.TOKEN_REVOKED, account_id=g.account.id, client_id=client_id, actor=f"account:{g.account.id}",
                 revoked_tokens=revoked, via="account")
    db.session.commit()
    client = clients.get_any(client_id)
    flash(_("L'accès de %(name)s à votre compte a été retiré.", name=client.name if client else client_id), "info")
    return redirect(url_for("flows.account_sessions"), code=303)


@blueprint.route("/password/forgotten", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATE_LIMIT_LOGIN"], methods=["POST"])
def password_forgotten():
    """The same answer for every matricule (a decoy challenge stands for one without an account),
    throttles and send limits included; only a failing SMS gateway or mail server is told apart."""
    form = ForgottenPasswordForm()
    if not form.validate_on_submit():
        return render_template("flows/account/forgotten.html", form=form), 400 if request.method == "POST" else 200
    try:
        challenge = self_service.start_recovery(form.matricule.data)
    except throttle.Throttled as throttled:
        form.matricule.errors.append(throttled_message(throttled.retry_after))
        return render_template("flows/account/forgotten.html", form=form), 429, {"Retry-After": str(throttled.retry_after)}
    except (one_time_code.ResendTooSoon, one_time_code.SendLimitReached) as refused:
        db.session.rollback()
        form.matricule.errors.append(code_refused_message(refused))
        return render_template("flows/account/forgotten.html", form=form), 429
    except messaging.MessageNotSent:
        db.session.commit()
        flash(_("Le code n'a pas pu être envoyé. Veuillez réessayer dans un instant."), "error")
        return render_template("flows/account/forgotten.html", form=form), 503
    challenge_id = challenge.id
    db.session.commit()
    session["recovery"] = challenge_id
    return redirect(url_for("flows.password_reset"), code=303)


@blueprint.route("/password/reset", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATE_LIMIT_ONE_TIME_CODE"], methods=["POST"])
def password_reset():
    marker = session.get("recovery")
    if not marker:
        return redirect(url_for("flows.password_forgotten"), code=303)
    challenge = one_time_code.get(marker)
    form = NewPasswordForm()
    if not form.validate_on_submit():
        return render_template("flows/account/reset.html", form=form), 400 if request.method == "POST" else 200
    if challenge is None or challenge.purpose != self_service.RECOVERY_PURPOSE:
        form.code.errors.append(code_refused_message(one_time_code.OneTimeCodeExpired()))  # purged long ago
        return render_template("flows/account/reset.html", form=form), 400
    try:
        recovered = code_accepted(lambda: self_service.finish_recovery(challenge, form.code.data, form.password.data, form.confirmation.data),
                                  form.code)
    except credential.PasswordTooWeak as weak:
        add_rule_errors(form, weak)
        recovered = False
    if not recovered:
        return render_template("flows/account/reset.html", form=form), 400
    db.session.commit()
    backchannel_logout.send_queued()
    session.pop("recovery", None)
    flash(_("Votre mot de passe a été réinitialisé. Vous pouvez vous connecter."), "info")
    return redirect(url_for("flows.login"), code=303)
