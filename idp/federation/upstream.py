"""Upstream identity providers: one small interface, implementations chosen by configuration.

Each upstream (``FEDERATION["upstreams"]``) is a connector with ``start_login`` (a redirect to
the upstream) and ``finish_login`` (the upstream's answer, checked, as an :class:`UpstreamIdentity`
in our vocabulary), as SATOSA's backends do. SAML is the protocol of MyGuichet and of LuxTrust's
gateway (:mod:`idp.federation.saml`); another protocol, such as an OpenID Connect upstream, is
one more class with the same methods, named by the upstream's ``protocol``
(:mod:`idp.federation.connectors` builds them from the settings).
"""

from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

from flask.typing import ResponseReturnValue



@dataclass
class UpstreamIdentity:
    """Who the upstream says authenticated, and how strongly (``acr``/``amr``)."""

    upstream: str
    subject: str
    acr: str
    amr: list[str] = field(default_factory=list)
    national_id: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    phone: str | None = None
    name_id_format: str | None = None
    session_index: str | None = None
    in_response_to: str | None = None


class UpstreamUnavailable(Exception):
    """The upstream cannot be reached or its metadata is unusable; other logins still work."""


class ResponseRejected(Exception):
    """The upstream's answer failed a check; ``reason`` names which, for the audit log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Upstream(Protocol):
    name: str
    label: str
    allow_unsolicited: bool
    step_up: bool
    # The upstream vouches for the patient's national identifier (MyGuichet: activation and login
    # by it); otherwise it is a means the patient links to their account (LuxTrust).
    asserts_national_id: bool

    def start_login(self, relay_state: str, requested_acr: str | None = None, force_authn: bool = False) -> tuple[str, str]:
        """Return (URL to send the browser to, id of the request the answer must refer to)."""

    def finish_login(self, form: Mapping[str, str]) -> UpstreamIdentity:
        """Check the upstream's answer; raise :class:`ResponseRejected` or :class:`UpstreamUnavailable`."""


# What to do with an upstream's checked answer, given the connector, the identity and what the
# request was for (``purpose``, ``next``...): a response for the browser.
Arrival = Callable[["Upstream", UpstreamIdentity, dict], ResponseReturnValue]
_arrivals: dict[bool, Arrival] = {}


def handles_arrivals(*, asserts_national_id: bool) -> Callable[[Arrival], Arrival]:
    """Register the arrival of every upstream that does (MyGuichet) or does not (LuxTrust) vouch
    for the national identifier: the SAML views then pick it by that, not by the upstream's name."""

    def register(arrival: Arrival) -> Arrival:
        _arrivals[asserts_national_id] = arrival
        return arrival

    return register


def arrival_for(connector: "Upstream") -> Arrival:
    return _arrivals[connector.asserts_national_id]
