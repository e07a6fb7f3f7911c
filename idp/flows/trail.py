""""Traçabilité": the patient's own trail, by period and by assistant, and its CSV / JSON download.

The trail is the audit log's events about the patient's account: logins, consents, changes to
the assistants and every token issued for the record under a delegation (which service, which
assistant, when). The EHDS (Art. 9) asks that patients can see who accessed their record.
"""

from datetime import datetime, time, timedelta

from flask import Response, g, render_template, request
from flask_babel import format_datetime, lazy_gettext as _l, to_utc
from flask_wtf import FlaskForm
from wtforms import DateField, SelectChoice, SelectField
from wtforms.validators import Optional

from .. import audit, client as clients, delegation as delegations, plain_words
from ..extensions import db
from . import blueprint
from ..page_guards import login_required

PAGE_SIZE = 500


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
    # The days are Luxembourg days, as the rows show them; the log keeps UTC.
    since = to_utc(datetime.combine(form.since.data, time.min)) if valid and form.since.data else None
    before = to_utc(datetime.combine(form.until.data + timedelta(days=1), time.min)) if valid and form.until.data else None
    assistant_id = int(form.assistant.data) if valid and form.assistant.data else None
    return form, valid, people, audit.trail(g.account.id, since=since, before=before, assistant_id=assistant_id)


def _rows(events, people: dict[int, str]) -> list[dict]:
    """Rows in the patient's words: a sentence, the service's display name, the assistant by masked
    name (never an internal id); no IP addresses (they are the assistants')."""
    rows = audit.trail_rows(events, with_ip_address=False)
    services = {client.client_id: client for client in clients.all_clients()}
    for entry, row in zip(events, rows):
        assistant_id = row.pop("assistant_id")
        row["assistant"] = people.get(assistant_id) if assistant_id is not None else None
        service = plain_words.service_name(services.get(row["client_id"]), row["client_id"]) if row["client_id"] else None
        row["service"] = service
        row["description"] = plain_words.event_sentence(row["event"], row["details"], service)
        row["local_time"] = format_datetime(entry.occurred_at, "dd/MM/yyyy HH:mm")
    return rows


EXPORT_FIELDS = ["occurred_at", "event", "description", "client_id", "service", "assistant", "actor", "details"]


@blueprint.get("/account/trail")
@login_required
def trail():
    form, valid, people, events = _filtered()
    return render_template("flows/trail/trail.html", form=form, rows=_rows(events[:PAGE_SIZE], people), more=len(events) > PAGE_SIZE,
                           query=request.query_string.decode()), 200 if valid else 400


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
