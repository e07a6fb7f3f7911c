"""Traçabilité: the patient's trail (by date, by assistant), its downloads, the admin export and retention."""

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.exc import DBAPIError

from idp import audit, clock, consent
from idp.extensions import db
from tests.admin.test_admin_ui import AdminBrowser
from tests.delegation.conftest import access_token, assist
from tests.oauth.test_rfc8693_token_exchange import exchange
from tests.support import services


@pytest.fixture
def history(oidc, viewer, child, parent, patients):
    """A child's record: logins, a consent, two assistants two days apart, one of whom opened the record."""
    mother = patients.create(given_name="Anna", family_name="Doe", birth="19820303", email="anna@example.lu", mobile="+352621000003")
    patients.login(child)
    consent.grant(child.account.id, "pharmacy", "openid")
    assist(child, parent)
    clock.advance(timedelta(days=2))
    assist(child, mother)
    exchange(oidc, viewer, access_token(viewer, parent), child.account.subject, scope="openid")
    patients.login(child)  # the first session has expired meanwhile
    return mother


def test_the_trail_shows_logins_consents_assistants_and_their_accesses(client, history, child, parent, viewer):
    page = client.get("/account/trail")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    for label in ("Connexion", "à accéder à votre compte", "Assistant DSP ajouté", "Accès à votre dossier par un assistant, via"):
        assert label in text, label
    assert "H. Doe" in text and "A. Doe" in text and viewer.name in text


def test_the_trail_filters_by_assistant_and_by_date(client, history, child, parent):
    by_parent = client.get(f"/account/trail.json?assistant={parent.account.id}").get_json()["events"]
    assert {e["event"] for e in by_parent} == {"delegation:granted", "delegation:token_issued"}
    assert {e["assistant"] for e in by_parent} == {"H. Doe"}
    today = clock.now().date().isoformat()
    recent = client.get(f"/account/trail.json?since={today}").get_json()["events"]
    assert "consent:granted" not in {e["event"] for e in recent}
    assert {"delegation:token_issued", "delegation:granted"} <= {e["event"] for e in recent}
    earlier = (clock.now().date() - timedelta(days=2)).isoformat()
    old = client.get(f"/account/trail.json?since={earlier}&until={earlier}").get_json()["events"]
    assert "consent:granted" in {e["event"] for e in old} and "delegation:token_issued" not in {e["event"] for e in old}
    bad = client.get("/account/trail?since=yesterday")
    assert bad.status_code == 400 and "Traçabilité" in bad.get_data(as_text=True)


def test_the_trail_downloads_as_csv_and_json_and_the_download_is_audited(client, history, child, viewer):
    response = client.get("/account/trail.csv")
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert list(rows[0]) == ["occurred_at", "event", "description", "client_id", "service", "assistant", "actor", "details"]
    issued = next(r for r in rows if r["event"] == "delegation:token_issued")
    assert (issued["client_id"], issued["assistant"], json.loads(issued["details"])["scope"]) == (viewer.client_id, "H. Doe", "openid")
    as_json = client.get("/account/trail.json").get_json()["events"]
    assert as_json[0]["event"] == "audit:trail_exported"  # the CSV download, newest first
    assert all("ip_address" not in e for e in as_json)


def test_a_patient_sees_only_their_own_trail(client, history, parent, patients):
    patients.login(parent)
    events = {e["event"] for e in client.get("/account/trail.json").get_json()["events"]}
    assert "delegation:granted" not in events and "login:succeeded" in events


def test_an_admin_exports_one_patients_trail(client, history, child):
    admin = AdminBrowser(client)
    admin.login()
    response = client.get(f"/admin/audit/patient?matricule={child.matricule}&format=json")
    events = response.get_json()["events"]
    assert {"login:succeeded", "delegation:granted", "delegation:token_issued"} <= {e["event"] for e in events}
    assert "ip_address" in events[0]
    as_csv = client.get(f"/admin/audit/patient?matricule={child.matricule}&format=csv")
    assert as_csv.mimetype == "text/csv" and "delegation:token_issued" in as_csv.get_data(as_text=True)
    exported = audit.trail(child.account.id)[0]
    assert (exported.name, exported.actor) == ("audit:trail_exported", "admin:alice")
    assert client.get("/admin/audit/patient?matricule=1893120105732&format=csv").status_code == 404


def logged_days_ago(*days: int) -> None:
    """Events written that many days ago (PostgreSQL's trigger judges age by the database's own clock)."""
    db.session.add_all(audit.AuditEvent(occurred_at=clock.now() - timedelta(days=age), name="login:succeeded", account_id=age, details={})
                       for age in days)
    db.session.commit()


def remaining_logins() -> list[int]:
    return sorted(db.session.scalars(select(audit.AuditEvent.account_id).where(audit.AuditEvent.name == "login:succeeded")))


def test_retention_keeps_three_years_and_purges_older_events(runner, app):
    logged_days_ago(1095, 1097)
    result = runner.invoke(args=["audit", "purge", "--json"])
    assert '"deleted": 1' in result.output, result.output
    assert remaining_logins() == [1095]
    assert audit.recent()[0].name == "audit:purged" and audit.recent()[0].details["deleted"] == 1
    refused = runner.invoke(args=["audit", "purge", "--retention-days", "365"])
    assert refused.exit_code != 0 and "3 years" in refused.output
    assert remaining_logins() == [1095]


@pytest.mark.settings(AUDIT_RETENTION_DAYS=2000)
def test_retention_is_configurable(runner):
    logged_days_ago(1500, 2001)
    assert runner.invoke(args=["audit", "purge"]).exit_code == 0
    assert remaining_logins() == [1500]


def test_outside_the_purge_the_log_still_refuses_deletes(app):
    entry = audit.record(audit.Event.LOGIN_SUCCEEDED, account_id=1)
    db.session.commit()
    with pytest.raises(audit.AuditLogIsAppendOnly):
        db.session.execute(delete(audit.AuditEvent).where(audit.AuditEvent.id == entry.id))
    db.session.rollback()
    assert db.session.get(audit.AuditEvent, entry.id) is not None


@pytest.mark.postgres
def test_postgresql_lets_only_the_retention_purge_delete_and_only_past_three_years(app):
    """Fails, never skips, without PostgreSQL: ``make test`` always provides one. The database's own
    clock decides what is past retention, so the rows are written with old dates."""
    services.database_url(required=True)
    assert db.engine.dialect.name == "postgresql"
    now = clock.now()
    old = audit.AuditEvent(occurred_at=now - timedelta(days=1100), name="login:succeeded", account_id=1, details={})
    young = audit.AuditEvent(occurred_at=now - timedelta(days=1000), name="login:succeeded", account_id=2, details={})
    db.session.add_all([old, young])
    db.session.commit()
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": old.id})  # not the purge
    db.session.rollback()
    with pytest.raises(DBAPIError, match="append-only"):  # the purge's flag does not reach younger rows
        db.session.execute(text("SELECT set_config('idp.audit_purge', 'on', true)"))
        db.session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": young.id})
    db.session.rollback()
    assert audit.purge(1096) == 1
    db.session.commit()
    assert [e.account_id for e in audit.recent() if e.name == "login:succeeded"] == [2]
