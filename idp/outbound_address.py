"""Where the provider may send a request on a client's behalf (back-channel logout), against SSRF.

A client names a URL and the provider POSTs to it from inside its own network, and keeps retrying
for a day (Back-Channel Logout 1.0 §2.5, §2.8): a URL aimed at an internal service, a cloud
metadata address or a loopback port would make the provider a probe of its own network (OWASP
Server-Side Request Forgery Prevention Cheat Sheet: check the resolved address, not the name, and
connect to the address checked). The rule:

- a client whose redirect URIs are all on loopback (development) may name a loopback URL, http or
  https;
- any other client names an ``https`` URL whose host resolves only to public addresses;
- hosts an admin lists in ``FEATURES["backchannel_logout"]["internal_hosts"]`` may resolve to
  internal addresses (an RP inside the operator's network); they still need ``https``.

The rule is checked at registration and again at each delivery, on the addresses the name
resolves to then, and the connection goes to the address just checked (a second lookup by the
HTTP library could answer differently: DNS rebinding). TLS is still verified for the URL's host.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from flask import current_app
from requests.adapters import HTTPAdapter

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressNotAllowed(ValueError):
    """The URL may not be called for this client; ``description`` says why (for RFC 7591 errors and logs)."""

    def __init__(self, description: str):
        super().__init__(description)
        self.description = description


@dataclass(frozen=True)
class Destination:
    """A checked URL and the address the request goes to."""

    url: str
    host: str
    port: int
    address: IPAddress

    @property
    def pinned_url(self) -> str:
        """The URL with the checked address in place of the host name."""
        parts = urlsplit(self.url)
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return parts._replace(netloc=f"{host}:{self.port}").geturl()


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to now (the system resolver)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(ipaddress.ip_address(item[4][0].split("%")[0]) for item in found))


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address; IPv4 inside IPv6 (mapped, 6to4) is judged as IPv4."""
    if address.version == 6:
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address.sixtofour is not None:
            address = address.sixtofour
        elif address.teredo is not None:
            return False
    return address.is_global and not address.is_multicast


def _is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def all_loopback(redirect_uris: list[str]) -> bool:
    """A development client: it has redirect URIs and every one of them is on loopback."""
    hosts = [urlsplit(uri).hostname or "" for uri in redirect_uris]
    return bool(hosts) and all(_is_loopback_host(host) for host in hosts)


def _internal_hosts() -> set[str]:
    return {host.lower() for host in current_app.config["FEATURES"]["backchannel_logout"]["internal_hosts"]}


def check(url: str, redirect_uris: list[str]) -> Destination:
    """The destination of ``url`` for a client with ``redirect_uris``, resolved and checked now;
    raises :class:`AddressNotAllowed`."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise AddressNotAllowed(f"not a valid URL: {url}") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise AddressNotAllowed(f"must be an https URL: {url}")
    if parts.fragment or "#" in url or "@" in parts.netloc:
        raise AddressNotAllowed(f"must not have a fragment or user information: {url}")
    loopback = all_loopback(redirect_uris) and _is_loopback_host(host)
    internal = host in _internal_hosts()
    if parts.scheme != "https" and not loopback:
        raise AddressNotAllowed(f"must be https (http only on loopback, for a client whose redirect URIs are all on loopback): {url}")
    addresses = resolve_host(host, port)
    if not addresses:
        raise AddressNotAllowed(f"the host does not resolve: {host}")
    for address in addresses:
        allowed = address.is_loopback if loopback else (not (address.is_multicast or address.is_unspecified) if internal else is_public(address))
        if not allowed:
            raise AddressNotAllowed(f"{host} resolves to {address}, which is not a public address")
    return Destination(url=url, host=host, port=port, address=addresses[0])


class _PinnedAdapter(HTTPAdapter):
    """Connects to the checked address whatever a new lookup would say, and verifies the TLS
    certificate (and sends SNI) for the URL's own host name."""

    def __init__(self, host: str):
        self._host = host
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        super().init_poolmanager(connections, maxsize, block, server_hostname=self._host, assert_hostname=self._host, **pool_kwargs)


def post_form(destination: Destination, fields: dict[str, str], timeout: float) -> requests.Response:
    """POST ``fields`` form-encoded to the checked address, without following redirects."""
    host_header = destination.host if ":" not in destination.host else f"[{destination.host}]"
    if urlsplit(destination.url).port:
        host_header += f":{destination.port}"
    with requests.Session() as session:
        session.mount("http://", _PinnedAdapter(destination.host))
        session.mount("https://", _PinnedAdapter(destination.host))
        return session.post(destination.pinned_url, data=fields, headers={"Host": host_header}, timeout=timeout, allow_redirects=False)
