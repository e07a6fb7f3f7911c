"""Dynamic client registration (RFC 7591/7592) against its OpenAPI description, with schemathesis:
whatever the body, every answer is one the document describes (no 500, no undocumented error)."""

from datetime import timedelta

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from idp import client as clients, clock
from idp.extensions import db


def initial_token() -> str:
    token = clients.issue_initial_access_token(clock.now() + timedelta(hours=1), note="schemathesis")
    db.session.commit()
    return token


def registered(client) -> tuple[str, str]:
    answer = client.post("/register", json={"client_name": "RP", "redirect_uris": ["https://rp.example.lu/cb"]},
                         headers={"Authorization": "Bearer " + initial_token()}).get_json()
    return answer["client_id"], answer["registration_access_token"]


def test_the_document_describes_registration_and_configuration(client):
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").get_json())
    operations = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert {("POST", "/register"), ("GET", "/register/{client_id}"), ("PUT", "/register/{client_id}"),
            ("DELETE", "/register/{client_id}")} <= operations


def test_every_registration_answer_conforms_to_the_document(app, client):
    """"Schema-valid data accepted" is left out: e.g. an http redirect URI off loopback is valid JSON yet refused."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/register"):
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=20, suppress_health_check=list(HealthCheck), deadline=None)
        def conforms(case):
            if operation.path == "/register":
                token = initial_token()
            else:
                case.path_parameters["client_id"], token = registered(client)
            case.call_and_validate(headers={"Authorization": "Bearer " + token}, excluded_checks=[positive_data_acceptance])

        conforms()
