"""Dynamic client registration (RFC 7591) and client configuration (RFC 7592).

https://www.rfc-editor.org/rfc/rfc7591 and https://www.rfc-editor.org/rfc/rfc7592

Registration is open only to holders of a single-use initial access token issued by an admin
(``idp clients initial-token``, RFC 7591 §3). Clients registered here are third parties: never
first party, pairwise subjects unless they ask otherwise. Each gets a registration access token
to read, replace or delete its own registration. Validation is the client registry's
(:mod:`idp.client`); this module only translates between JSON and the registry. A client asks
for the FAPI 2.0 Security Profile with ``"security_profile": "fapi2"`` (this server's metadata
name, :mod:`idp.oauth.fapi2_profile`); the answer shows what the profile implies. What only an
admin may give (reserved scopes and grants, a public ``sub``, a protected name) holds the client
until ``idp clients approve``; the answer lists it under ``pending_approval`` (RFC 7591 §3.2.1
lets the server decide what it provisions).
``FEATURES["dynamic_registration"]`` turns it on or off.
"""

from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint, InvalidClientMetadataError, InvalidRedirectURIError
from authlib.oauth2.rfc7592 import ClientConfigurationEndpoint
from flask import Blueprint, current_app, request as flask_request

from .. import client as clients, clock, outbound_address, token as tokens
from ..extensions import authorization, csrf, db

blueprint = Blueprint("oauth_registration", __name__)

DEFAULT_GRANT_TYPES = ["authorization_code"]  # RFC 7591 §2
DEFAULT_SCOPE = "openid profile email phone"
DISPLAY_URIS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
DESCRIPTIVE_STRINGS = ("software_id", "software_version")
BACKCHANNEL_LOGOUT = ("backchannel_logout_uri", "backchannel_logout_session_required")
# RFC 9126 §6 and RFC 9449 §5.2: the client asks to be held to PAR / DPoP.
BOOLEAN_FLAGS = ("require_pushed_authorization_requests", "dpop_bound_access_tokens")
SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


def _invalid_token() -> InvalidTokenError:
    return InvalidTokenError(realm=current_app.config["ISSUER"])


def _bearer() -> str | None:
    return tokens.bearer_token(flask_request.headers.get("Authorization"))


def _client_metadata_error(error: clients.InvalidClientMetadata) -> OAuth2Error:
    """RFC 7591 §3.2.2 error codes, carried by Authlib's error classes."""
    description = _printable(error.description)
    if error.error == InvalidRedirectURIError.error:
        return InvalidRedirectURIError(description)
    return InvalidClientMetadataError(description)


def _printable(text: str) -> str:
    """RFC 6749 §5.2 allows only printable ASCII but ``"`` and ``\\`` in ``error_description``;
    descriptions quote the submitted metadata, which may hold anything (Authlib refuses the rest
    with an exception, which would be a 500)."""
    return "".join(char if " " <= char <= "~" and char not in '"\\' else "?" for char in text)


def _json_object() -> dict:
    body = flask_request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidClientMetadataError("The request body must be a JSON object of client metadata.")
    return body


def _string_list(body: dict, name: str, error: str = "invalid_client_metadata") -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise clients.InvalidClientMetadata(f"{name} must be an array of strings", error)
    return value


