"""SSRF through ``backchannel_logout_uri``: where the provider may POST logout tokens.

A client whose redirect URIs are on public hosts may only name an https URI on a public address;
a client whose redirect URIs are all on loopback may keep a loopback one; an admin may allow-list
internal hosts. The address is checked again at each delivery, and the request goes to the
address checked (DNS rebinding). Names are answered by a stand-in resolver (the test machine has
no DNS of its own); addresses, connections and TLS are real.
"""

import datetime
import ipaddress
import socket
import ssl
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from idp import client as clients, clock
from idp.extensions import db
from tests.oauth.test_backchannel_logout import LogoutReceiver, deliveries
from tests.oauth.conftest import register

PUBLIC_ADDRESS = "93.184.216.34"  # a globally routable unicast address (RFC 6890 lists it nowhere)


class StandInResolver:
    """Answers for the test's made-up names, in order (the last answer repeats); other names go to
    the system resolver. It replaces ``socket.getaddrinfo``, which every HTTP library asks."""

    def __init__(self, monkeypatch):
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []
        system = socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):
            name = host.decode() if isinstance(host, bytes) else host
            if name not in self.answers:
                return system(host, port, *args, **kwargs)
            self.lookups.append(name)
            queue = self.answers[name]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            port_number = int(port or 0)
            if ":" in address:
                return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port_number, 0, 0))]
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port_number))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def dns(monkeypatch):
    return StandInResolver(monkeypatch)


class ConnectionCounter:
    """A TCP listener on 127.0.0.1 that only counts who connects to it."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._running = True
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while self._running:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self):
        self._running = False
        self._thread.join(timeout=2)
        self.listener.close()


@pytest.fixture
def internal_service():
    counter = ConnectionCounter()
    yield counter
    counter.close()


def initial_access_token() -> str:
    token = clients.issue_initial_access_token(clock.now() + timedelta(hours=1), note="test")
    db.session.commit()
    return token


def register_with(client, backchannel_logout_uri: str, redirect_uris=("https://rp.example.lu/cb",)):
    body = {"client_name": "RP", "redirect_uris": list(redirect_uris), "backchannel_logout_uri": backchannel_logout_uri}
    return client.post("/register", json=body, headers={"Authorization": f"Bearer {initial_access_token()}"})


def client_count() -> int:
    db.session.expire_all()
    return len(db.session.scalars(select(clients.Client)).all())


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:8080/anything",
    "https://127.0.0.1/logout",
    "https://localhost/logout",
    "https://[::1]/logout",
    "https://[::ffff:127.0.0.1]/logout",  # IPv4-mapped loopback
    "https://[2002:7f00:1::]/logout",  # 6to4 around 127.0.0.1
    "https://10.0.0.5/logout",
    "https://172.16.3.4/logout",
    "https://192.168.1.1/logout",
    "https://169.254.169.254/latest/meta-data/",  # cloud metadata, link-local
    "https://100.64.0.1/logout",  # carrier-grade NAT (RFC 6598)
    "https://[fd00::1]/logout",  # unique local (RFC 4193)
    "https://[fe80::1]/logout",
    "https://0.0.0.0/logout",
    "https://224.0.0.1/logout",
    f"http://{PUBLIC_ADDRESS}/logout",  # public, but not https
    "https://user@rp.example.lu/logout",
])
def test_a_client_on_public_hosts_may_not_name_an_internal_or_plain_http_back_channel_uri(client, dns, uri):
    dns.answers["rp.example.lu"] = [PUBLIC_ADDRESS]
    before = client_count()
    refused = register_with(client, uri)
    assert refused.status_code == 400, (uri, refused.get_json())
    assert refused.get_json()["error"] == "invalid_client_metadata"
    assert client_count() == before


def test_a_name_resolving_to_an_internal_address_is_refused_at_registration(client, dns):
    dns.answers["intranet.example.lu"] = ["10.20.30.40"]
    refused = register_with(client, "https://intranet.example.lu/logout")
    assert refused.status_code == 400 and "10.20.30.40" in refused.get_json()["error_description"]


def test_a_public_https_back_channel_uri_is_accepted(client, dns):
    dns.answers["rp.example.lu"] = [PUBLIC_ADDRESS]
    created = register_with(client, "https://rp.example.lu/backchannel-logout")
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["backchannel_logout_uri"] == "https://rp.example.lu/backchannel-logout"


def test_a_client_whose_redirect_uris_are_all_on_loopback_may_keep_a_loopback_uri(client):
    loopback = ["http://127.0.0.1:5001/callback", "http://localhost:5001/callback"]
    assert register_with(client, "http://127.0.0.1:5001/backchannel-logout", loopback).status_code == 201
    assert register_with(client, "https://10.0.0.5/logout", loopback).status_code == 400, "loopback, not any internal address"
    mixed = ["http://127.0.0.1:5001/callback", "https://rp.example.lu/cb"]
    assert register_with(client, "http://127.0.0.1:5001/backchannel-logout", mixed).status_code == 400


@pytest.mark.settings(FEATURES={"backchannel_logout": {"internal_hosts": ["logout.internal.example"]}})
def test_an_admin_may_allow_list_internal_hosts(client, dns):
    dns.answers["logout.internal.example"] = ["10.1.2.3"]
    dns.answers["other.internal.example"] = ["10.1.2.4"]
    assert register_with(client, "https://logout.internal.example/bc").status_code == 201
    assert register_with(client, "http://logout.internal.example/bc").status_code == 400, "still https"
    assert register_with(client, "https://other.internal.example/bc").status_code == 400


def test_the_setting_must_be_a_list_of_host_names():
    from idp import create_app
    from idp.settings import InvalidSettings

    with pytest.raises(InvalidSettings, match="internal_hosts"):
        create_app({"TESTING": True, "FEATURES": {"backchannel_logout": {"internal_hosts": "logout.internal.example"}}})


def registered_rp(client, dns, uri: str, host: str, first_answer: str):
    """A client registered through /register while ``host`` resolves to ``first_answer``."""
    dns.answers[host] = [first_answer]
    created = register_with(client, uri)
    assert created.status_code == 201, created.get_json()
    answer = created.get_json()
    rp = clients.get(answer["client_id"])
    rp.plain_secret = answer["client_secret"]
    return rp


@pytest.mark.settings(FEATURES={"backchannel_logout": {"timeout": 1}})
def test_a_name_rebound_to_an_internal_address_gets_no_delivery(client, dns, oidc, patients, internal_service):
    """Registered while public, the name later points at an internal service: nothing reaches it."""
    uri = f"https://rebind.example:{internal_service.port}/bc"
    rp = registered_rp(client, dns, uri, "rebind.example", PUBLIC_ADDRESS)
    dns.answers["rebind.example"] = ["127.0.0.1"]
    tokens = oidc.tokens(rp, patients.create())
    client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
    (delivery,) = deliveries()
    assert delivery.delivered_at is None and delivery.last_error.startswith("address not allowed")
    assert "127.0.0.1" in delivery.last_error
    assert internal_service.connections == 0


@pytest.mark.settings(FEATURES={"backchannel_logout": {"timeout": 1}})
def test_the_delivery_goes_to_the_address_that_was_checked(client, dns, oidc, patients, internal_service):
    """The name answers public for the check and internal for any second lookup: a client library
    that looked it up again would connect to the internal service."""
    uri = f"https://rebind.example:{internal_service.port}/bc"
    rp = registered_rp(client, dns, uri, "rebind.example", PUBLIC_ADDRESS)
    tokens = oidc.tokens(rp, patients.create())
    dns.lookups.clear()
    dns.answers["rebind.example"] = [PUBLIC_ADDRESS, "127.0.0.1"]
    client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
    (delivery,) = deliveries()
    assert delivery.delivered_at is None and not delivery.last_error.startswith("address not allowed")
    assert dns.lookups == ["rebind.example"], "one lookup: the checked address is the one connected to"
    assert internal_service.connections == 0


def certificate_for(name: str, directory):
    """A self-signed certificate for the DNS name ``name``; returns (certificate file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return certificate_file, key_file


class TlsLogoutReceiver(LogoutReceiver):
    """The loopback receiver behind TLS, with the given certificate."""

    def __init__(self, certificate_file, key_file):
        super().__init__()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(certificate_file), str(key_file))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)


