"""The development-only outbox page: the demo's one-time codes in a browser, never in production."""

import pytest

from idp import create_app, messaging
from idp.extensions import db
from idp.settings import InvalidSettings
from tests.conftest import TEST_SETTINGS


@pytest.mark.settings(DEMO_OUTBOX_PAGE=True)
def test_the_page_lists_the_outbox_newest_first(app, client):
    messaging.send("sms", "+352621000111", "", "Votre code eSanté : 123456")
    messaging.send("email", "marie@example.lu", "Votre code", "Votre code eSanté : 654321")
    db.session.commit()
    page = client.get("/dev/outbox")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.index("654321") < html.index("123456")
    assert "+352621000111" in html and "marie@example.lu" in html


def test_the_page_does_not_exist_by_default(client):
    assert client.get("/dev/outbox").status_code == 404


@pytest.mark.parametrize("override, message", [
    ({"ISSUER": "https://idp.esante.lu"}, "https"),
    ({"SMS_BACKEND": "http", "SMS_GATEWAY_URL": "https://sms.example.lu"}, "outbox"),
    ({"MAIL_BACKEND": "smtp"}, "outbox"),
])
def test_the_page_refuses_to_start_outside_development(tmp_path, monkeypatch, override, message):
    monkeypatch.setenv("IDP_INSTANCE_PATH", str(tmp_path))
    settings = {**TEST_SETTINGS, "DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}", "DEMO_OUTBOX_PAGE": True, **override}
    with pytest.raises(InvalidSettings, match=message):
        create_app(settings)
