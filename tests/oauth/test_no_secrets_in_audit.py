"""The audit trail and the logs never hold passwords, one-time codes, tokens or full matricules."""

import json
import logging

from sqlalchemy import select

from idp import audit
from idp.extensions import db
from tests.conftest import csrf_token


def test_a_day_of_logins_and_tokens_leaves_no_secret_in_audit_or_logs(oidc, patients, rp_client, resource_server, client, caplog):
    caplog.set_level(logging.DEBUG)
    patient = patients.create()
    secrets_seen = {patient.password, patient.matricule}

    page = client.get("/login")
    client.post("/login", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "matricule": patient.matricule,
                                "password": "Wrong-Password-9"})
    secrets_seen.add("Wrong-Password-9")
    unknown = "1893120105732"
    client.post("/login", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "matricule": unknown, "password": "Whatever-1"})
    secrets_seen |= {unknown, "Whatever-1"}

    tokens = oidc.tokens(rp_client, patient, scope="openid profile offline_access")
    secrets_seen.add(patients.last_code(patient.account.mobile))
    refreshed = oidc.refresh(rp_client, tokens["refresh_token"]).get_json()
    oidc.userinfo(refreshed["access_token"])
    assert oidc.introspect(resource_server, refreshed["access_token"]).get_json()["active"] is True
    client.post("/revoke", data={"token": refreshed["refresh_token"]}, auth=(rp_client.client_id, rp_client.plain_secret))
    secrets_seen |= {tokens["access_token"], tokens["refresh_token"], tokens["id_token"], refreshed["access_token"],
                     refreshed["refresh_token"], rp_client.plain_secret}

    db.session.expire_all()
    trail = json.dumps([[event.name, event.actor, event.details] for event in db.session.scalars(select(audit.AuditEvent))], default=str)
    assert "login:password_failed" in trail and "token:issued" in trail, "the events themselves are recorded"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in secrets_seen:
        assert secret not in trail, f"audit holds a secret: {secret[:6]}…"
        assert secret not in logged, f"logs hold a secret: {secret[:6]}…"
