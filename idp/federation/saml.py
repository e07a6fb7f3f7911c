"""SAML 2.0 Web SSO service provider towards an upstream (MyGuichet, LuxTrust's gateway), with python3-saml.

SAML 2.0 Core and Bindings (OASIS saml-core-2.0-os, saml-bindings-2.0-os): AuthnRequests are
signed and sent with HTTP-Redirect (Bindings §3.4); Responses arrive with HTTP-POST (§3.5) and are
checked in full by python3-saml in strict mode: XML schema, signature of the assertion with the
upstream's metadata certificate (a signed response alone is not enough), issuer, audience,
destination and recipient, NotBefore/NotOnOrAfter with python3-saml's clock drift, no DTD (entity
expansion). Each assertion is used once: its id goes to the shared replay cache. InResponseTo is
matched with the browser's pending request by the caller (the POST comes cross-site, without
cookies). Single logout messages (HTTP-Redirect, Bindings §3.4.4.1) must carry the upstream's
signature, and an upstream's LogoutRequest is acted on once, while fresh. The URLs our checks
compare with are built from ``ISSUER``, never from the Host header.
"""

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from flask import current_app
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants as Constants
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser as MetadataParser
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from .. import clock, replay_cache
from ..assurance import ACR_VALUES
from .keys import ensure_key_pair
from .upstream import ResponseRejected, UpstreamIdentity, UpstreamUnavailable

METADATA_TIMEOUT = 5  # seconds: a slow upstream must not hold the login page
LOGOUT_REQUEST_MAX_AGE = 300  # seconds: an upstream's LogoutRequest is acted on this soon after it was issued, once
_metadata_cache: dict[str, tuple[float, dict]] = {}


def sp_key_pair() -> tuple[str, str]:
    """Our SP's private key and certificate (PEM): configured files, or generated into the instance folder."""
    federation = current_app.config.get("FEDERATION") or {}
    key_file, cert_file = federation.get("sp_key_file"), federation.get("sp_cert_file")
    if not (key_file and cert_file):
        key_file, cert_file = ensure_key_pair(Path(current_app.instance_path) / "saml", "sp", "eSanté IdP SAML SP")
    return Path(key_file).read_text(), Path(cert_file).read_text()


def _idp_settings(metadata_url: str) -> dict:
    """The upstream's entity id, endpoints and certificate from its metadata, cached for a while."""
    now = time.monotonic()
    cached = _metadata_cache.get(metadata_url)
    if cached and cached[0] > now:
        return cached[1]
    try:
        document = MetadataParser.get_metadata(metadata_url, validate_cert=True, timeout=METADATA_TIMEOUT)
        parsed = MetadataParser.parse(document)
    except Exception as error:  # noqa: BLE001 - network, HTTP and XML failures all mean "unavailable"
        raise UpstreamUnavailable(f"metadata {metadata_url}: {error}") from None
    idp = parsed.get("idp") or {}
    if not idp.get("entityId") or not idp.get("singleSignOnService", {}).get("url") or not (idp.get("x509cert") or idp.get("x509certMulti")):
        raise UpstreamUnavailable(f"metadata {metadata_url} lacks an entity id, an SSO endpoint or a signing certificate")
    ttl = (current_app.config.get("FEDERATION") or {}).get("metadata_cache_seconds", 3600)
    _metadata_cache[metadata_url] = (now + ttl, idp)
    return idp


def forget_metadata() -> None:
    """Drop cached upstream metadata (an upstream rotated its keys, or tests start new stand-ins)."""
    _metadata_cache.clear()


