""""J'active mon compte": the activation wizard pages and the "no activation code" request.

The pages follow the patient guide (pages "Activation via Portail eSanté"): CGU first, then
five numbered steps. The wizard's state is in :mod:`idp.activation`; this module only parses
forms, calls it and renders the result.
"""

import math

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import get_locale, gettext as _, lazy_gettext as _l, ngettext

from .. import activation, activation_letter, cgu_acceptance, clock, credential, helpdesk_request
from .. import federated_identity, messaging, one_time_code, passkey, sso_session
from ..extensions import db, limiter
from ..assurance import ACR_SUBSTANTIAL
from . import blueprint
from .activation_forms import (ActivationCodeForm, BackForm, CguForm, ChannelCodeForm, ChannelDestinationForm, HelpdeskRequestForm,
                    NextStepForm, PasswordForm, ResendForm)
from ..page_guards import safe_next
from .forms import PasskeyNameForm
from .login import code_accepted, code_refused_message, mask_destination

SESSION_KEY = "activation"
PASSWORD_RULE_MESSAGES = {
    "too_short": _l("Le mot de passe doit faire au minimum 8 caractères."),
    "too_long": _l("Le mot de passe ne peut pas dépasser 128 caractères."),
    "no_letter": _l("Le mot de passe doit comprendre au moins un caractère alphabétique."),
    "no_digit": _l("Le mot de passe doit comprendre au moins un caractère numérique."),
    "contains_personal_data": _l("Le mot de passe ne doit contenir ni votre matricule ni votre nom."),
    "common_password": _l("Ce mot de passe est trop courant. Choisissez-en un autre."),
    "confirmation_differs": _l("La confirmation ne correspond pas au mot de passe."),
}
STEP_ENDPOINTS = {
    activation.STEP_CODE: "flows.activation_code",
    activation.STEP_PASSWORD: "flows.activation_password",
    activation.STEP_CHANNEL: "flows.activation_channel",
    activation.STEP_OTHER_MEANS: "flows.activation_other_means",
    activation.STEP_DONE: "flows.activation_done",
}


def add_rule_errors(form, weak: credential.PasswordTooWeak) -> None:
    """Each broken password rule under the field it concerns (wizard, password change, reset)."""
    for rule in weak.rules:
        (form.confirmation if rule == "confirmation_differs" else form.password).errors.append(str(PASSWORD_RULE_MESSAGES[rule]))


def _activation_locked_message(locked: activation_letter.ActivationLocked) -> str:
    minutes = math.ceil((locked.until - clock.now()).total_seconds() / 60)
    return ngettext("Trop de codes d'activation erronés pour ce matricule. Par sécurité, réessayez dans %(num)d minute ; "
                    "votre courrier reste valable.",
                    "Trop de codes d'activation erronés pour ce matricule. Par sécurité, réessayez dans %(num)d minutes ; "
                    "votre courrier reste valable.", minutes)


def _render(template: str, wizard, status: int = 200, **context):
    return render_template(f"flows/activation/{template}", wizard=wizard, **context), status


def _wizard_for(step: int):
    """This browser's wizard at ``step``, or a redirect to where the patient belongs."""
    try:
        wizard = activation.get(session.get(SESSION_KEY))
    except activation.WizardExpired:
        session.pop(SESSION_KEY, None)
        return None, render_template("flows/activation/expired.html"), 410
    if wizard is None:
        return None, redirect(url_for("flows.activation_start"), code=303), None
    try:
        activation.require_step(wizard, step)
    except activation.StepNotReached:
        target = activation.STEP_DONE if wizard.completed_at else wizard.step
        return None, redirect(url_for(STEP_ENDPOINTS[target]), code=303), None
    return wizard, None, None


def _guarded(step: int):
    wizard, response, status = _wizard_for(step)
    if wizard is None:
        return None, (response if status is None else (response, status))
    return wizard, None


@blueprint.route("/activation", methods=["GET", "POST"])
def activation_start():
    form = CguForm()
    language = str(get_locale())
    if request.method == "GET" and _is_authorization_request(request.args.get("next")):
        # "J'active mon compte" on a login page an application sent the patient to: come back to it.
        session["activation_return_to"] = request.args["next"]
    if form.validate_on_submit():
        wizard = activation.start(return_to=session.pop("activation_return_to", None))
        db.session.commit()
        session[SESSION_KEY] = wizard.id
        return redirect(url_for("flows.activation_code"), code=303)
    return render_template(
        "flows/activation/start.html", form=form, cgu_text=cgu_acceptance.text(language), cgu_version=cgu_acceptance.current_version()
    ), 400 if request.method == "POST" else 200


def _is_authorization_request(target: str | None) -> bool:
    """A path on this server to the authorization endpoint (never another site: :func:`safe_next`)."""
    return bool(target) and safe_next(target) == target and target.startswith(url_for("oauth.authorize") + "?")


