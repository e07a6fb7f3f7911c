"""``/openapi.json``: the OpenAPI 3.1 document of the JSON APIs (delegations, dynamic client
registration), every response described."""

from flask import current_app, jsonify

from .. import client as clients
from . import blueprint

_JSON = "application/json"
MATRICULE_PATTERN = "^[0-9]{11}([0-9]{2})?$"
SCOPE_DESCRIPTIONS = {
    "openid": "OpenID Connect sign-in.",
    "delegations": "Manage the assistants of the record.",
    "assisted_patients": "The patients one may act for (claim `assisted_patients`).",
}


def _error(description: str, codes: list[str], authenticate: bool = False) -> dict:
    response = {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}, "example": {"error": codes[0], "error_description": "…"}}},
    }
    if authenticate:
        response["headers"] = {"WWW-Authenticate": {"$ref": "#/components/headers/WWW-Authenticate"}}
    return response


def _errors(*statuses: int) -> dict:
    catalogue = {
        400: _error("The request body is not valid (`invalid_request`).", ["invalid_request"]),
        401: _error("No access token, or one that is invalid, expired or revoked (RFC 6750 §3.1), or a DPoP presentation "
                    "that fails (`invalid_dpop_proof`, `use_dpop_nonce`; RFC 9449 §7.1). Adding an assistant also needs a login "
                    "at most `max_age` seconds old (`insufficient_user_authentication`, RFC 9470 §3): log the patient in again "
                    "with that `max_age`.", ["invalid_token", "invalid_request", "insufficient_user_authentication"], True),
        403: _error("The token lacks the `delegations` scope (`insufficient_scope`), or an assistant acts on an adult's record "
                    "(`access_denied`).", ["insufficient_scope", "access_denied"], True),
        404: _error("No patient with an active account has this matricule, or the record has no such assistant (`not_found`).",
                    ["not_found"]),
        409: _error("This patient is already an assistant of the record (`conflict`).", ["conflict"]),
        429: _error("Too many look-ups from this address or by this account; retry after `Retry-After` seconds "
                    "(`too_many_requests`).", ["too_many_requests"]),
    }
    return {str(status): catalogue[status] for status in statuses}