class SamlUpstream:
    """One SAML upstream, configured by its ``FEDERATION["upstreams"]`` entry."""

    def __init__(self, name: str, settings: Mapping[str, Any]):
        self.name = name
        self.settings = settings
        self.label = settings.get("label", name)
        self.allow_unsolicited = bool(settings.get("allow_unsolicited"))
        self.step_up = bool(settings.get("step_up"))
        self.asserts_national_id = "national_id" in (settings.get("attributes") or {})

    # --- URLs and settings -------------------------------------------------------------------

    def url(self, endpoint: str) -> str:
        return f"{current_app.config['ISSUER']}/saml/{self.name}/{endpoint}"

    def _settings(self, requested_acr: str | None = None, with_idp: bool = True, logout: bool = False) -> OneLogin_Saml2_Settings:
        """python3-saml's settings; ``logout``: for single logout messages, which must be signed.

        A LogoutRequest or LogoutResponse by HTTP-Redirect has no signed assertion inside: its
        only integrity is the query-string signature (Bindings §3.4.4.1), and python3-saml
        checks one only when it is present unless ``wantMessagesSigned`` is set. Login
        responses keep relying on the signed assertion (``wantAssertionsSigned``).
        """
        key, cert = sp_key_pair()
        document: dict[str, Any] = {
            "strict": True,
            "debug": False,
            "sp": {
                "entityId": self.url("metadata"),
                "assertionConsumerService": {"url": self.url("acs"), "binding": Constants.BINDING_HTTP_POST},
                "singleLogoutService": {"url": self.url("sls"), "binding": Constants.BINDING_HTTP_REDIRECT},
                "NameIDFormat": Constants.NAMEID_PERSISTENT,
                "x509cert": cert,
                "privateKey": key,
            },
            "security": {
                "authnRequestsSigned": True,
                "logoutRequestSigned": True,
                "logoutResponseSigned": True,
                "signMetadata": True,
                "wantAssertionsSigned": True,
                "wantMessagesSigned": logout,
                "wantNameId": True,
                "wantAssertionsEncrypted": False,
                "wantXMLValidation": True,
                "requestedAuthnContext": [requested_acr] if requested_acr else False,
                "requestedAuthnContextComparison": "minimum",
                "signatureAlgorithm": Constants.RSA_SHA256,
                "digestAlgorithm": Constants.SHA256,
                "rejectDeprecatedAlgorithm": True,
                "rejectUnsolicitedResponsesWithInResponseTo": False,
            },
        }
        if with_idp:
            document["idp"] = _idp_settings(self.settings["metadata_url"])
            return OneLogin_Saml2_Settings(document)
        return OneLogin_Saml2_Settings(document, sp_validation_only=True)

    def _request_data(self, endpoint: str, get: Mapping[str, str] | None = None, post: Mapping[str, str] | None = None) -> dict:
        issuer = urlsplit(current_app.config["ISSUER"])
        https = issuer.scheme == "https"
        return {
            "https": "on" if https else "off",
            "http_host": issuer.netloc,
            "script_name": issuer.path.rstrip("/") + f"/saml/{self.name}/{endpoint}",
            "get_data": dict(get or {}),
            "post_data": dict(post or {}),
        }

    # --- metadata, login, logout ---------------------------------------------------------------

    def sp_metadata(self) -> str:
        settings = self._settings(with_idp=False)
        metadata = settings.get_sp_metadata()  # signed with the SP key ("signMetadata")
        if isinstance(metadata, bytes):
            metadata = metadata.decode()
        errors = settings.validate_metadata(metadata)
        if errors:
            raise UpstreamUnavailable("our SP metadata does not validate: " + ", ".join(errors))
        return metadata

    def start_login(self, relay_state: str, requested_acr: str | None = None, force_authn: bool = False) -> tuple[str, str]:
        auth = OneLogin_Saml2_Auth(self._request_data("login"), self._settings(requested_acr))
        url = auth.login(return_to=relay_state, force_authn=force_authn)
        return url, auth.get_last_request_id()

    def finish_login(self, form: Mapping[str, str]) -> UpstreamIdentity:
        encoded = form.get("SAMLResponse")
        if not encoded:
            raise ResponseRejected("no_response")
        settings = self._settings()
        try:
            response = OneLogin_Saml2_Response(settings, encoded)
            response.is_valid(self._request_data("acs", post=form), raise_exceptions=True)
            # Reading the attributes checks them too (a Name given twice is refused), so it
            # belongs with the checks: its refusal is a rejected answer, not an error of ours.
            identity = self._identity(response)
        except Exception as error:  # noqa: BLE001 - python3-saml raises plain Exception too; each means "rejected"
            raise ResponseRejected(_reason(error)) from None
        assertion_id = response.get_assertion_id()
        expires = response.get_assertion_not_on_or_after()
        expires_at = datetime.fromtimestamp(expires, timezone.utc).replace(tzinfo=None) if expires else clock.now() + timedelta(hours=1)
        if not replay_cache.first_use(f"saml:{self.name}", assertion_id, expires_at + timedelta(seconds=Constants.ALLOWED_CLOCK_DRIFT)):
            raise ResponseRejected("replayed")
        return identity

    def _identity(self, response: OneLogin_Saml2_Response) -> UpstreamIdentity:
        attributes = response.get_attributes()
        mapping = self.settings.get("attributes") or {}

        def attribute(name: str) -> str | None:
            values = attributes.get(mapping.get(name, ""), [])
            return str(values[0]).strip() if values and str(values[0]).strip() else None

        contexts = response.get_authn_contexts()
        acr = next((value for value in contexts if value in ACR_VALUES), self.settings.get("acr") or ACR_VALUES[1])
        device = attribute("device")
        amr_value = (self.settings.get("amr_by_device") or {}).get(device or "")
        nameid = response.get_nameid_data()
        return UpstreamIdentity(
            upstream=self.name,
            subject=nameid["Value"],
            acr=acr,
            amr=[amr_value] if amr_value else [],
            national_id=attribute("national_id"),
            given_name=attribute("given_name"),
            family_name=attribute("family_name"),
            email=attribute("email"),
            phone=attribute("phone"),
            name_id_format=nameid.get("Format"),
            session_index=response.get_session_index(),
            in_response_to=response.get_in_response_to(),
        )

    def logout_url(self, name_id: str, name_id_format: str | None, session_index: str | None, relay_state: str) -> tuple[str, str]:
        """SP-initiated single logout (SAML Profiles §4.4): a signed LogoutRequest by HTTP-Redirect."""
        settings = self._settings()
        if not settings.get_idp_data().get("singleLogoutService", {}).get("url"):
            raise UpstreamUnavailable("the upstream publishes no single logout endpoint")
        auth = OneLogin_Saml2_Auth(self._request_data("logout"), settings)
        url = auth.logout(return_to=relay_state, name_id=name_id, session_index=session_index, name_id_format=name_id_format)
        return url, auth.get_last_request_id()

    def process_logout(self, query: Mapping[str, str], request_id: str | None) -> tuple[str | None, str | None]:
        """Handle a LogoutResponse to our request, or the upstream's own LogoutRequest.

        Returns (URL to send the LogoutResponse to, NameID the upstream logged out); raises
        :class:`ResponseRejected` when the message fails its checks (signature, destination, InResponseTo).
        """
        settings = self._settings(logout=True)
        auth = OneLogin_Saml2_Auth(self._request_data("sls", get=query), settings)
        try:
            redirect_to = auth.process_slo(keep_local_session=True, request_id=request_id)
        except Exception as error:  # noqa: BLE001 - malformed XML raises before get_errors() applies
            raise ResponseRejected(_reason(error)) from None
        if auth.get_errors():
            raise ResponseRejected(auth.get_last_error_reason() or ",".join(auth.get_errors()))
        name_id = None
        if "SAMLRequest" in query:
            xml = OneLogin_Saml2_Logout_Request(settings, query["SAMLRequest"]).get_xml()
            self._spend_logout_request(xml)
            name_id = OneLogin_Saml2_Logout_Request.get_nameid(xml)
        return redirect_to, name_id

    def _spend_logout_request(self, xml: str) -> None:
        """A LogoutRequest works once and only while fresh: a signed logout URL seen once (browser
        history, a proxy's log) must not end the patient's later sessions (the NameID is persistent)."""
        issued = OneLogin_Saml2_Utils.parse_SAML_to_time(OneLogin_Saml2_XML.to_etree(xml).get("IssueInstant"))
        now = clock.timestamp()
        if abs(now - issued) > LOGOUT_REQUEST_MAX_AGE + Constants.ALLOWED_CLOCK_DRIFT:
            raise ResponseRejected("stale_logout_request")
        expires_at = datetime.fromtimestamp(issued + LOGOUT_REQUEST_MAX_AGE + 2 * Constants.ALLOWED_CLOCK_DRIFT, timezone.utc)
        if not replay_cache.first_use(f"saml-logout:{self.name}", OneLogin_Saml2_Logout_Request.get_id(xml),
                                      expires_at.replace(tzinfo=None)):
            raise ResponseRejected("replayed_logout_request")


def _reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text[:200]
