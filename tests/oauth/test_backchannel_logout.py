"""OpenID Connect Back-Channel Logout 1.0: logout tokens to relying parties, retried while they are down."""

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from sqlalchemy import select

from idp import audit, backchannel_logout, clock
from idp.extensions import db
from tests.conftest import PatientFactory, csrf_token
from tests.flows.local_servers import closed_port
from tests.oauth.conftest import OidcDriver, register

EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOOPBACK_CALLBACK = "http://127.0.0.1:5001/callback"


class LogoutReceiver:
    """A relying party's back-channel logout endpoint on loopback, recording what it receives."""

    def __init__(self, status: int = 200):
        self.status, self.received = status, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                receiver.received.append({"content_type": self.headers["Content-Type"], "form": parse_qs(body)})
                self.send_response(receiver.status)
                self.send_header("Cache-Control", "no-store")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/backchannel-logout"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def tokens(self) -> list[str]:
        return [item["form"]["logout_token"][0] for item in self.received]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    running = LogoutReceiver()
    yield running
    running.close()


def backchannel_client(uri: str, **extra):
    """A relying party on loopback (as in development), so that it may receive on the loopback receiver."""
    return register(name="DSP", redirect_uris=[LOOPBACK_CALLBACK], post_logout_redirect_uris=["http://127.0.0.1:5001/"],
                    first_party=True, extra_metadata={"backchannel_logout_uri": uri, **extra})


def deliveries() -> list[backchannel_logout.LogoutDelivery]:
    db.session.expire_all()
    return list(db.session.scalars(select(backchannel_logout.LogoutDelivery)))


def test_rp_initiated_logout_sends_a_logout_token_by_back_channel(oidc, patients, client, receiver):
    rp = backchannel_client(receiver.url)
    tokens = oidc.tokens(rp, patients.create())
    id_token = oidc.verify(tokens["id_token"]).claims
    client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})

    (item,) = receiver.received
    assert item["content_type"] == "application/x-www-form-urlencoded"
    logout = oidc.verify(receiver.tokens()[0])
    assert logout.header["typ"] == "logout+jwt"
    claims = logout.claims
    assert claims["iss"] == "http://127.0.0.1:5000" and claims["aud"] == rp.client_id
    assert claims["events"] == {EVENT: {}}
    assert claims["sub"] == id_token["sub"] and claims["sid"] == id_token["sid"]
    assert claims["jti"] and claims["exp"] - claims["iat"] <= 120
    assert "nonce" not in claims
    assert deliveries()[0].delivered_at is not None


def test_log_out_elsewhere_notifies_the_other_sessions_clients_only(app, oidc, patients, client, receiver):
    rp = backchannel_client(receiver.url)
    patient = patients.create()
    elsewhere = app.test_client()
    other_session_sid = oidc.verify(OidcDriver(elsewhere, PatientFactory(app, elsewhere)).tokens(rp, patient)["id_token"]).claims["sid"]
    oidc.tokens(rp, patient)
    page = client.get("/account/sessions")
    client.post("/account/sessions/logout-elsewhere", data={"csrf_token": csrf_token(page.get_data(as_text=True)),
                                                         "current_password": patient.password})
    assert [oidc.verify(token).claims["sid"] for token in receiver.tokens()] == [other_session_sid]


def test_clients_without_a_back_channel_uri_and_sessions_without_tokens_get_nothing(oidc, patients, rp_client, client, receiver):
    tokens = oidc.tokens(rp_client, patients.create())
    client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
    assert receiver.received == [] and deliveries() == []


def test_a_down_relying_party_is_retried_with_backoff_then_given_up(app, oidc, patients, client):
    rp = backchannel_client(f"http://127.0.0.1:{closed_port()}/logout")
    tokens = oidc.tokens(rp, patients.create())
    response = client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
    assert response.status_code == 200, "the patient is logged out even though the RP is down"
    (delivery,) = deliveries()
    assert delivery.delivered_at is None and delivery.attempts == 1 and delivery.last_error == "ConnectionError"
    first_retry = delivery.next_attempt_at

    runner = app.test_cli_runner()
    assert "delivered 0, failed 0" in runner.invoke(args=["logout", "deliver"]).output, "not due yet"
    clock.advance(timedelta(seconds=app.config["FEATURES"]["backchannel_logout"]["backoff"]))
    assert "failed 1" in runner.invoke(args=["logout", "deliver"]).output
    (delivery,) = deliveries()
    assert delivery.attempts == 2 and delivery.next_attempt_at - clock.now() > first_retry - delivery.created_at, "backoff doubles"

    clock.advance(timedelta(seconds=app.config["FEATURES"]["backchannel_logout"]["retry_for"]))
    assert "abandoned 1" in runner.invoke(args=["logout", "deliver"]).output
    assert deliveries()[0].abandoned_at is not None
    assert db.session.scalar(select(audit.AuditEvent).where(audit.AuditEvent.name == audit.Event.BACKCHANNEL_LOGOUT_ABANDONED.value))


def test_an_rp_back_up_receives_the_retried_logout_token(app, oidc, patients, client):
    down = LogoutReceiver(status=503)
    try:
        rp = backchannel_client(down.url)
        tokens = oidc.tokens(rp, patients.create())
        client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
        assert deliveries()[0].last_error == "HTTP 503"
        down.status = 200
        clock.advance(timedelta(seconds=app.config["FEATURES"]["backchannel_logout"]["backoff"]))
        assert "delivered 1" in app.test_cli_runner().invoke(args=["logout", "deliver"]).output
        assert len(down.received) == 2
        assert deliveries()[0].delivered_at is not None
    finally:
        down.close()


def test_registration_accepts_and_checks_the_back_channel_metadata(client, app):
    with app.app_context():
        from idp import client as clients

        token = clients.issue_initial_access_token(clock.now() + timedelta(hours=1), note="test")
        db.session.commit()
    # A public address written as such: no name to resolve (the addresses' rules have their own tests).
    body = {"redirect_uris": ["https://rp.example.lu/cb"], "client_name": "RP", "backchannel_logout_uri": "https://93.184.216.34/bc#frag"}
    refused = client.post("/register", json=body, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_client_metadata"
    body.update(backchannel_logout_uri="https://93.184.216.34/bc", backchannel_logout_session_required=True)
    created = client.post("/register", json=body, headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 201, created.get_data(as_text=True)
    answer = created.get_json()
    assert answer["backchannel_logout_uri"] == "https://93.184.216.34/bc" and answer["backchannel_logout_session_required"] is True


def test_discovery_announces_back_channel_logout(client):
    document = client.get("/.well-known/openid-configuration").get_json()
    assert document["backchannel_logout_supported"] is True and document["backchannel_logout_session_supported"] is True
