""""Assistants": the guide's steps to add an Assistant DSP, and to remove one.

"Ajouter" → exact "Numéro assuré" → "Rechercher" → the masked name → pick it → "Type"
Assistant DSP, "Rôle" empty → ✓. The looked-up patient is kept in the session, never in the
page, so the form cannot be replayed with another account's id. Look-ups are rate-limited and
audited by :mod:`idp.delegation`.
"""

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _, lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from .. import account as accounts, delegation as delegations
from ..extensions import db, limiter
from . import blueprint
from ..page_guards import login_required
from .account_forms import ActionForm
from .forms import valid_matricule

CANDIDATE = "assistant_candidate"


class AssistantSearchForm(FlaskForm):
    matricule = StringField(_l("Numéro assuré"), validators=[DataRequired(_l("Veuillez saisir le numéro assuré.")), Length(max=32), valid_matricule])


class AssistantForm(FlaskForm):
    type = SelectField(_l("Type"), choices=[SelectChoice(delegations.ASSISTANT_DSP, _l("Assistant DSP"))])
    role = StringField(_l("Rôle"), validators=[Optional(), Length(max=delegations.ROLE_MAX_LENGTH)])
    valid_until = DateField(_l("Valable jusqu'au (facultatif)"), validators=[Optional()])


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
    found = delegations.lookup(form.matricule.data, requested_by=g.account)
    db.session.commit()
    if found is None or found.id == g.account.id:
        session.pop(CANDIDATE, None)
        message = _("Aucun patient ne correspond à ce numéro assuré.") if found is None else _("Vous ne pouvez pas être votre propre assistant.")
        form.matricule.errors.append(message)
        return render_template("flows/assistants/search.html", form=form, found=None), 404 if found is None else 400
    session[CANDIDATE] = {"owner": g.account.id, "assistant": found.id}
    return render_template("flows/assistants/search.html", form=form, found=delegations.masked_name(found))


@blueprint.route("/account/assistants/new", methods=["GET", "POST"])
@login_required
def assistant_new():
    candidate = session.get(CANDIDATE) or {}
    assistant = accounts.get(candidate["assistant"]) if candidate.get("owner") == g.account.id else None
    if assistant is None:
        return redirect(url_for("flows.assistant_search"), code=303)
    form = AssistantForm()
    name = delegations.masked_name(assistant)
    if not form.validate_on_submit():
        return render_template("flows/assistants/new.html", form=form, name=name), 400 if request.method == "POST" else 200
    try:
        delegations.grant(g.account, assistant, created_by=g.account, type=form.type.data, role=form.role.data,
                          valid_until=form.valid_until.data)
    except delegations.DelegationExists:
        form.type.errors.append(_("Cette personne est déjà votre assistant."))
    except delegations.InvalidDelegation:
        form.valid_until.errors.append(_("La date de fin ne peut pas être passée."))
    else:
        db.session.commit()
        session.pop(CANDIDATE, None)
        flash(_("%(name)s est maintenant votre assistant DSP.", name=name), "info")
        return redirect(url_for("flows.assistants"), code=303)
    return render_template("flows/assistants/new.html", form=form, name=name), 400


@blueprint.post("/account/assistants/<delegation_id>/remove")
@login_required
def assistant_remove(delegation_id: str):
    found = delegations.get(delegation_id)
    if ActionForm().validate_on_submit() and found is not None and found.owner_id == g.account.id and found.is_in_force():
        delegations.revoke(found, by=g.account)
        db.session.commit()
        flash(_("L'assistant a été retiré. Il n'a plus accès à votre dossier."), "info")
    return redirect(url_for("flows.assistants"), code=303)
