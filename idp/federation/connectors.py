"""The configured upstreams, each built as the connector its ``protocol`` names."""

from typing import Any

from flask import current_app

from .saml import SamlUpstream
from .upstream import Upstream, UpstreamUnavailable

CONNECTORS: dict[str, type] = {"saml": SamlUpstream}


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
    if settings.get("protocol") not in CONNECTORS:
        raise UpstreamUnavailable(f"unsupported protocol {settings.get('protocol')!r}")
    return CONNECTORS[settings["protocol"]](name, settings)
