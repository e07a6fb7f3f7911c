"""``/api/v1/delegations``: list, look up, add and remove the Assistants DSP of a record.

The record is the access token's ``sub``. Its owner manages its assistants; a token that
carries ``act`` (an assistant acting for the patient) manages them only on a minor's record
(guide, "Assistant DSP d'un enfant mineur"). Every route takes a token with the ``delegations``
scope through ``@require_oauth`` (token errors as RFC 6750 §3 and RFC 9449 §7.1 say, rendered by
``idp.oauth.errors``); every error body is ``{"error", "error_description"}``. Adding an
assistant gives the whole record, so it needs a login at most ``DELEGATION_REAUTHENTICATION_MAX_AGE``
seconds old: an older token gets RFC 9470's ``insufficient_user_authentication`` challenge with
``max_age``, and the client sends the patient through the login again.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime

from authlib.integrations.flask_oauth2 import current_token
from flask import current_app, jsonify, request
from werkzeug.exceptions import HTTPException, TooManyRequests

from .. import account as accounts, client as clients, clock, delegation as delegations, throttle
from ..extensions import csrf, db, limiter, require_oauth, retry_after
from . import blueprint
from .openapi import MATRICULE_PATTERN

SCOPE = "delegations"
csrf.exempt(blueprint)


class ApiError(Exception):
    def __init__(self, status: int, error: str, description: str, headers: dict | None = None):
        super().__init__(description)
        self.status, self.error, self.description, self.headers = status, error, description, headers or {}


@dataclass
class Caller:
    """Who calls: the record (token ``sub``), the person acting on it, and the client."""

    record: accounts.Account
    actor: accounts.Account
    client: clients.Client
    authenticated_at: datetime | None  # the login behind the token (``auth_time``)
    scheme: str  # how the token came: Bearer or DPoP

    def require_manager(self) -> None:
        if not delegations.may_manage(self.record, self.actor):
            raise ApiError(403, "access_denied", "Only the owner manages the assistants of an adult's record.")

    def require_recent_login(self) -> None:
        """RFC 9470 §3: the token's authentication is too old for this; ``max_age`` says what is needed."""
        max_age = current_app.config["DELEGATION_REAUTHENTICATION_MAX_AGE"]
        if self.authenticated_at is None or (clock.now() - self.authenticated_at).total_seconds() > max_age:
            description = f"Adding an assistant needs a login less than {max_age} seconds old."
            challenge = (f'{"DPoP" if self.scheme == "dpop" else "Bearer"} realm="{current_app.config["ISSUER"]}", '
                         f'error="insufficient_user_authentication", error_description="{description}", max_age="{max_age}"')
            raise ApiError(401, "insufficient_user_authentication", description, {"WWW-Authenticate": challenge})


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@blueprint.errorhandler(ApiError)
def _api_error(error: ApiError):
    response = jsonify(error=error.error, error_description=error.description)
    response.status_code = error.status
    response.headers.update(error.headers)
    return _no_store(response)


@blueprint.errorhandler(TooManyRequests)  # by code too: the app's HTML 429 page would win over a class handler
@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    """Rate limits, unknown methods and the like answer in JSON too, never with an HTML page."""
    response = jsonify(error="too_many_requests" if error.code == 429 else "invalid_request", error_description=error.description)
    response.status_code = error.code or 400
    if error.code == 429:
        response.headers["Retry-After"] = str(getattr(error, "retry_after", None) or retry_after())
    return _no_store(response)


def _caller() -> Caller:
    """Who the token ``@require_oauth`` accepted speaks for: its record, the person acting, its client."""
    access = current_token.use
    # The token's check read the account as a plain row (userinfo's hot path); the API changes
    # delegations of the record, so it works on the account entity.
    record, client = accounts.get(access.account.id), access.client
    actor = accounts.get(access.token.actor_account_id) if access.token.actor_account_id else record
    return Caller(record, actor, client, access.token.auth_time, current_token.scheme)


