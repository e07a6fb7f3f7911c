"""Discovery and JWKS served from each worker's copy (idp.public_documents): the same answer as
Flask's, without Flask, never stale beyond SIGNING_KEY_CACHE_SECONDS."""

import logging

import pytest

from idp.observability import REQUESTS

PATHS = ["/jwks.json", "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]




@pytest.fixture
def views(app, monkeypatch):
    """Counts the Flask view calls per path."""
    calls = []
    for rule in app.url_map.iter_rules():
        if rule.rule in PATHS:
            view = app.view_functions[rule.endpoint]
            monkeypatch.setitem(app.view_functions, rule.endpoint,
                                lambda view=view, path=rule.rule, **kwargs: (calls.append(path), view(**kwargs))[1])
    return calls


def _comparable(response) -> dict:
    return {name: value for name, value in response.headers.items() if name not in ("X-Request-ID", "Date")}


@pytest.mark.parametrize("path", PATHS)
def test_the_second_request_is_answered_from_the_copy_with_the_same_headers_and_body(client, views, statements, path):
    first = client.get(path)
    statements.clear()
    second = client.get(path)
    assert first.status_code == second.status_code == 200
    assert views == [path]  # Flask's view ran once
    assert not statements
    assert second.data == first.data and _comparable(second) == _comparable(first)
    assert second.headers["ETag"] and "public" in second.headers["Cache-Control"]
    assert second.headers["X-Content-Type-Options"] == "nosniff"
    assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]


def test_if_none_match_gets_304_from_the_copy(client, views):
    etag = client.get("/jwks.json").headers["ETag"]
    for wanted in (etag, f'"other", W/{etag}', "*"):
        answer = client.get("/jwks.json", headers={"If-None-Match": wanted})
        assert answer.status_code == 304 and answer.data == b"" and answer.headers["ETag"] == etag
    assert client.get("/jwks.json", headers={"If-None-Match": '"other"'}).status_code == 200
    assert views == ["/jwks.json"]


def test_head_is_answered_from_the_copy_without_a_body(client, views):
    full = client.get("/jwks.json")
    head = client.head("/jwks.json")
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == full.headers["Content-Length"]
    assert views == ["/jwks.json"]


def test_a_query_string_or_another_method_goes_to_flask(client, views):
    client.get("/jwks.json")
    client.get("/jwks.json?x=1")
    assert client.post("/jwks.json").status_code == 405
    assert views == ["/jwks.json", "/jwks.json"]


@pytest.mark.settings(SIGNING_KEY_CACHE_SECONDS=0)
def test_without_a_cache_time_every_request_goes_to_flask(client, views):
    client.get("/jwks.json")
    client.get("/jwks.json")
    assert views == ["/jwks.json", "/jwks.json"]


def test_the_copy_expires_after_the_cache_time(client, views, monkeypatch):
    import time

    client.get("/jwks.json")
    later = time.monotonic() + 3600
    monkeypatch.setattr("idp.public_documents.time.monotonic", lambda: later)
    client.get("/jwks.json")
    assert views == ["/jwks.json", "/jwks.json"]


def test_an_answer_that_sets_a_cookie_is_not_kept(app, client, views):
    @app.after_request
    def set_cookie(response):
        response.set_cookie("tracker", "1")
        return response

    client.get("/jwks.json")
    client.get("/jwks.json")
    assert views == ["/jwks.json", "/jwks.json"]


def test_copies_are_counted_and_logged_like_other_requests(client, caplog):
    client.get("/jwks.json")
    before = REQUESTS.labels("/jwks.json", "GET", "200")._value.get()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="idp.access"):
        answer = client.get("/jwks.json")
    assert REQUESTS.labels("/jwks.json", "GET", "200")._value.get() == before + 1
    [line] = [record for record in caplog.records if record.name == "idp.access"]
    assert line.request_id == answer.headers["X-Request-ID"] and line.path == "/jwks.json" and line.status == 200


def test_the_load_balancers_request_id_is_kept(client):
    client.get("/jwks.json")
    answer = client.get("/jwks.json", headers={"X-Request-ID": "lb-4f2a9c01"})
    assert answer.headers["X-Request-ID"] == "lb-4f2a9c01"
    assert client.get("/jwks.json", headers={"X-Request-ID": "bad id"}).headers["X-Request-ID"] != "bad id"
