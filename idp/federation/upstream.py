"""Upstream identity providers: one small interface, implementations chosen by configuration.

Each upstream (``FEDERATION["upstreams"]``) is a connector with ``start_login`` (a redirect to
the upstream) and ``finish_login`` (the upstream's answer, checked, as an :class:`UpstreamIdentity`
in our vocabulary), as SATOSA's backends do. SAML is the protocol of MyGuichet and of LuxTrust's
gateway (:mod:`idp.federation.saml`); another protocol, such as an OpenID Connect upstream, is
one more class with the same two methods, named by the upstream's ``protocol``.
"""

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from flask import current_app

from ..oauth.discovery import ACR_VALUES


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

    def start_login(self, relay_state: str, requested_acr: str | None = None, force_authn: bool = False) -> tuple[str, str]:
        """Return (URL to send the browser to, id of the request the answer must refer to)."""

    def finish_login(self, form: Mapping[str, str]) -> UpstreamIdentity:
        """Check the upstream's answer; raise :class:`ResponseRejected` or :class:`UpstreamUnavailable`."""


class UnknownUpstream(LookupError):
    pass


def configured() -> dict[str, dict[str, Any]]:
    """The enabled upstreams' settings; empty when federation is off."""
    federation = current_app.config.get("FEDERATION") or {}
    return dict(federation.get("upstreams") or {}) if federation.get("enabled") else {}


def is_enabled(name: str) -> bool:
    return name in configured()


def get(name: str) -> Upstream:
    settings = configured().get(name)
    if settings is None:
        raise UnknownUpstream(name)
    connectors = _connectors()
    if settings.get("protocol") not in connectors:
        raise UpstreamUnavailable(f"unsupported protocol {settings.get('protocol')!r}")
    return connectors[settings["protocol"]](name, settings)


def _connectors() -> dict[str, type]:
    from .saml import SamlUpstream

    return {"saml": SamlUpstream}


def acr_rank(acr: str | None) -> int:
    """Position in the eIDAS order low < substantial < high; -1 for anything else."""
    return ACR_VALUES.index(acr) if acr in ACR_VALUES else -1


def minimum_acr(acr_values: str | None) -> str | None:
    """The lowest eIDAS level among a relying party's ``acr_values`` (each is acceptable to it)."""
    known = [value for value in (acr_values or "").split() if value in ACR_VALUES]
    return min(known, key=acr_rank) if known else None
