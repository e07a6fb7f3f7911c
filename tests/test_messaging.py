"""Messaging backends against real local servers, and ``idp outbox list``."""

import json
import re
from datetime import timedelta
from email import message_from_string, policy

import pytest

from idp import clock, messaging
from idp.extensions import db
from tests.flows.local_servers import SelfSignedCertificate, SmsGateway, SmtpServer, closed_port

CODE_BODY = "Votre code à usage unique eSanté : 123456."


def parsed(message: dict):
    return message_from_string(message["content"], policy=policy.default)


def test_smtp_delivers_the_message_in_plain(app):
    with SmtpServer() as server:
        app.config.update(MAIL_BACKEND="smtp", SMTP_PORT=server.port, SMTP_SECURITY="none")
        messaging.send("email", "marie@example.lu", "Votre code", CODE_BODY)
    [message] = server.messages
    assert message["rcpt_tos"] == ["marie@example.lu"]
    assert message["mail_from"] == "no-reply@esante.lu"
    email = parsed(message)
    assert email["To"] == "marie@example.lu" and email["Subject"] == "Votre code"
    assert "123456" in email.get_content()
    assert not message["tls"]
    assert messaging.outbox_messages() == [], "the SMTP backend does not use the outbox"


def test_smtp_starttls_with_login(app, tmp_path):
    certificate = SelfSignedCertificate.generate()
    with SmtpServer(tls_context=certificate.server_context(tmp_path), credentials=("idp", "s3cret")) as server:
        app.config.update(
            MAIL_BACKEND="smtp", SMTP_PORT=server.port, SMTP_SECURITY="starttls",
            SMTP_USERNAME="idp", SMTP_PASSWORD="s3cret", SMTP_SSL_CONTEXT=certificate.client_context(),
        )
        messaging.send("email", "marie@example.lu", "Votre code", CODE_BODY)
    [message] = server.messages
    assert message["tls"], "the message went over TLS"
    assert "123456" in parsed(message).get_content()


def test_smtp_starttls_refuses_an_untrusted_certificate(app, tmp_path):
    """Without the test's context the default one verifies the server: a self-signed cert fails."""
    certificate = SelfSignedCertificate.generate()
    with SmtpServer(tls_context=certificate.server_context(tmp_path)) as server:
        app.config.update(MAIL_BACKEND="smtp", SMTP_PORT=server.port, SMTP_SECURITY="starttls")
        with pytest.raises(messaging.MessageNotSent):
            messaging.send("email", "marie@example.lu", "Votre code", CODE_BODY)
    assert server.messages == []


def test_smtp_on_a_closed_port_raises_message_not_sent(app):
    app.config.update(MAIL_BACKEND="smtp", SMTP_PORT=closed_port(), SMTP_TIMEOUT=2)
    with pytest.raises(messaging.MessageNotSent):
        messaging.send("email", "marie@example.lu", "Votre code", CODE_BODY)


def test_sms_gateway_receives_json_with_the_bearer_token(app):
    with SmsGateway() as gateway:
        app.config.update(SMS_BACKEND="http", SMS_GATEWAY_URL=gateway.url, SMS_GATEWAY_TOKEN="gw-token", SMS_SENDER="eSante")
        messaging.send("sms", "+352621000111", "ignored for SMS", CODE_BODY)
    [request] = gateway.received
    assert request["path"] == "/v1/sms"
    assert request["authorization"] == "Bearer gw-token"
    assert request["content_type"] == "application/json"
    assert request["json"] == {"to": "+352621000111", "from": "eSante", "text": CODE_BODY}


def test_sms_gateway_error_raises_message_not_sent(app):
    with SmsGateway(status=500) as gateway:
        app.config.update(SMS_BACKEND="http", SMS_GATEWAY_URL=gateway.url, SMS_GATEWAY_TOKEN="gw-token")
        with pytest.raises(messaging.MessageNotSent):
            messaging.send("sms", "+352621000111", "", CODE_BODY)
    assert len(gateway.received) == 1


def test_sms_gateway_unreachable_raises_message_not_sent(app):
    app.config.update(SMS_BACKEND="http", SMS_GATEWAY_URL=f"http://127.0.0.1:{closed_port()}/sms", SMS_TIMEOUT=2)
    with pytest.raises(messaging.MessageNotSent):
        messaging.send("sms", "+352621000111", "", CODE_BODY)


def test_outbox_list_prints_messages_oldest_first(app, runner):
    messaging.send("sms", "+352621000111", "", "premier 111111")
    clock.advance(timedelta(seconds=5))
    messaging.send("email", "marie@example.lu", "Sujet", "deuxième 222222")
    clock.advance(timedelta(seconds=5))
    messaging.send("sms", "+352621000111", "", "troisième 333333")
    db.session.commit()
    result = runner.invoke(args=["outbox", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [row["body"] for row in rows] == ["premier 111111", "deuxième 222222", "troisième 333333"]
    assert set(rows[0]) == {"to", "channel", "subject", "body", "created_at"}
    assert rows[1]["channel"] == "email" and rows[1]["to"] == "marie@example.lu"
    assert rows[1]["subject"] == "Sujet", "an e-mail's subject is part of what was sent"
    assert rows[0]["created_at"] < rows[1]["created_at"] < rows[2]["created_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows[0]["created_at"])
    only = json.loads(runner.invoke(args=["outbox", "list", "--to", "+352621000111", "--json"]).output)
    assert [row["body"] for row in only] == ["premier 111111", "troisième 333333"]


def test_outbox_list_of_nothing_is_an_empty_array(runner):
    result = runner.invoke(args=["outbox", "list", "--json"])
    assert json.loads(result.output) == []
