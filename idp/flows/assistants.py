""""Assistants": the guide's steps to add an Assistant DSP, and to remove one.

"Ajouter" → exact "Numéro assuré" → "Rechercher" → the masked name → pick it → "Type"
Assistant DSP, "Rôle" empty → ✓. The looked-up patient is kept in the session, never in the
page, so the form cannot be replayed with another account's id. Look-ups find only active
accounts, are limited per address and per account, and are audited by :mod:`idp.delegation`.
The ✓ needs the patient's password again (or, without one, a code sent now), and the patient is
told of the new assistant on every channel (:func:`idp.self_service.add_assistant`).
"""

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _, lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from .. import account as accounts, credential, delegation as delegations, messaging, one_time_code, self_service, throttle
from ..extensions import db, limiter
from . import blueprint
from ..page_guards import login_required
from .account import password_error
from .account_forms import ActionForm
from .forms import valid_matricule
from .login import code_accepted, code_refused_message, mask_destination, throttled_message

CANDIDATE = "assistant_candidate"
CONFIRMATION_CODE = "assistant_confirmation"


class AssistantSearchForm(FlaskForm):
    matricule = StringField(_l("Numéro assuré"), validators=[DataRequired(_l("Veuillez saisir le numéro assuré.")), Length(max=32), valid_matricule])


class AssistantForm(FlaskForm):
    type = SelectField(_l("Type"), choices=[SelectChoice(delegations.ASSISTANT_DSP, _l("Assistant DSP"))])
    role = StringField(_l("Rôle"), validators=[Optional(), Length(max=delegations.ROLE_MAX_LENGTH)])
    valid_until = DateField(_l("Valable jusqu'au (facultatif)"), validators=[Optional()])
    # One of the two, by whether the account has a password (see self_service.add_assistant).
    current_password = PasswordField(_l("Votre mot de passe, pour confirmer"), validators=[Optional(), Length(max=256)])
    code = StringField(_l("Code à usage unique reçu"), validators=[Optional(), Length(max=12)])


@blueprint.get("/account/assistants")
@login_required
def assistants():
    return render_template(
        "flows/assistants/list.html", delegations=delegations.for_owner(g.account), assisted=delegations.for_assistant(g.account),
        masked_name=delegations.masked_name, form=ActionForm(),
    )


@blueprint.route("/account/assistants/add", methods=["GET", "POST"])
@login_required
@limiter.limit(lambda: current_app.config["RATE_LIMIT_DELEGATION_LOOKUP"], methods=["POST"])
def assistant_search():
    form = AssistantSearchForm()
    if not form.validate_on_submit():
        return render_template("flows/assistants/search.html", form=form, found=None), 400 if request.method == "POST" else 200
    try:
        found = delegations.lookup(form.matricule.data, requested_by=g.account)
    except throttle.Throttled as throttled:
        form.matricule.errors.append(throttled_message(throttled.retry_after))
        return render_template("flows/assistants/search.html", form=form, found=None), 429, {"Retry-After": str(throttled.retry_after)}
    db.session.commit()
    if found is None or found.id == g.account.id:
        session.pop(CANDIDATE, None)
        message = _("Aucun patient ne correspond à ce numéro assuré.") if found is None else _("Vous ne pouvez pas être votre propre assistant.")
        form.matricule.errors.append(message)
        return render_template("flows/assistants/search.html", form=form, found=None), 404 if found is None else 400
    session[CANDIDATE] = {"owner": g.account.id, "assistant": found.id}
    return render_template("flows/assistants/search.html", form=form, found=delegations.masked_name(found))


def _candidate() -> accounts.Account | None:
    candidate = session.get(CANDIDATE) or {}
    return accounts.get(candidate["assistant"]) if candidate.get("owner") == g.account.id else None


def _confirmation_challenge() -> one_time_code.OneTimeCode | None:
    challenge = one_time_code.get(session.get(CONFIRMATION_CODE))
    if challenge is None or challenge.account_id != g.account.id or challenge.purpose != self_service.ASSISTANT_PURPOSE:
        return None
    return challenge


def _render_new(form: AssistantForm, name: str, status: int):
    has_password = credential.has_password(g.account)
    challenge = None if has_password else _confirmation_challenge()
    sent_to = mask_destination(challenge.channel, challenge.destination) if challenge else None
    return render_template("flows/assistants/new.html", form=form, name=name, has_password=has_password, sent_to=sent_to,
                           send_form=ActionForm()), status


@blueprint.route("/account/assistants/new", methods=["GET", "POST"])
@login_required
def assistant_new():
    assistant = _candidate()
    if assistant is None:
        return redirect(url_for("flows.assistant_search"), code=303)
    form = AssistantForm()
    name = delegations.masked_name(assistant)
    if not form.validate_on_submit():
        return _render_new(form, name, 400 if request.method == "POST" else 200)
    if credential.has_password(g.account) and not form.current_password.data:
        form.current_password.errors.append(_("Veuillez saisir votre mot de passe."))
        return _render_new(form, name, 400)
    try:
        added = code_accepted(lambda: self_service.add_assistant(
            g.account, assistant, password=form.current_password.data, challenge=_confirmation_challenge(), code=form.code.data,
            type=form.type.data, role=form.role.data, valid_until=form.valid_until.data), form.code)
    except (credential.WrongPassword, credential.AccountLocked) as error:
        db.session.commit()  # the failure counts towards the lockout
        password_error(form, error)
        added = False
    except delegations.DelegationExists:
        db.session.rollback()
        form.type.errors.append(_("Cette personne est déjà votre assistant."))
        added = False
    except delegations.InvalidDelegation:
        db.session.rollback()
        form.valid_until.errors.append(_("La date de fin ne peut pas être passée."))
        added = False
    if not added:
        return _render_new(form, name, 400)
    db.session.commit()
    session.pop(CANDIDATE, None)
    session.pop(CONFIRMATION_CODE, None)
    flash(_("%(name)s est maintenant votre assistant DSP.", name=name), "info")
    return redirect(url_for("flows.assistants"), code=303)


@blueprint.post("/account/assistants/new/code")
@login_required
@limiter.limit(lambda: current_app.config["RATE_LIMIT_ONE_TIME_CODE"])
def assistant_confirmation_code():
    """An account without a password confirms with a code sent now."""
    if _candidate() is None or credential.has_password(g.account) or not ActionForm().validate_on_submit():
        return redirect(url_for("flows.assistant_search"), code=303)
    try:
        challenge = self_service.start_assistant_confirmation(g.account)
    except messaging.MessageNotSent:
        db.session.commit()
        flash(_("Le code n'a pas pu être envoyé. Veuillez réessayer dans un instant."), "error")
        return redirect(url_for("flows.assistant_new"), code=303)
    except one_time_code.OneTimeCodeError as refused:
        db.session.rollback()
        flash(code_refused_message(refused), "error")
        return redirect(url_for("flows.assistant_new"), code=303)
    session[CONFIRMATION_CODE] = challenge.id
    db.session.commit()
    return redirect(url_for("flows.assistant_new"), code=303)


@blueprint.post("/account/assistants/<delegation_id>/remove")
@login_required
def assistant_remove(delegation_id: str):
    found = delegations.get(delegation_id)
    if ActionForm().validate_on_submit() and found is not None and found.owner_id == g.account.id and found.is_in_force():
        delegations.revoke(found, by=g.account)
        db.session.commit()
        flash(_("L'assistant a été retiré. Il n'a plus accès à votre dossier."), "info")
    return redirect(url_for("flows.assistants"), code=303)
