"""The helpdesk disables an account at once and enables it again (``idp patients disable|enable``)."""

import json

from sqlalchemy import select

from idp import audit, token as tokens
from idp.extensions import db
from tests.oauth.conftest import OidcDriver


def test_disabling_ends_sessions_revokes_tokens_and_refuses_logins(app, client, patients, rp_client, runner):
    oidc = OidcDriver(client, patients)
    patient = patients.create()
    issued = oidc.tokens(rp_client, patient, scope="openid profile offline_access")

    result = runner.invoke(args=["patients", "disable", patient.matricule, "--reason", "ticket 4711: letter stolen", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["status"] == "disabled" and report["sessions_ended"] == 1 and report["tokens_revoked"] >= 1

    assert oidc.userinfo(issued["access_token"]).status_code == 401
    assert oidc.refresh(rp_client, issued["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert client.get("/account").status_code in (302, 303), "the SSO session is over"
    assert patients.submit_password(patient).status_code == 400, "the right password no longer logs in"
    event = db.session.scalars(select(audit.AuditEvent).where(audit.AuditEvent.name == "account:disabled")).one()
    assert event.details["reason"] == "ticket 4711: letter stolen" and event.actor == "cli"


def test_enabling_restores_an_account_with_a_password_and_leaves_one_without_pending(patients, runner):
    active, pending = patients.create(), patients.create(status="pending", email="p@example.lu", mobile="+352621000333")
    for patient in (active, pending):
        assert runner.invoke(args=["patients", "disable", patient.matricule, "--reason", "test"]).exit_code == 0
    assert json.loads(runner.invoke(args=["patients", "enable", active.matricule, "--json"]).output)["status"] == "active"
    assert json.loads(runner.invoke(args=["patients", "enable", pending.matricule, "--json"]).output)["status"] == "pending"
    assert patients.login(active).status_code == 303


def test_unknown_matricule_and_missing_reason_are_refused(runner, patients):
    assert runner.invoke(args=["patients", "disable", "1893120105732", "--reason", "x"]).exit_code != 0
    patient = patients.create()
    refused = runner.invoke(args=["patients", "disable", patient.matricule])
    assert refused.exit_code != 0 and "--reason" in refused.output
    db.session.expire_all()
    assert db.session.scalar(select(tokens.Token).limit(1)) is None and patient.account.status == "active"
