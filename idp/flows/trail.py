""""Traçabilité": the patient's own trail, by period and by assistant, and its CSV / JSON download.

The trail is the audit log's events about the patient's account: logins, consents, changes to
the assistants and every token issued for the record under a delegation (which service, which
assistant, when). The EHDS (Art. 9) asks that patients can see who accessed their record.
"""

from datetime import datetime, time, timedelta

from flask import Response, g, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectChoice, SelectField
from wtforms.validators import Optional

from .. import audit, client as clients, delegation as delegations
from ..extensions import db
from . import blueprint
from ..page_guards import login_required

PAGE_SIZE = 500
LABELS = {
    audit.Event.LOGIN_SUCCEEDED: _l("Connexion"),
    audit.Event.LOGIN_PASSWORD_FAILED: _l("Mot de passe incorrect"),
    audit.Event.LOGIN_LOCKED: _l("Compte bloqué temporairement"),
    audit.Event.ONE_TIME_CODE_FAILED: _l("Code à usage unique incorrect"),
    audit.Event.LOGOUT: _l("Déconnexion"),
    audit.Event.SESSION_ENDED: _l("Session fermée"),
    audit.Event.CONSENT_GRANTED: _l("Accès autorisé à un service"),
    audit.Event.CONSENT_REVOKED: _l("Accès retiré à un service"),
    audit.Event.TOKEN_ISSUED: _l("Jeton délivré à un service"),
    audit.Event.TOKEN_REFRESHED: _l("Jeton renouvelé pour un service"),
    audit.Event.TOKEN_REVOKED: _l("Jeton révoqué"),
    audit.Event.CONTACT_CHANGED: _l("Coordonnées modifiées"),
    audit.Event.PASSWORD_CHANGED: _l("Mot de passe modifié"),
    audit.Event.PASSWORD_RESET: _l("Mot de passe réinitialisé"),
    audit.Event.ACCOUNT_ACTIVATED: _l("Compte activé"),
    audit.Event.DELEGATION_LOOKUP: _l("Recherche d'un assistant"),
    audit.Event.DELEGATION_GRANTED: _l("Assistant ajouté"),
    audit.Event.DELEGATION_REVOKED: _l("Assistant retiré"),
    audit.Event.DELEGATION_ENDED: _l("Accès d'un assistant terminé"),
    audit.Event.DELEGATED_CONSENT_GRANTED: _l("Accès autorisé à un service par un assistant"),
    audit.Event.DELEGATED_TOKEN_ISSUED: _l("Accès à votre dossier par un assistant"),
    audit.Event.PATIENT_SELECTED: _l("Dossier ouvert par un assistant"),
    audit.Event.TRAIL_EXPORTED: _l("Traçabilité téléchargée"),
    audit.Event.FEDERATED_IDENTITY_LINKED: _l("Moyen de connexion lié (LuxTrust, MyGuichet.lu)"),
    audit.Event.FEDERATED_IDENTITY_UNLINKED: _l("Moyen de connexion retiré (LuxTrust, MyGuichet.lu)"),
    audit.Event.FEDERATED_LOGOUT: _l("Déconnexion (LuxTrust, MyGuichet.lu)"),
    audit.Event.STEP_UP_REFUSED: _l("Niveau de sécurité supérieur demandé mais indisponible"),
    audit.Event.NATIONAL_ID_CONSENT_GIVEN: _l("Consentement au partage de l'identifiant national par MyGuichet.lu"),
    audit.Event.NATIONAL_ID_CONSENT_REVOKED: _l("Consentement au partage de l'identifiant national retiré"),
    audit.Event.NEW_DEVICE_LOGIN: _l("Connexion depuis un nouvel appareil"),
    audit.Event.BACKCHANNEL_LOGOUT_DELIVERED: _l("Déconnexion transmise à un service"),
}


class TrailFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter changes nothing

    since = DateField(_l("Du"), validators=[Optional()])
    until = DateField(_l("Au"), validators=[Optional()])
    assistant = SelectField(_l("Assistant"), validators=[Optional()])


def _filtered():
    """The form and the events it selects; a date that does not parse is shown as an error, not ignored."""
    form = TrailFilterForm(request.args)
    people = {d.assistant_id: delegations.masked_name(d.assistant) for d in delegations.ever_on_record(g.account)}
    form.assistant.choices = [SelectChoice("", _l("Tous"))] + [SelectChoice(str(key), name) for key, name in people.items()]
    valid = form.validate()
    since = datetime.combine(form.since.data, time.min) if valid and form.since.data else None
    before = datetime.combine(form.until.data + timedelta(days=1), time.min) if valid and form.until.data else None
    assistant_id = int(form.assistant.data) if valid and form.assistant.data else None
    return form, valid, people, audit.trail(g.account.id, since=since, before=before, assistant_id=assistant_id)


def _rows(events, people: dict[int, str]) -> list[dict]:
    """Export rows: the assistant by masked name, never an internal id; no IP addresses (they are the assistants')."""
    rows = audit.trail_rows(events, with_ip_address=False)
    for row in rows:
        assistant_id = row.pop("assistant_id")
        row["assistant"] = people.get(assistant_id) if assistant_id is not None else None
        row["description"] = str(LABELS.get(row["event"], row["event"]))
    return rows


EXPORT_FIELDS = ["occurred_at", "event", "description", "client_id", "assistant", "actor", "details"]


@blueprint.get("/account/trail")
@login_required
def trail():
    form, valid, people, events = _filtered()
    names = {c.client_id: c.name for c in clients.all_clients()}
    return render_template("flows/trail/trail.html", form=form, rows=_rows(events[:PAGE_SIZE], people), more=len(events) > PAGE_SIZE,
                           client_names=names, query=request.query_string.decode()), 200 if valid else 400


@blueprint.get("/account/trail.<any(csv, json):kind>")
@login_required
def trail_download(kind: str):
    form, valid, people, events = _filtered()
    if not valid:
        return trail()
    rows = _rows(events, people)
    audit.record(audit.Event.TRAIL_EXPORTED, account_id=g.account.id, actor=f"account:{g.account.id}", format=kind, rows=len(rows))
    db.session.commit()
    return download(rows, kind, "tracabilite", EXPORT_FIELDS)


def download(rows: list[dict], kind: str, name: str, fields: list[str]) -> Response:
    body, mimetype = audit.serialize_trail(rows, kind, fields)
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
    response.headers["Cache-Control"] = "no-store"
    return response