def document() -> dict:
    issuer = current_app.config["ISSUER"]
    security = [{"bearer": []}, {"oauth2": ["delegations"]}]
    matricule = {"type": "string", "pattern": MATRICULE_PATTERN, "examples": ["1893120105732"],
                 "description": "The assistant's exact matricule, 11 or 13 digits. One whose check digits fail matches no one (404)."}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "eSanté IdP — Assistants DSP",
            "version": "1.0.0",
            "description": "Manage the Assistants DSP of the patient record an access token is for (its `sub`). The owner manages "
                           "the assistants; an assistant acting for the patient (a token with `act`) does so only on a minor's record. "
                           "Subjects are as the calling client sees them; names are masked (initial + family name).",
        },
        "servers": [{"url": issuer}],
        "security": security,
        "paths": {
            "/api/v1/delegations": {
                "get": {
                    "operationId": "listDelegations",
                    "summary": "The assistants in force on the record.",
                    "responses": {
                        "200": {"description": "The delegations in force, oldest first.", "content": {_JSON: {"schema": {
                            "type": "object", "required": ["delegations"], "additionalProperties": False,
                            "properties": {"delegations": {"type": "array", "items": {"$ref": "#/components/schemas/Delegation"}}}}}}},
                        **_errors(401, 403),
                    },
                },
                "post": {
                    "operationId": "addDelegation",
                    "summary": "Make a patient an assistant of the record.",
                    "requestBody": {"required": True, "content": {_JSON: {"schema": {"$ref": "#/components/schemas/NewDelegation"}}}},
                    "responses": {
                        "201": {"description": "The delegation made. On a minor's record it ends the day before the 18th birthday.",
                                "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Delegation"}}}},
                        **_errors(400, 401, 403, 404, 409, 429),
                    },
                },
            },
            "/api/v1/delegations/lookup": {
                "post": {
                    "operationId": "lookupAssistant",
                    "summary": "Find a patient by exact matricule; only a masked name is returned. Rate-limited and audited.",
                    "requestBody": {"required": True, "content": {_JSON: {"schema": {
                        "type": "object", "required": ["matricule"], "additionalProperties": False, "properties": {"matricule": matricule}}}}},
                    "responses": {
                        "200": {"description": "The patient's masked name.", "content": {_JSON: {"schema": {
                            "type": "object", "required": ["display_name"], "additionalProperties": False,
                            "properties": {"display_name": {"type": "string", "examples": ["H. Doe"]}}}}}},
                        **_errors(400, 401, 403, 404, 429),
                    },
                },
            },
            "/api/v1/delegations/{id}": {
                "delete": {
                    "operationId": "removeDelegation",
                    "summary": "End a delegation now; every token issued under it is revoked at once.",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"204": {"description": "Ended."}, **_errors(401, 403, 404)},
                },
            },
            **_registration_paths(),
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "An access token issued by this server with the `delegations` scope (RFC 6750, RFC 9068). "
                                          "A DPoP-bound one is presented as `Authorization: DPoP` with a `DPoP` proof (RFC 9449 §7.1)."},
                "initialAccessToken": {"type": "http", "scheme": "bearer",
                                       "description": "A single-use initial access token from `idp clients initial-token` (RFC 7591 §3)."},
                "registrationAccessToken": {"type": "http", "scheme": "bearer",
                                            "description": "The registration access token returned at registration (RFC 7592 §3)."},
                "oauth2": {"type": "oauth2", "flows": {"authorizationCode": {
                    "authorizationUrl": issuer + "/authorize", "tokenUrl": issuer + "/token",
                    "scopes": SCOPE_DESCRIPTIONS}}},
            },
            "headers": {
                "WWW-Authenticate": {"description": "RFC 6750 §3 challenge, e.g. `Bearer realm=\"…\", error=\"invalid_token\"`.",
                                     "schema": {"type": "string"}},
            },
            "schemas": {
                "Party": {"type": "object", "required": ["sub", "display_name"], "additionalProperties": False, "properties": {
                    "sub": {"type": "string", "description": "The patient's `sub` as the calling client sees it."},
                    "display_name": {"type": "string", "description": "Initial + family name.", "examples": ["H. Doe"]}}},
                "Delegation": {"type": "object", "additionalProperties": False,
                               "required": ["id", "type", "role", "owner", "assistant", "created_at", "valid_until"], "properties": {
                                   "id": {"type": "string"},
                                   "type": {"type": "string", "enum": ["assistant_dsp"]},
                                   "role": {"type": ["string", "null"]},
                                   "owner": {"$ref": "#/components/schemas/Party"},
                                   "assistant": {"$ref": "#/components/schemas/Party"},
                                   "created_at": {"type": "string", "format": "date-time"},
                                   "valid_until": {"type": ["string", "null"], "format": "date",
                                                   "description": "Last day the delegation is in force, if any."}}},
                "NewDelegation": {"type": "object", "required": ["matricule"], "additionalProperties": False, "properties": {
                    "matricule": matricule,
                    "type": {"type": "string", "enum": ["assistant_dsp"], "default": "assistant_dsp"},
                    "role": {"type": ["string", "null"], "maxLength": 100},
                    "valid_until": {"type": ["string", "null"], "format": "date", "description": "Last day, today or later."}}},
                "ClientMetadata": _client_metadata_schema(),
                "ClientInformation": {
                    "type": "object", "additionalProperties": True,
                    "required": ["client_id", "client_id_issued_at", "client_secret_expires_at", "redirect_uris", "grant_types",
                                 "token_endpoint_auth_method", "registration_client_uri"],
                    "properties": {
                        "client_id": {"type": "string"}, "client_id_issued_at": {"type": "integer"},
                        "client_secret": {"type": "string", "description": "Only when one was just issued."},
                        "client_secret_expires_at": {"type": "integer", "enum": [0]},
                        "registration_access_token": {"type": "string"}, "registration_client_uri": {"type": "string", "format": "uri"},
                        "redirect_uris": {"type": "array", "items": {"type": "string"}},
                        "grant_types": {"type": "array", "items": {"type": "string"}},
                        "token_endpoint_auth_method": {"type": "string"},
                        "pending_approval": {"type": "array", "items": {"type": "string"},
                                             "description": "What only an admin may give (reserved scopes and grants, a public "
                                                            "sub, a protected name), awaiting approval: the client cannot be "
                                                            "used until then. Absent when nothing is awaited."}}},
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"}, "error_description": {"type": "string"}}},
            },
        },
    }




