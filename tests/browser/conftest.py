"""Shared fixtures and helpers of the browser tests: the live server and the outbox."""

import re

import pytest

from idp import messaging
from idp.extensions import db
from tests.support.browser import LiveServer


@pytest.fixture
def live_server(app):
    server = LiveServer(app)
    app.config["ISSUER"] = server.url
    yield server
    server.stop()


def last_code_sent_to(destination: str) -> str:
    """Read the outbox from the test thread: end this thread's transaction to see the server's commits."""
    db.session.rollback()
    messages = messaging.outbox_messages(destination)
    assert messages, f"no message to {destination}"
    return re.search(r"\b(\d{6})\b", messages[-1].body).group(1)