@blueprint.get("/cgu.pdf")
def cgu_pdf():
    response = current_app.response_class(cgu_acceptance.pdf(str(get_locale())), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="cgu-esante-{cgu_acceptance.current_version()}.pdf"'
    return response


@blueprint.route("/activation/code", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATE_LIMIT_ACTIVATION"], methods=["POST"])
def activation_code():
    wizard, response = _guarded(activation.STEP_CODE)
    if wizard is None:
        return response
    form = ActivationCodeForm()
    if not form.validate_on_submit():
        return _render("code.html", wizard, 400 if request.method == "POST" else 200, form=form)
    if form.has_code.data == "no":
        return redirect(url_for("flows.activation_request", matricule=form.matricule.data), code=303)
    try:
        activation.submit_code(wizard, form.matricule.data, form.activation_code.data or "")
    except activation_letter.ActivationCodeInvalid:
        db.session.commit()
        form.activation_code.errors.append(_("Matricule ou code d'activation incorrect. Vérifiez le courrier de l'Agence eSanté."))
        return _render("code.html", wizard, 400, form=form)
    except activation_letter.ActivationLocked as locked:
        db.session.commit()
        form.activation_code.errors.append(_activation_locked_message(locked))
        return _render("code.html", wizard, 429, form=form)
    except activation_letter.ActivationCodeExpired:
        db.session.commit()
        return _render("code.html", wizard, 400, form=form, expired=True)
    except activation_letter.AccountAlreadyActive:
        db.session.commit()
        return _render("code.html", wizard, 409, form=form, already_active=True)
    db.session.commit()
    return redirect(url_for("flows.activation_password"), code=303)


@blueprint.route("/activation/password", methods=["GET", "POST"])
def activation_password():
    wizard, response = _guarded(activation.STEP_PASSWORD)
    if wizard is None:
        return response
    form = PasswordForm()
    if not form.validate_on_submit():
        return _render("password.html", wizard, 400 if request.method == "POST" else 200, form=form, back=BackForm())
    try:
        activation.submit_password(wizard, form.password.data, form.confirmation.data)
    except credential.PasswordTooWeak as weak:
        add_rule_errors(form, weak)
        return _render("password.html", wizard, 400, form=form, back=BackForm())
    db.session.commit()
    return redirect(url_for("flows.activation_channel"), code=303)


@blueprint.route("/activation/channel", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATE_LIMIT_ONE_TIME_CODE"], methods=["POST"])
def activation_channel():
    wizard, response = _guarded(activation.STEP_CHANNEL)
    if wizard is None:
        return response
    destination_form, code_form = ChannelDestinationForm(prefix="send"), ChannelCodeForm(prefix="verify")
    context = {"destination_form": destination_form, "code_form": code_form, "back": BackForm(), "resend": ResendForm(),
               "sent_to_message": _sent_to_message(wizard)}
    sending = request.method == "POST" and "send-submit" in request.form
    if not sending:  # the choice made when the code was sent stays on the page, whatever happens to the code
        destination_form.channel.data = wizard.channel or "sms"
        destination_form.destination.data = wizard.destination or ""
    if request.method == "GET":
        return _render("channel.html", wizard, **context)
    if sending:
        if not destination_form.validate_on_submit():
            return _render("channel.html", wizard, 400, **context)
        try:
            activation.send_channel_code(wizard, destination_form.channel.data, destination_form.destination.data)
        except activation.InvalidDestination:
            message = _("Numéro de mobile invalide (exemple : +352 621 123 456).") if destination_form.channel.data == "sms" else _("Adresse e-mail invalide.")
            destination_form.destination.errors.append(message)
            return _render("channel.html", wizard, 400, **context)
        except (one_time_code.ResendTooSoon, one_time_code.SendLimitReached) as refused:
            db.session.rollback()
            destination_form.destination.errors.append(code_refused_message(refused))
            return _render("channel.html", wizard, 429, **context)
        except messaging.MessageNotSent:
            db.session.commit()
            destination_form.destination.errors.append(_("Le code n'a pas pu être envoyé. Veuillez réessayer dans un instant."))
            return _render("channel.html", wizard, 503, **context)
        db.session.commit()
        return redirect(url_for("flows.activation_channel"), code=303)
    if not code_form.validate_on_submit() or not wizard.challenge_id:
        return _render("channel.html", wizard, 400, **context)
    if not code_accepted(lambda: activation.verify_channel_code(wizard, code_form.code.data), code_form.code):
        return _render("channel.html", wizard, 400, **context)
    db.session.commit()
    return redirect(url_for("flows.activation_other_means"), code=303)


def _sent_to_message(wizard) -> str | None:
    """Where the current code went, masked as on the login page: the patient knows where to look."""
    if not wizard.challenge_id or not wizard.destination:
        return None
    where = mask_destination(wizard.channel, wizard.destination)
    if wizard.channel == "sms":
        return _("Un code à usage unique a été envoyé par SMS au %(destination)s.", destination=where)
    return _("Un code à usage unique a été envoyé par e-mail à %(destination)s.", destination=where)


@blueprint.post("/activation/channel/resend")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_ONE_TIME_CODE"])
def activation_channel_resend():
    wizard, response = _guarded(activation.STEP_CHANNEL)
    if wizard is None:
        return response
    if not ResendForm().validate_on_submit():
        abort(400)
    try:
        activation.resend_channel_code(wizard)
        flash(_("Un nouveau code vous a été envoyé."), "info")
    except (one_time_code.ResendTooSoon, one_time_code.SendLimitReached, one_time_code.OneTimeCodeUsed) as refused:
        flash(code_refused_message(refused), "error")
    except messaging.MessageNotSent:
        flash(_("Le code n'a pas pu être envoyé. Veuillez réessayer dans un instant."), "error")
    except activation.StepNotReached:
        pass
    db.session.commit()
    return redirect(url_for("flows.activation_channel"), code=303)


@blueprint.route("/activation/other-means", methods=["GET", "POST"])
def activation_other_means():
    wizard, response = _guarded(activation.STEP_OTHER_MEANS)
    if wizard is None:
        return response
    form = NextStepForm()
    if not form.validate_on_submit():
        return _render("other_means.html", wizard, 400 if request.method == "POST" else 200, form=form, back=BackForm(),
                       luxtrust_linked=bool(federated_identity.of_account(wizard.account_id, "luxtrust")),
                       passkey_form=PasskeyNameForm(formdata=None), passkeys=passkey.passkeys_of(passkey.Owner(account_id=wizard.account_id)))
    try:
        account = activation.complete(wizard)
    except activation_letter.AccountAlreadyActive:
        db.session.rollback()
        return redirect(url_for("flows.activation_done"), code=303)
    except activation_letter.LetterNoLongerValid:
        db.session.rollback()
        activation.go_back(wizard, activation.STEP_CODE)
        db.session.commit()
        flash(_("Ce code d'activation n'est plus valable : un nouveau courrier a été émis ou le code a expiré. "
                "Saisissez le code de votre dernier courrier."), "error")
        return redirect(url_for("flows.activation_code"), code=303)
    if wizard.return_to:
        sso_session.start(account.id, amr=["otp", "sms", "mfa"] if wizard.channel == "sms" else ["otp", "mfa"], acr=ACR_SUBSTANTIAL)
    db.session.commit()
    return redirect(url_for("flows.activation_done"), code=303)


@blueprint.get("/activation/done")
def activation_done():
    wizard, response = _guarded(activation.STEP_DONE)
    if wizard is None:
        return response
    if wizard.completed_at is None:
        return redirect(url_for(STEP_ENDPOINTS[wizard.step]), code=303)
    continue_to = safe_next(wizard.return_to) if wizard.return_to else url_for("flows.login")
    return _render("done.html", wizard, continue_to=continue_to, returning_to_service=bool(wizard.return_to))


@blueprint.post("/activation/back/<int:step>")
def activation_back(step: int):
    try:
        wizard = activation.get(session.get(SESSION_KEY))
    except activation.WizardExpired:
        return redirect(url_for("flows.activation_start"), code=303)
    if wizard is None or not BackForm().validate_on_submit() or step not in STEP_ENDPOINTS:
        return redirect(url_for("flows.activation_start"), code=303)
    try:
        activation.go_back(wizard, step)
    except activation.StepNotReached:
        return redirect(url_for(STEP_ENDPOINTS[wizard.step]), code=303)
    db.session.commit()
    return redirect(url_for(STEP_ENDPOINTS[step]), code=303)


@blueprint.route("/activation/request", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATE_LIMIT_ACTIVATION"], methods=["POST"])
def activation_request():
    form = HelpdeskRequestForm()
    if request.method == "GET" and request.args.get("matricule"):
        form.matricule.data = request.args["matricule"]
    if not form.validate_on_submit():
        return render_template("flows/activation/request.html", form=form), 400 if request.method == "POST" else 200
    helpdesk_request.file(
        matricule=form.matricule.data,
        family_name=form.family_name.data,
        given_name=form.given_name.data,
        birth_date=form.birth_date.data,
        contact_email=form.contact_email.data,
        contact_phone=form.contact_phone.data,
        note=form.note.data,
    )
    db.session.commit()
    return redirect(url_for("flows.activation_request_sent"), code=303)


@blueprint.get("/activation/request/sent")
def activation_request_sent():
    return render_template("flows/activation/request_sent.html")

