"""Oversized inputs are refused before parsing: 413 (body), 414 (URL), 431 (headers).

Pages get a French page, machine endpoints an RFC 6749 §5.2-style JSON error; in neither case
is anything written.
"""

import io
import json

import pytest
from sqlalchemy import func, select

from idp import audit, replay_cache
from idp.extensions import db
from tests.conftest import csrf_token

TOO_LARGE_PAGE = "Demande trop volumineuse"


def audit_count() -> int:
    return db.session.scalar(select(func.count()).select_from(audit.AuditEvent))


def assert_page(response, status: int):
    assert response.status_code == status
    page = response.get_data(as_text=True)
    assert TOO_LARGE_PAGE in page and '<html lang="fr">' in page
    assert "Traceback" not in page


def assert_json(response, status: int):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "invalid_request"
    assert response.headers["Cache-Control"] == "no-store"


def login_form(client, **fields) -> dict:
    return {"csrf_token": csrf_token(client.get("/login").get_data(as_text=True)), **fields}


def test_a_huge_login_form_is_refused_with_a_page(app, client, patients):
    patient = patients.create()
    before = audit_count()
    data = login_form(client, matricule=patient.matricule, password="x" * (app.config["MAX_CONTENT_LENGTH"] + 1))
    assert_page(client.post("/login", data=data), 413)
    assert audit_count() == before, "no login attempt was recorded"


def test_one_huge_multipart_field_is_refused_even_under_the_body_limit(app, client, patients):
    patient = patients.create()
    size = app.config["MAX_FORM_MEMORY_SIZE"] + 1
    assert size < app.config["MAX_CONTENT_LENGTH"]
    data = login_form(client, matricule=patient.matricule, password="x" * size)
    assert_page(client.post("/login", data=data, content_type="multipart/form-data"), 413)


def test_a_huge_body_is_refused_before_the_client_is_authenticated(app, client):
    """The registration endpoint checks its access token first; the size check comes earlier still."""
    body = json.dumps({"client_name": "x" * app.config["MAX_CONTENT_LENGTH"]})
    assert_json(client.post("/register", data=body, content_type="application/json"), 413)


def test_a_form_with_too_many_fields_is_refused(app, client):
    data = login_form(client, **{f"field{number}": "1" for number in range(app.config["MAX_FORM_PARTS"] + 1)})
    assert_page(client.post("/login", data=data, content_type="multipart/form-data"), 413)


def test_a_huge_activation_form_is_refused(app, client):
    token = csrf_token(client.get("/activation").get_data(as_text=True))
    assert_page(client.post("/activation", data={"csrf_token": token, "accept": "y", "pad": "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)}), 413)


def test_a_huge_chunked_body_is_cut_off_while_it_is_read(app, client):
    """Without a Content-Length the server reads until the bound, then stops with 413."""
    body = io.BytesIO(b"grant_type=client_credentials&pad=" + b"x" * app.config["MAX_CONTENT_LENGTH"])
    response = client.post("/token", input_stream=body, content_type="application/x-www-form-urlencoded",
                           environ_overrides={"wsgi.input_terminated": True})
    assert_json(response, 413)


def test_a_huge_client_assertion_is_refused_before_it_is_parsed(app, client, monkeypatch):
    parsed = []
    monkeypatch.setattr(replay_cache, "first_use", lambda *args, **kwargs: parsed.append(args) or True)
    assertion = "eyJhbGciOiJSUzI1NiJ9." + "A" * app.config["MAX_CONTENT_LENGTH"] + ".sig"
    response = client.post("/token", data={
        "grant_type": "client_credentials", "client_id": "anyone",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion,
    })
    assert_json(response, 413)
    assert parsed == []


def test_a_huge_id_token_hint_in_the_url_is_refused(app, client, rp_client):
    hint = "eyJhbGciOiJSUzI1NiJ9." + "A" * app.config["MAX_URL_LENGTH"] + ".sig"
    assert_page(client.get(f"/authorize?client_id={rp_client.client_id}&id_token_hint={hint}"), 414)
    assert_page(client.get(f"/logout?id_token_hint={hint}"), 414)


def test_a_huge_bearer_token_header_is_refused_with_json(app, client):
    token = "eyJhbGciOiJSUzI1NiJ9." + "A" * app.config["MAX_HEADER_BYTES"] + ".sig"
    assert_json(client.get("/userinfo", headers={"Authorization": "Bearer " + token}), 431)


@pytest.mark.parametrize("count", [1, 400])
def test_huge_headers_on_a_page_are_refused_with_a_page(app, client, count):
    size = app.config["MAX_HEADER_BYTES"] // count + 1
    headers = {f"X-Padding-{number}": "x" * size for number in range(count)}
    assert_page(client.get("/login", headers=headers), 431)


def test_ordinary_requests_are_well_within_the_limits(client, patients):
    patient = patients.create()
    response = client.post("/login", data=login_form(client, matricule=patient.matricule, password=patient.password))
    assert response.status_code == 303


@pytest.mark.parametrize("body", [None, "token=x", ""])
def test_the_header_block_limit_counts_each_header_as_its_field_line(app, client, body):
    """``name: value`` and CRLF per header as Werkzeug lists them (RFC 9112 §5.1), counted on the
    environ: a block of exactly ``MAX_HEADER_BYTES`` passes, one byte more is refused (431)."""
    from werkzeug.datastructures import EnvironHeaders
    from werkzeug.test import EnvironBuilder

    def request():
        return EnvironBuilder(path="/revoke", method="POST", data=body, content_type="application/x-www-form-urlencoded" if body else None,
                              headers={"X-Request-ID": "abcdefgh-1", "User-Agent": "rs/1.0", "Accept-Language": "fr-LU, de;q=0.8"},
                              environ_overrides={"HTTP_CONTENT_TYPE": "text/plain"})

    size = sum(len(name) + len(value) + 4 for name, value in EnvironHeaders(request().get_environ()).items())
    app.config["MAX_HEADER_BYTES"] = size
    assert client.open(request()).status_code != 431
    app.config["MAX_HEADER_BYTES"] = size - 1
    assert_json(client.open(request()), 431)