@pytest.mark.settings(FEATURES={"backchannel_logout": {"internal_hosts": ["logout.internal.example"]}})
def test_an_allow_listed_internal_host_gets_its_logout_token_over_verified_tls(client, dns, oidc, patients, tmp_path, monkeypatch):
    certificate_file, key_file = certificate_for("logout.internal.example", tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate_file))
    receiver = TlsLogoutReceiver(certificate_file, key_file)
    try:
        uri = f"https://logout.internal.example:{receiver.server.server_port}/backchannel-logout"
        rp = registered_rp(client, dns, uri, "logout.internal.example", "127.0.0.1")
        tokens = oidc.tokens(rp, patients.create())
        client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
        (delivery,) = deliveries()
        assert delivery.delivered_at is not None, delivery.last_error
        assert oidc.verify(receiver.tokens()[0]).claims["aud"] == rp.client_id
    finally:
        receiver.close()


@pytest.mark.settings(FEATURES={"backchannel_logout": {"internal_hosts": ["logout.internal.example"]}})
def test_the_certificate_is_checked_for_the_uris_host_not_the_address(client, dns, oidc, patients, tmp_path, monkeypatch):
    certificate_file, key_file = certificate_for("someone-else.example", tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate_file))
    receiver = TlsLogoutReceiver(certificate_file, key_file)
    try:
        uri = f"https://logout.internal.example:{receiver.server.server_port}/backchannel-logout"
        rp = registered_rp(client, dns, uri, "logout.internal.example", "127.0.0.1")
        tokens = oidc.tokens(rp, patients.create())
        client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
        (delivery,) = deliveries()
        assert delivery.delivered_at is None and delivery.last_error == "SSLError"
        assert receiver.received == []
    finally:
        receiver.close()


def test_public_addresses_follow_the_special_purpose_registries():
    """IANA IPv4/IPv6 Special-Purpose Address Registries (RFC 6890): none of these is public."""
    from idp.outbound_address import is_public

    for text in ["127.0.0.1", "10.0.0.1", "172.31.255.255", "192.168.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
                 "192.0.2.1", "198.18.0.1", "224.0.0.1", "255.255.255.255", "::1", "::", "fc00::1", "fe80::1",
                 "::ffff:10.0.0.1", "2002:a00:1::", "2001::1", "ff02::1"]:
        assert not is_public(ipaddress.ip_address(text)), text
    for text in [PUBLIC_ADDRESS, "8.8.8.8", "2a00:1450:4001:81c::200e", "::ffff:93.184.216.34"]:
        assert is_public(ipaddress.ip_address(text)), text
