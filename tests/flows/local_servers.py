"""Real local servers for the messaging backends: an SMTP server (aiosmtpd) and an SMS gateway.

Both listen on 127.0.0.1 on a free port and record what they receive, so tests check what
actually went over the wire instead of mocking ``smtplib`` or ``requests``.
"""

import datetime
import ipaddress
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def closed_port() -> int:
    """A port nobody listens on (bound, then released)."""
    return free_port()


@dataclass
class SelfSignedCertificate:
    """A certificate for 127.0.0.1 and the contexts of both ends that trust it."""

    certificate_pem: bytes
    key_pem: bytes

    @classmethod
    def generate(cls) -> "SelfSignedCertificate":
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        return cls(certificate.public_bytes(serialization.Encoding.PEM), key_pem)

    def server_context(self, directory) -> ssl.SSLContext:
        certificate_file, key_file = directory / "smtp-cert.pem", directory / "smtp-key.pem"
        certificate_file.write_bytes(self.certificate_pem)
        key_file.write_bytes(self.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(certificate_file), str(key_file))
        return context

    def client_context(self) -> ssl.SSLContext:
        """Verifies the server against this certificate, host name included."""
        context = ssl.create_default_context(cadata=self.certificate_pem.decode())
        context.check_hostname = True
        return context


class _Recorder:
    def __init__(self):
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "content": envelope.content.decode("utf-8", "replace"),
            "tls": session.ssl is not None,
            "login": getattr(session, "login_data", None),
        })
        return "250 OK"


class SmtpServer:
    """aiosmtpd on 127.0.0.1; ``messages`` holds what arrived."""

    def __init__(self, *, tls_context: ssl.SSLContext | None = None, credentials: tuple[str, str] | None = None):
        self.recorder = _Recorder()
        self.port = free_port()
        options = {}
        if tls_context is not None:
            options.update(tls_context=tls_context, require_starttls=True)
        if credentials is not None:
            options.update(authenticator=self._authenticator(credentials), auth_required=True)
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port, **options)

    @staticmethod
    def _authenticator(credentials: tuple[str, str]):
        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == credentials
            return AuthResult(success=ok)

        return authenticate

    @property
    def messages(self) -> list[dict]:
        return self.recorder.messages

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


@dataclass
class SmsGateway:
    """A JSON-over-HTTP SMS gateway on 127.0.0.1 answering ``status`` (change it to repair it)."""

    status: int = 200
    received: list[dict] = field(default_factory=list)

    def __post_init__(self):
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                gateway.received.append({
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "content_type": self.headers.get("Content-Type"),
                    "json": json.loads(body),
                })
                self.send_response(gateway.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": "queued"}' if gateway.status < 300 else b'{"error": "down"}')

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1/sms"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "SmsGateway":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
