"""Which claims about a patient a client receives (OpenID Connect Core §5.4, §5.5).

Scopes ask for groups of claims; the ``claims`` request parameter asks for single claims, for
the userinfo response or the ID token. A claim is released only under a scope the client is
registered for: ``matricule`` only to clients allowed the ``matricule`` scope.
"""

import json
from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list

from . import clock, delegation as delegations
from .account import Account, AccountRow
from .client import Client

SCOPE_CLAIMS = {
    "profile": ["name", "family_name", "given_name", "birthdate", "locale", "updated_at"],
    "email": ["email", "email_verified"],
    "phone": ["phone_number", "phone_number_verified"],
    "matricule": ["matricule"],
    # The patients this person may act for, each with the ``sub`` the client knows them by:
    # the relying party offers them to pick from (userinfo and ID token alike).
    "assisted_patients": ["assisted_patients"],
}
# Claims only a granted scope releases, not the client's registration alone.
GRANTED_SCOPE_ONLY = {"matricule", "assisted_patients"}
CLAIMS_SUPPORTED = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "sid", "act", "may_act",
                    *[claim for claims in SCOPE_CLAIMS.values() for claim in claims]]
_CLAIM_SCOPE = {claim: scope for scope, claims in SCOPE_CLAIMS.items() for claim in claims}


class InvalidClaimsRequest(ValueError):
    pass


def parse_claims_request(text: str | None) -> dict | None:
    """Parse and check the ``claims`` parameter (Core §5.5); raises :class:`InvalidClaimsRequest`."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser follows
        raise InvalidClaimsRequest("claims is not valid JSON") from None
    if not isinstance(value, dict) or set(value) - {"userinfo", "id_token"}:
        raise InvalidClaimsRequest("claims must be an object with userinfo and/or id_token members")
    for member in value.values():
        if not isinstance(member, dict):
            raise InvalidClaimsRequest("claims members must be objects")
        for request in member.values():
            if request is not None and not isinstance(request, dict):
                raise InvalidClaimsRequest("each requested claim must be null or an object")
    return value


def requested_claim_names(claims_request: dict | None, target: str) -> list[str]:
    return list(((claims_request or {}).get(target) or {}).keys())


def claim_values(account: Account | AccountRow) -> dict[str, Any]:
    return {
        "name": account.display_name,
        "family_name": account.family_name,
        "given_name": account.given_name,
        "birthdate": account.birth_date.isoformat(),
        "locale": account.locale,  # only once the patient chose a language: relying parties then follow it
        "updated_at": clock.to_timestamp(account.updated_at),
        "email": account.email,
        "email_verified": bool(account.email_verified),
        "phone_number": account.mobile,
        "phone_number_verified": bool(account.mobile_verified),
        "matricule": account.matricule,
    }


def requested_releasable(client: Client, scope: str, claims_request: dict | None, target: str) -> list[str]:
    """Claims the ``claims`` parameter asks for ``target`` that ``client`` may receive (what consent shows)."""
    granted = set(scope_to_list(scope) or [])
    return [name for name in requested_claim_names(claims_request, target) if _may_release(name, client, granted)]


def _may_release(name: str, client: Client, granted: set[str]) -> bool:
    covering = _CLAIM_SCOPE.get(name)
    return bool(covering) and client.allows_scope(covering) and (covering not in GRANTED_SCOPE_ONLY or covering in granted)


def claims_of_scopes(scope: str | None) -> set[str]:
    """The claims the scopes of ``scope`` stand for (Core §5.4)."""
    return {claim for name in scope_to_list(scope) or [] for claim in SCOPE_CLAIMS.get(name, [])}


def released_names(client: Client, scope: str, claims_request: dict | None, target: str) -> list[str]:
    """The names of the claims :func:`release` gives ``client`` for ``target``.

    A granted scope counts only while the client is still registered for it: a token issued
    before an admin withdrew ``matricule`` from the client no longer releases it.
    """
    names: list[str] = []
    if target == "userinfo":
        for scope_name in scope_to_list(scope) or []:
            if client.allows_scope(scope_name):
                names += SCOPE_CLAIMS.get(scope_name, [])
    names += requested_releasable(client, scope, claims_request, target)
    if "assisted_patients" in (scope_to_list(scope) or []) and client.allows_scope("assisted_patients"):
        names.append("assisted_patients")
    return list(dict.fromkeys(names))


def released_anywhere(client: Client, scope: str, claims_request: dict | None) -> list[str]:
    """Every claim an authorization would release, in the ID token or at userinfo: what consent must cover."""
    return list(dict.fromkeys(name for target in ("id_token", "userinfo") for name in released_names(client, scope, claims_request, target)))


def release(account: Account | AccountRow, client: Client, scope: str, claims_request: dict | None, target: str) -> dict[str, Any]:
    """The claims for ``target`` ("userinfo" or "id_token"), without ``sub``."""
    names = released_names(client, scope, claims_request, target)
    values = claim_values(account)
    if "assisted_patients" in names:
        values["assisted_patients"] = delegations.assisted_patients(account, client)
    return {name: values[name] for name in names if values.get(name) is not None}