def _json_body(allowed: set[str], required: set[str]) -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "The body must be a JSON object (Content-Type: application/json).")
    if unknown := set(body) - allowed:
        raise ApiError(400, "invalid_request", f"Unknown members: {', '.join(sorted(unknown))}.")
    if missing := required - set(body):
        raise ApiError(400, "invalid_request", f"Missing members: {', '.join(sorted(missing))}.")
    if not isinstance(body.get("matricule"), str) or not re.fullmatch(MATRICULE_PATTERN, body["matricule"]):
        raise ApiError(400, "invalid_request", "matricule must be a string of 11 or 13 digits.")
    return body


def _lookup(caller: Caller, matricule: str) -> accounts.Account:
    try:
        found = delegations.lookup(matricule, requested_by=caller.actor, client_id=caller.client.client_id)
    except delegations.InvalidDelegation:
        found = None  # digits whose check digits fail: like any other matricule, it matches no one
    except throttle.Throttled as throttled:
        raise TooManyRequests(f"Too many look-ups for this account; retry in {throttled.retry_after} seconds.",
                              retry_after=throttled.retry_after) from None
    db.session.commit()  # the look-up is audited even when it finds no one
    if found is None:
        raise ApiError(404, "not_found", "No patient with an active account has this matricule.")
    return found


@blueprint.get("/api/v1/delegations")
@require_oauth(SCOPE)
def list_delegations():
    caller = _caller()
    return _no_store(jsonify(delegations=[delegations.view(d, caller.client) for d in delegations.for_owner(caller.record)]))


@blueprint.post("/api/v1/delegations/lookup")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_DELEGATION_LOOKUP"])
@require_oauth(SCOPE)
def lookup_assistant():
    caller = _caller()
    caller.require_manager()
    body = _json_body({"matricule"}, {"matricule"})
    return _no_store(jsonify(display_name=delegations.masked_name(_lookup(caller, body["matricule"]))))


@blueprint.post("/api/v1/delegations")
@limiter.limit(lambda: current_app.config["RATE_LIMIT_DELEGATION_LOOKUP"])
@require_oauth(SCOPE)
def add_delegation():
    caller = _caller()
    caller.require_manager()
    caller.require_recent_login()
    body = _json_body({"matricule", "type", "role", "valid_until"}, {"matricule"})
    kind, role, valid_until = body.get("type", delegations.ASSISTANT_DSP), body.get("role"), body.get("valid_until")
    if not isinstance(kind, str) or not (role is None or isinstance(role, str)) or not (valid_until is None or isinstance(valid_until, str)):
        raise ApiError(400, "invalid_request", "type must be a string, role and valid_until a string or null.")
    try:
        until = date.fromisoformat(valid_until) if valid_until is not None else None
    except ValueError:
        raise ApiError(400, "invalid_request", "valid_until must be a date (YYYY-MM-DD).") from None
    if valid_until is not None and len(valid_until) != 10:
        raise ApiError(400, "invalid_request", "valid_until must be a date (YYYY-MM-DD).")
    assistant = _lookup(caller, body["matricule"])
    try:
        created = delegations.grant(caller.record, assistant, created_by=caller.actor, type=kind, role=role, valid_until=until,
                                    client_id=caller.client.client_id)
    except delegations.DelegationExists as error:
        raise ApiError(409, "conflict", str(error)) from None
    except delegations.NotAllowed as error:
        raise ApiError(403, "access_denied", str(error)) from None
    except delegations.InvalidDelegation as error:
        raise ApiError(400, "invalid_request", str(error)) from None
    db.session.commit()
    response = jsonify(delegations.view(created, caller.client))
    response.status_code = 201
    return _no_store(response)


@blueprint.delete("/api/v1/delegations/<delegation_id>")
@require_oauth(SCOPE)
def remove_delegation(delegation_id: str):
    caller = _caller()
    caller.require_manager()
    found = delegations.get(delegation_id)
    if found is None or found.owner_id != caller.record.id or not found.is_in_force():
        raise ApiError(404, "not_found", "This record has no such assistant.")
    delegations.revoke(found, by=caller.actor, client_id=caller.client.client_id)
    db.session.commit()
    return _no_store(current_app.response_class(status=204))
