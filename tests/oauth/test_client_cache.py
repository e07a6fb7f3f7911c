"""Each worker keeps the clients it read for the OAuth endpoints (CLIENT_CACHE_SECONDS): fewer
reads, and a change still takes effect: at once on the worker that made it, within the cache time
elsewhere."""

from types import SimpleNamespace

import pytest

from idp import client as clients, create_app
from idp.extensions import db




@pytest.fixture
def machine(app):
    registered, secret = clients.create(name="Lab results feed", grant_types=["client_credentials"], scope="openid")
    db.session.commit()
    return SimpleNamespace(client_id=registered.client_id, plain_secret=secret)  # no ORM reads in the tests' counts


def _token(client, machine, secret=None):
    return client.post("/token", data={"grant_type": "client_credentials"},
                       auth=(machine.client_id, secret or machine.plain_secret))


def _client_reads(statements) -> list[str]:
    return [sql for sql in statements if "FROM client" in sql]


def test_a_second_request_does_not_read_the_client_again(client, machine, statements):
    assert _token(client, machine).status_code == 200
    statements.clear()
    assert _token(client, machine).status_code == 200
    assert not _client_reads(statements)


@pytest.mark.settings(CLIENT_CACHE_SECONDS=0)
def test_without_a_cache_time_every_request_reads_the_client(client, machine, statements):
    _token(client, machine)
    statements.clear()
    _token(client, machine)
    assert _client_reads(statements)


def test_a_client_disabled_on_this_worker_is_refused_at_once(client, machine):
    assert _token(client, machine).status_code == 200
    clients.disable(clients.get_any(machine.client_id), actor="test")
    db.session.commit()
    refused = _token(client, machine)
    assert (refused.status_code, refused.get_json()["error"]) == (401, "invalid_client")


def test_a_rotated_secret_works_at_once_and_the_old_one_no_longer(client, machine):
    assert _token(client, machine).status_code == 200
    new_secret = clients.rotate_secret(clients.get_any(machine.client_id), actor="test")
    db.session.commit()
    assert _token(client, machine).status_code == 401
    assert _token(client, machine, new_secret).status_code == 200


def test_a_client_disabled_elsewhere_is_refused_once_the_cache_time_passed(app, settings, client, machine, monkeypatch):
    assert _token(client, machine).status_code == 200
    other = create_app(settings)  # another instance, or the CLI
    other.instance_path = app.instance_path
    with other.app_context():
        clients.disable(clients.get_any(machine.client_id), actor="other instance")
        db.session.commit()
        db.session.remove()
    import time

    later = time.monotonic() + app.config["CLIENT_CACHE_SECONDS"] + 1
    monkeypatch.setattr("idp.client.time.monotonic", lambda: later)
    refused = _token(client, machine)
    assert (refused.status_code, refused.get_json()["error"]) == (401, "invalid_client")


def test_an_unknown_client_is_not_remembered(app, client, machine):
    refused = client.post("/token", data={"grant_type": "client_credentials"}, auth=("not-yet-registered", "x"))
    assert refused.status_code == 401
    assert "not-yet-registered" not in app.extensions.get("idp_clients", {})