def _string(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise clients.InvalidClientMetadata(f"{name} must be a string")
    return value


def requested_metadata(body: dict) -> dict:
    """The client metadata of a request, type-checked, with the RFC 7591 §2 defaults filled in."""
    grant_types = _string_list(body, "grant_types") or DEFAULT_GRANT_TYPES
    expected_response_types = ["code"] if "authorization_code" in grant_types else []
    response_types = _string_list(body, "response_types")
    if response_types is not None and response_types != expected_response_types:
        raise clients.InvalidClientMetadata(
            f"response_types must be {expected_response_types} for grant_types {grant_types} (only the code flow is supported)"
        )
    if "jwks_uri" in body:
        raise clients.InvalidClientMetadata("jwks_uri is not supported: register the keys with jwks")
    metadata = {
        "client_name": _string(body, "client_name") or "",
        "redirect_uris": _string_list(body, "redirect_uris", "invalid_redirect_uri") or [],
        "post_logout_redirect_uris": _string_list(body, "post_logout_redirect_uris", "invalid_redirect_uri") or [],
        "grant_types": grant_types,
        "response_types": expected_response_types,
        "scope": _string(body, "scope") or DEFAULT_SCOPE,
        "token_endpoint_auth_method": _string(body, "token_endpoint_auth_method") or "client_secret_basic",
        "subject_type": _string(body, "subject_type") or "pairwise",
    }
    if (jwks := body.get("jwks")) is not None:
        if not isinstance(jwks, dict):
            raise clients.InvalidClientMetadata("jwks must be a JSON Web Key Set object")
        metadata["jwks"] = jwks
    for name in DISPLAY_URIS:
        if (uri := _string(body, name)) is not None:
            if not uri.startswith("https://"):
                raise clients.InvalidClientMetadata(f"{name} must be an https URL")
            metadata[name] = uri
    for name in DESCRIPTIVE_STRINGS:
        if (value := _string(body, name)) is not None:
            metadata[name] = value
    if (contacts := _string_list(body, "contacts")) is not None:
        metadata["contacts"] = contacts
    if (profile := _string(body, "security_profile")) is not None:
        metadata["security_profile"] = profile
    metadata.update(_backchannel_logout(body, metadata["redirect_uris"]))
    for flag in BOOLEAN_FLAGS:
        if (value := body.get(flag)) is not None:
            if not isinstance(value, bool):
                raise clients.InvalidClientMetadata(f"{flag} must be a boolean")
            metadata[flag] = value
    return metadata


def _backchannel_logout(body: dict, redirect_uris: list[str]) -> dict:
    """Back-Channel Logout §2.2. Logout tokens always carry ``sid``, so any session_required is met.
    The provider will POST to the URI: :mod:`idp.outbound_address` decides where it may (SSRF)."""
    found = {}
    if (uri := _string(body, "backchannel_logout_uri")) is not None:
        try:
            outbound_address.check(uri, redirect_uris)
        except outbound_address.AddressNotAllowed as error:
            raise clients.InvalidClientMetadata(f"backchannel_logout_uri: {error.description}") from None
        found["backchannel_logout_uri"] = uri
    if (required := body.get("backchannel_logout_session_required")) is not None:
        if not isinstance(required, bool):
            raise clients.InvalidClientMetadata("backchannel_logout_session_required must be a boolean")
        found["backchannel_logout_session_required"] = required
    return found


def _extract_client_metadata() -> dict:
    try:
        return requested_metadata(_json_object())
    except clients.InvalidClientMetadata as error:
        raise _client_metadata_error(error) from error


def _registry_arguments(metadata: dict) -> dict:
    """Keyword arguments of :func:`idp.client.create` / :func:`idp.client.update` for ``metadata``.

    Only the descriptive fields go to ``extra_metadata``: anything else there (such as
    ``sector_identifier``) would change how the provider treats the client.
    """
    return {
        "name": metadata["client_name"],
        "redirect_uris": metadata["redirect_uris"],
        "post_logout_redirect_uris": metadata["post_logout_redirect_uris"],
        "grant_types": metadata["grant_types"],
        "scope": metadata["scope"],
        "auth_method": metadata["token_endpoint_auth_method"],
        "subject_type": metadata["subject_type"],
        "jwks": metadata.get("jwks"),
        "security_profile": metadata.get("security_profile"),
        "extra_metadata": {name: metadata[name] for name in (*DISPLAY_URIS, *DESCRIPTIVE_STRINGS, "contacts", *BACKCHANNEL_LOGOUT,
                                                                   *BOOLEAN_FLAGS)
                           if name in metadata},
    }


def _client_information(client: clients.Client) -> dict:
    """RFC 7591 §3.2.1: the registered metadata and what the server provisioned; while an admin's
    approval is awaited, what it is awaited for (the client cannot be used meanwhile)."""
    information = {
        **client.client_metadata,
        "client_id": client.client_id,
        "client_id_issued_at": clock.to_timestamp(client.created_at),
        "client_secret_expires_at": 0,
    }
    if client.is_held:
        information["pending_approval"] = list(client.pending_approval)
    return information


def _registration_management(client: clients.Client, registration_access_token: str, client_secret: str | None) -> dict:
    """RFC 7592 §3 fields, plus a client secret when one was just issued (shown only then)."""
    info = {
        "registration_access_token": registration_access_token,
        "registration_client_uri": f"{current_app.config['ISSUER']}/register/{client.client_id}",
    }
    if client_secret:
        info["client_secret"] = client_secret
    return info


class ClientRegistration(ClientRegistrationEndpoint):
    """RFC 7591 §3: ``POST /register`` with an initial access token."""

    def authenticate_token(self, request):
        if not clients.consume_initial_access_token(_bearer() or ""):
            raise _invalid_token()
        return True

    def extract_client_metadata(self, request):
        return _extract_client_metadata()

    def generate_client_info(self, request):
        """Nothing here: the registry makes the client id and secret when it saves the client."""
        return {}

    def save_client(self, client_info, client_metadata, request):
        try:
            client, request.client_secret = clients.create(**_registry_arguments(client_metadata), first_party=False,
                                                           actor="registration", self_registered=True)
        except clients.InvalidClientMetadata as error:
            raise _client_metadata_error(error) from error
        return client

    def generate_client_registration_info(self, client, request):
        token = clients.issue_registration_access_token(client)
        return {**_client_information(client), **_registration_management(client, token, request.client_secret)}


class RegistrationAccessToken:
    """The credential of RFC 7592 requests: valid for the one client it was issued to."""

    def __init__(self, client: clients.Client, value: str):
        self.client, self.value = client, value

    def check_client(self, client: clients.Client) -> bool:
        return client is self.client


class ClientConfiguration(ClientConfigurationEndpoint):
    """RFC 7592 §2: read, replace or delete a registration with its registration access token.

    Secrets are kept only as hashes, so reads never repeat the client secret; a replacement
    that moves the client to secret authentication issues one (RFC 7592 §2.2 lets the server
    provision new credentials on update).
    """

    def authenticate_token(self, request):
        value = _bearer() or ""
        client = clients.find_by_registration_access_token(flask_request.view_args["client_id"], value)
        if client is None:
            raise _invalid_token()
        return RegistrationAccessToken(client, value)

    def authenticate_client(self, request):
        """The token already named its client; unknown or deleted clients failed authentication."""
        return request.credential.client

    def check_permission(self, client, request):
        return True

    def create_update_client_response(self, client, request):
        """Check the body first: Authlib reads it as JSON and would answer a non-JSON body with HTML."""
        _json_object()
        return super().create_update_client_response(client, request)

    def extract_client_metadata(self, request):
        return _extract_client_metadata()

    def update_client(self, client, client_metadata, request):
        """RFC 7592 §2.2: the request replaces the registration; omitted fields take their defaults."""
        actor = f"client:{client.client_id}"
        try:
            clients.update(client, actor=actor, self_registered=True, **_registry_arguments(client_metadata))
            if client.token_endpoint_auth_method in SECRET_AUTH_METHODS and client.client_secret_hash is None:
                request.client_secret = clients.rotate_secret(client, actor=actor)
        except clients.InvalidClientMetadata as error:
            raise _client_metadata_error(error) from error
        return client

    def introspect_client(self, client):
        return _client_information(client)

    def generate_client_registration_info(self, client, request):
        return _registration_management(client, request.credential.value, getattr(request, "client_secret", None))

    def delete_client(self, client, request):
        clients.delete(client, actor=f"client:{client.client_id}")


registration_endpoint = ClientRegistration(authorization)
configuration_endpoint = ClientConfiguration(authorization)


def _respond(endpoint: ClientRegistrationEndpoint | ClientConfigurationEndpoint):
    """Authlib's ``create_endpoint_response``, in one transaction: committed on success, nothing kept on error.

    A rejected registration therefore leaves its initial access token unspent.
    """
    json_request = endpoint.create_endpoint_request(flask_request)
    try:
        response = authorization.handle_response(*endpoint(json_request))
    except OAuth2Error as error:
        db.session.rollback()
        return authorization.handle_error_response(json_request, error)
    db.session.commit()
    return response


@blueprint.post("/register")
@csrf.exempt
def register():
    return _respond(registration_endpoint)


@blueprint.route("/register/<client_id>", methods=["GET", "PUT", "DELETE"])
@csrf.exempt
def client_configuration(client_id: str):
    return _respond(configuration_endpoint)