def _client_metadata_schema() -> dict:
    """RFC 7591 §2 client metadata as this server takes it (unknown members are ignored)."""
    text_list = {"type": "array", "items": {"type": "string"}}
    return {"type": "object", "additionalProperties": True, "properties": {
        "client_name": {"type": "string", "maxLength": 200},
        "redirect_uris": text_list, "post_logout_redirect_uris": text_list,
        "grant_types": {"type": "array", "items": {"type": "string", "enum": clients.SUPPORTED_GRANT_TYPES}},
        "response_types": {"type": "array", "items": {"type": "string", "enum": ["code"]}},
        "scope": {"type": "string", "description": "Space-separated: " + " ".join(clients.SUPPORTED_SCOPES)},
        "token_endpoint_auth_method": {"type": "string", "enum": clients.SUPPORTED_AUTH_METHODS},
        "subject_type": {"type": "string", "enum": ["public", "pairwise"]},
        "jwks": {"type": "object", "description": "Public keys for private_key_jwt (`jwks_uri` is not supported)."},
        **{name: {"type": "string", "format": "uri"} for name in ("client_uri", "logo_uri", "tos_uri", "policy_uri", "backchannel_logout_uri")},
        "software_id": {"type": "string"}, "software_version": {"type": "string"}, "contacts": text_list,
        **{name: {"type": "boolean"} for name in ("backchannel_logout_session_required", "require_pushed_authorization_requests",
                                                  "dpop_bound_access_tokens")},
    }}


def _registration_paths() -> dict:
    """RFC 7591 registration and RFC 7592 client configuration."""
    metadata_body = {"required": True, "content": {_JSON: {"schema": {"$ref": "#/components/schemas/ClientMetadata"}}}}
    information = {_JSON: {"schema": {"$ref": "#/components/schemas/ClientInformation"}}}
    invalid_metadata = _error("The metadata are refused (`invalid_client_metadata`, `invalid_redirect_uri`; RFC 7591 §3.2.2), "
                              "or the body is not a JSON object.", ["invalid_client_metadata", "invalid_redirect_uri"])
    bad_token = _error("No token, or one that is not valid for this operation (`invalid_token`).", ["invalid_token"], True)
    too_large = _error("The body is larger than the server accepts (`invalid_request`).", ["invalid_request"])
    client_id = [{"name": "client_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    return {
        "/register": {"post": {
            "operationId": "registerClient", "summary": "Register a client (RFC 7591).",
            "security": [{"initialAccessToken": []}], "requestBody": metadata_body,
            "responses": {"201": {"description": "Registered; the secret, if any, is shown only here.", "content": information},
                          "400": invalid_metadata, "401": bad_token, "413": too_large}}},
        "/register/{client_id}": {
            "get": {"operationId": "readClient", "summary": "Read the registration (RFC 7592 §2.1).", "parameters": client_id,
                    "security": [{"registrationAccessToken": []}],
                    "responses": {"200": {"description": "The registration.", "content": information}, "401": bad_token}},
            "put": {"operationId": "replaceClient", "summary": "Replace the registration (RFC 7592 §2.2).", "parameters": client_id,
                    "security": [{"registrationAccessToken": []}], "requestBody": metadata_body,
                    "responses": {"200": {"description": "The new registration.", "content": information}, "400": invalid_metadata,
                                  "401": bad_token, "413": too_large}},
            "delete": {"operationId": "deleteClient", "summary": "Delete the registration (RFC 7592 §2.3).", "parameters": client_id,
                       "security": [{"registrationAccessToken": []}],
                       "responses": {"204": {"description": "Deleted."}, "401": bad_token}},
        },
    }


@blueprint.get("/openapi.json")
def openapi_document():
    response = jsonify(document())
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
