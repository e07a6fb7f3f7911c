"""Sending e-mail and SMS: ``Protocol`` interfaces with outbox, SMTP and HTTP-gateway backends.

The outbox keeps messages in the database (development, demo, tests; ``idp outbox list``).
Production uses SMTP for e-mail and a JSON-over-HTTPS gateway for SMS.
"""

import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Mapping, Protocol

import click
import requests
from flask import current_app
from flask.cli import AppGroup
from flask_babel import gettext as _
from sqlalchemy import DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from . import audit, clock
from .cli_output import emit
from .extensions import db


class MessageNotSent(Exception):
    """The backend could not deliver; nothing was consumed and the caller may retry."""


class OutboxMessage(db.Model):
    __tablename__ = "outbox_message"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    to: Mapped[str] = mapped_column(String(320), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Mailer(Protocol):
    def send_email(self, to: str, subject: str, body: str) -> None: ...


class SmsSender(Protocol):
    def send_sms(self, to: str, text: str) -> None: ...


class Outbox:
    """Keeps messages in the database. For development only: nothing leaves the machine.

    A message is written with the caller's transaction, at its next flush."""

    def send_email(self, to: str, subject: str, body: str) -> None:
        self._store(to, "email", subject, body)

    def send_sms(self, to: str, text: str) -> None:
        self._store(to, "sms", None, text)

    def _store(self, to: str, channel: str, subject: str | None, body: str) -> None:
        db.session.add(OutboxMessage(to=to, channel=channel, subject=subject, body=body, created_at=clock.now()))


class SmtpMailer:
    """SMTP with ``SMTP_SECURITY`` "none", "starttls" or "tls" (implicit TLS).

    TLS verifies the server with the system's CAs; ``SMTP_SSL_CONTEXT`` (an ``ssl.SSLContext``,
    set in a settings file) replaces that context, e.g. to trust a private CA.
    """

    def __init__(self, config: Mapping[str, Any]):
        self.host, self.port = config["SMTP_HOST"], int(config["SMTP_PORT"])
        self.security = config["SMTP_SECURITY"]
        self.username, self.password = config.get("SMTP_USERNAME"), config.get("SMTP_PASSWORD")
        self.sender, self.timeout = config["MAIL_FROM"], config["SMTP_TIMEOUT"]
        self.ssl_context = config.get("SMTP_SSL_CONTEXT") or ssl.create_default_context()

    def send_email(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message["Message-ID"] = make_msgid(domain="esante.lu")
        message.set_content(body)
        try:
            if self.security == "tls":
                connection = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.ssl_context)
            else:
                connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with connection:
                if self.security == "starttls":
                    connection.starttls(context=self.ssl_context)
                if self.username:
                    connection.login(self.username, self.password or "")
                connection.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            current_app.logger.warning("smtp delivery failed: %s", type(error).__name__)
            raise MessageNotSent(str(error)) from error


class HttpSmsGateway:
    """POST ``{"to", "from", "text"}`` as JSON with ``Authorization: Bearer <token>``; 2xx is success."""

    def __init__(self, config: Mapping[str, Any]):
        self.url, self.token = config["SMS_GATEWAY_URL"], config["SMS_GATEWAY_TOKEN"]
        self.sender, self.timeout = config["SMS_SENDER"], config["SMS_TIMEOUT"]
        if not self.url:
            raise ValueError("SMS_BACKEND=http needs SMS_GATEWAY_URL")

    def send_sms(self, to: str, text: str) -> None:
        try:
            response = requests.post(
                self.url,
                json={"to": to, "from": self.sender, "text": text},
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=self.timeout,
            )
        except requests.RequestException as error:
            current_app.logger.warning("sms gateway unreachable: %s", type(error).__name__)
            raise MessageNotSent(str(error)) from error
        if not 200 <= response.status_code < 300:
            current_app.logger.warning("sms gateway answered %s", response.status_code)
            raise MessageNotSent(f"gateway answered {response.status_code}")


def mailer() -> Mailer:
    backend = current_app.config["MAIL_BACKEND"]
    if backend == "smtp":
        return SmtpMailer(current_app.config)
    if backend == "outbox":
        return Outbox()
    raise ValueError(f"unknown MAIL_BACKEND {backend!r}")


def sms_sender() -> SmsSender:
    backend = current_app.config["SMS_BACKEND"]
    if backend == "http":
        return HttpSmsGateway(current_app.config)
    if backend == "outbox":
        return Outbox()
    raise ValueError(f"unknown SMS_BACKEND {backend!r}")


def send(channel: str, to: str, subject: str, body: str) -> None:
    """Send on ``channel`` ("sms" or "email"); raises :class:`MessageNotSent`."""
    if channel == "sms":
        sms_sender().send_sms(to, body)
    else:
        mailer().send_email(to, subject, body)


def notify(channel: str, destination: str | None, text: str) -> None:
    """Best effort: a notice that cannot be delivered must not undo the change it reports."""
    if not destination:
        return
    try:
        send(channel, destination, _("Votre compte eSanté"), text)
    except MessageNotSent:
        audit.record(audit.Event.NOTIFICATION_FAILED, channel=channel)


def outbox_messages(to: str | None = None) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if to:
        query = query.where(OutboxMessage.to == to)
    return list(db.session.scalars(query))


outbox_cli = AppGroup("outbox", help="Messages kept by the outbox backend (development).")


@outbox_cli.command("list")
@click.option("--to", "to", default=None, help="Only messages to this address or number.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def list_command(to: str | None, as_json: bool) -> None:
    """List outbox messages, oldest first."""
    rows = [
        {"to": m.to, "channel": m.channel, "subject": m.subject, "body": m.body, "created_at": m.created_at}
        for m in outbox_messages(to)
    ]
    emit(rows, as_json, lambda items: "\n".join(f"{r['created_at']:%Y-%m-%d %H:%M:%S} {r['channel']:5} {r['to']}: {r['body']}" for r in items))
