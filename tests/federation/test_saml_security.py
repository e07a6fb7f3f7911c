"""Our SAML service provider: metadata, signed requests, and every forged or stale answer refused
with a clear page and an audit event; an upstream that is down leaves password login working."""

import copy
import re
import time
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from idp import sso_session
from idp.federation import saml
from idp.federation.sandbox.citizens import Citizen
from tests.conftest import csrf_token
from tests.federation.conftest import decoded, encoded, hidden_fields, post_to_acs, saml_round_trip, stand_in_answer
from tests.flows.conftest import audit_names

SAMLP, SAML, DS = "urn:oasis:names:tc:SAML:2.0:protocol", "urn:oasis:names:tc:SAML:2.0:assertion", "http://www.w3.org/2000/09/xmldsig#"
RSA_SHA256, SHA256 = OneLogin_Saml2_Constants.RSA_SHA256, OneLogin_Saml2_Constants.SHA256
MARIE = Citizen("mg-marie", "Marie", "Schmit", "1970010199951", "marie@example.lu", None)


def valid_answer(client, federation, upstream="myguichet", citizen=MARIE) -> dict:
    federation.stand_in(upstream).add_citizen(citizen)
    started = client.get(f"/federation/{upstream}/start")
    return stand_in_answer(federation, started.headers["Location"], citizen.subject)


def assert_refused(response, reason_part: str | None = None):
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert "n'a pas pu être vérifiée" in unescape(response.get_data(as_text=True))
    from idp import audit

    last = audit.recent(limit=1)[0]
    assert last.name == "federation:response_rejected"
    if reason_part:
        assert reason_part.lower() in last.details["reason"].lower(), last.details


def resigned(federation, form: dict, change, sign_assertion: bool = True) -> dict:
    """The stand-in's valid answer with ``change`` applied, signed again with the stand-in's own key:
    only the changed rule can refuse it."""
    document = etree.fromstring(decoded(form).encode())
    for signature in document.iter(f"{{{DS}}}Signature"):
        signature.getparent().remove(signature)
    change(document)
    state = federation.myguichet.state
    key, cert = state.key_file.read_text(), state.cert_file.read_text()
    if sign_assertion:
        assertion = document.find(f"{{{SAML}}}Assertion")
        signed = etree.fromstring(OneLogin_Saml2_Utils.add_sign(etree.tostring(assertion), key, cert, sign_algorithm=RSA_SHA256, digest_algorithm=SHA256))
        document.replace(assertion, signed)
    xml = OneLogin_Saml2_Utils.add_sign(etree.tostring(document), key, cert, sign_algorithm=RSA_SHA256, digest_algorithm=SHA256)
    return {"SAMLResponse": encoded(xml.decode() if isinstance(xml, bytes) else xml)}


def test_a_resigned_answer_is_accepted(client, federation):
    """The control for the tests below: re-signing alone changes nothing."""
    form = resigned(federation, valid_answer(client, federation), lambda document: None)
    assert post_to_acs(client, "myguichet", form).status_code == 404  # accepted; Marie is just not in this registry
    assert audit_names()[-1] == "federation:unknown_identity"


def test_sp_metadata_is_published_signed_with_our_endpoints(client, federation):
    response = client.get("/saml/myguichet/metadata")
    assert response.status_code == 200 and response.mimetype == "application/samlmetadata+xml"
    document = etree.fromstring(response.data)
    provider = federation.provider.url
    assert document.get("entityID") == f"{provider}/saml/myguichet/metadata"
    descriptor = document.find("{urn:oasis:names:tc:SAML:2.0:metadata}SPSSODescriptor")
    assert descriptor.get("AuthnRequestsSigned") == "true" and descriptor.get("WantAssertionsSigned") == "true"
    acs = descriptor.find("{urn:oasis:names:tc:SAML:2.0:metadata}AssertionConsumerService")
    assert acs.get("Location") == f"{provider}/saml/myguichet/acs" and acs.get("Binding").endswith("HTTP-POST")
    assert document.find(f"{{{DS}}}Signature") is not None
    assert client.get("/saml/nowhere/metadata").status_code == 404


def test_authn_requests_are_signed_and_sent_by_redirect(client, federation):
    started = client.get("/federation/luxtrust/start")
    query = parse_qs(urlsplit(started.headers["Location"]).query)
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"] and query["Signature"][0]
    assert "federation:login_started" in audit_names()


def test_a_tampered_assertion_is_refused(client, federation):
    form = valid_answer(client, federation)
    form["SAMLResponse"] = encoded(decoded(form).replace("marie@example.lu", "evil@example.lu"))
    assert_refused(post_to_acs(client, "myguichet", form), "signature")


def test_an_unsigned_assertion_is_refused_even_in_a_signed_response(client, federation):
    form = resigned(federation, valid_answer(client, federation), lambda document: None, sign_assertion=False)
    assert_refused(post_to_acs(client, "myguichet", form), "assertion")


def set_text(path: str, value: str):
    def change(document):
        document.find(path).text = value
    return change


def set_attribute(path: str, name: str, value: str):
    def change(document):
        for element in document.iter(path):
            element.set(name, value)
    return change


def test_an_assertion_for_another_audience_is_refused(client, federation):
    audience = f"{{{SAML}}}Assertion/{{{SAML}}}Conditions/{{{SAML}}}AudienceRestriction/{{{SAML}}}Audience"
    form = resigned(federation, valid_answer(client, federation), set_text(audience, "https://other-sp.example.lu/metadata"))
    assert_refused(post_to_acs(client, "myguichet", form), "audience")


def test_an_assertion_for_another_recipient_is_refused(client, federation):
    form = resigned(federation, valid_answer(client, federation),
                    set_attribute(f"{{{SAML}}}SubjectConfirmationData", "Recipient", "https://other-sp.example.lu/acs"))
    assert_refused(post_to_acs(client, "myguichet", form), "subjectconfirmation")


def test_a_response_for_another_destination_is_refused(client, federation):
    form = resigned(federation, valid_answer(client, federation), lambda document: document.set("Destination", "https://other-sp.example.lu/acs"))
    assert_refused(post_to_acs(client, "myguichet", form), "received at")


def test_an_expired_assertion_is_refused(client, federation):
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    form = resigned(federation, valid_answer(client, federation), set_attribute(f"{{{SAML}}}Conditions", "NotOnOrAfter", past))
    assert_refused(post_to_acs(client, "myguichet", form), "expired")


def test_an_assertion_from_the_future_is_refused(client, federation):
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    form = resigned(federation, valid_answer(client, federation), set_attribute(f"{{{SAML}}}Conditions", "NotBefore", future))
    assert_refused(post_to_acs(client, "myguichet", form), "not yet valid")


def test_an_assertion_from_another_issuer_is_refused(client, federation):
    form = resigned(federation, valid_answer(client, federation),
                    set_text(f"{{{SAML}}}Assertion/{{{SAML}}}Issuer", "https://evil-idp.example.lu/metadata"))
    assert_refused(post_to_acs(client, "myguichet", form), "issuer")


def test_a_replayed_assertion_is_refused(client, federation):
    form = valid_answer(client, federation)
    first = client.post("/saml/myguichet/acs", data=form)
    assert first.status_code == 303
    assert_refused(client.application.test_client().post("/saml/myguichet/acs", data=form), "replayed")


def test_an_unsolicited_response_is_refused_where_not_allowed(client, federation):
    federation.luxtrust.add_citizen(Citizen("lt-marie", "Marie", "Schmit"))
    answer = federation.luxtrust.app.test_client().post("/idp-initiated", data={"citizen": "lt-marie", "device": "token"})
    assert_refused(post_to_acs(client, "luxtrust", hidden_fields(answer.get_data(as_text=True))), "unsolicited")


def test_an_answer_to_another_browsers_request_is_refused(client, federation):
    form = valid_answer(client, federation)
    assert_refused(post_to_acs(client.application.test_client(), "myguichet", form), "in_response_to")


def test_a_signature_wrapping_attempt_is_refused(client, federation):
    form = valid_answer(client, federation)
    document = etree.fromstring(decoded(form).encode())
    signed = document.find(f"{{{SAML}}}Assertion")
    forged = copy.deepcopy(signed)
    forged.set("ID", "_forged")
    forged.remove(forged.find(f"{{{DS}}}Signature"))
    forged.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID").text = "mg-somebody-else"
    document.insert(list(document).index(signed), forged)
    form["SAMLResponse"] = encoded(etree.tostring(document).decode())
    assert_refused(post_to_acs(client, "myguichet", form))


def test_an_entity_expansion_attempt_is_refused(client, federation):
    form = valid_answer(client, federation)
    bomb = '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    xml = decoded(form)
    xml = bomb + xml.replace("marie@example.lu", "&c;")
    form["SAMLResponse"] = encoded(xml)
    assert_refused(post_to_acs(client, "myguichet", form))


def test_garbage_is_refused(client, federation):
    federation.myguichet.state.server()
    assert_refused(client.post("/saml/myguichet/acs", data={"SAMLResponse": "not base64 xml"}))
    assert_refused(client.post("/saml/myguichet/acs", data={}), "no_response")


def test_an_upstream_that_is_down_gets_a_clear_page_and_password_login_still_works(client, federation, patients, app):
    app.config["FEDERATION"]["upstreams"]["luxtrust"]["metadata_url"] = "http://127.0.0.1:9/saml/metadata"
    saml.forget_metadata()
    page = client.get("/federation/luxtrust/start")
    assert page.status_code == 503
    assert "LuxTrust est momentanément indisponible" in unescape(page.get_data(as_text=True))
    assert audit_names()[-1] == "federation:upstream_unavailable"
    patient = patients.create()
    assert patients.login(patient).status_code == 303


@pytest.mark.settings(FEDERATION={"enabled": False, "upstreams": {}})
def test_federation_can_be_turned_off(client):
    assert "Connexion avec LuxTrust" not in client.get("/login").get_data(as_text=True)
    assert client.get("/federation/luxtrust/start").status_code == 404
    assert client.get("/saml/myguichet/metadata").status_code == 404


def test_sp_initiated_single_logout_ends_both_sessions(client, federation, patients):
    patient = patients.create()
    federation.myguichet.add_citizen(Citizen("mg-p", "Marie", "Schmit", patient.matricule, None, None))
    saml_round_trip(client, federation, "/federation/myguichet/start", "mg-p")
    page = client.get("/federation/myguichet/consent")
    client.post("/federation/myguichet/consent", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "consent": "y"})
    settings = client.get("/account/settings").get_data(as_text=True)
    to_myguichet = client.post("/federation/logout", data={"csrf_token": csrf_token(settings)})
    assert to_myguichet.status_code == 303 and "/saml/slo?" in to_myguichet.headers["Location"]
    assert sso_session.live_sessions(patient.account.id) == []
    parts = urlsplit(to_myguichet.headers["Location"])
    answered = federation.myguichet.app.test_client().get(parts.path + "?" + parts.query)
    assert answered.status_code == 303
    back = urlsplit(answered.headers["Location"])
    done = client.get(back.path + "?" + back.query)
    assert done.status_code == 200
    assert "Vous êtes également déconnecté de MyGuichet.lu" in unescape(done.get_data(as_text=True))
    assert "federation:logout" in audit_names()


def _logout_actions(page: str) -> set[str]:
    return set(re.findall(r'<form method="post" action="([^"]+)"[^>]*>\s*<input type="hidden" name="csrf_token"[^>]*>\s*'
                          r'<input type="hidden" name="confirm" value="yes">', page))


def test_the_patients_logout_button_ends_the_upstream_session_too(client, federation, patients):
    """"Se déconnecter" in the account menu and on "Mes services eSanté" goes to the single logout
    after a MyGuichet login, and to the provider's own logout after a password login."""
    patient = patients.create()
    assert patients.login(patient).status_code == 303
    assert _logout_actions(client.get("/account").get_data(as_text=True)) == {"/logout"}
    assert _logout_actions(client.get("/services").get_data(as_text=True)) == {"/logout"}
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/services").get_data(as_text=True)), "confirm": "yes"})

    federation.myguichet.add_citizen(Citizen("mg-b", "Marie", "Schmit", patient.matricule, None, None))
    saml_round_trip(client, federation, "/federation/myguichet/start", "mg-b")
    page = client.get("/federation/myguichet/consent")
    client.post("/federation/myguichet/consent", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "consent": "y"})
    assert _logout_actions(client.get("/account").get_data(as_text=True)) == {"/federation/logout"}
    services = client.get("/services").get_data(as_text=True)
    assert _logout_actions(services) == {"/federation/logout"}
    to_myguichet = client.post("/federation/logout", data={"csrf_token": csrf_token(services), "confirm": "yes"})
    assert to_myguichet.status_code == 303 and "/saml/slo?" in to_myguichet.headers["Location"]


def test_a_logout_response_nobody_asked_for_is_refused(client, federation):
    assert_refused(client.get("/saml/myguichet/sls?SAMLResponse=abc"), "unsolicited_logout_response")


def test_myguichet_may_log_the_patient_out_itself(client, federation, patients):
    """IdP-initiated single logout: a signed LogoutRequest ends our sessions of that NameID."""
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
    from saml2.xmldsig import SIG_RSA_SHA256

    patient = patients.create()
    federation.myguichet.add_citizen(Citizen("mg-p", "Marie", "Schmit", patient.matricule, None, None))
    saml_round_trip(client, federation, "/federation/myguichet/start", "mg-p")
    page = client.get("/federation/myguichet/consent")
    client.post("/federation/myguichet/consent", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "consent": "y"})
    assert sso_session.live_sessions(patient.account.id)
    server = federation.myguichet.state.server()
    destination = f"{federation.provider.url}/saml/myguichet/sls"
    _, logout_request = server.create_logout_request(destination, f"{federation.provider.url}/saml/myguichet/metadata",
                                                      name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text="mg-p"), sign=False)
    binding = server.apply_binding(BINDING_HTTP_REDIRECT, str(logout_request), destination, relay_state="", sign=True, sigalg=SIG_RSA_SHA256)
    location = urlsplit(dict(binding["headers"])["Location"])
    answered = client.application.test_client().get(location.path + "?" + location.query)
    assert answered.status_code == 303 and answered.headers["Location"].startswith(federation.myguichet.server.url + "/saml/slo?SAMLResponse=")
    assert sso_session.live_sessions(patient.account.id) == []


def test_the_stand_in_verifies_our_request_signature(client, federation):
    """pysaml2 checks the HTTP-Redirect signature of our AuthnRequest: the same URL without it is refused."""
    started = urlsplit(client.get("/federation/luxtrust/start").headers["Location"])
    stand_in = federation.luxtrust.app.test_client()
    assert stand_in.get(started.path + "?" + started.query).status_code == 200
    unsigned = "&".join(part for part in started.query.split("&") if not part.startswith("Signature="))
    assert stand_in.get(started.path + "?" + unsigned).status_code == 400


@pytest.mark.settings(RATE_LIMIT_LOGIN="2 per minute")
def test_the_assertion_consumer_is_rate_limited(client, federation):
    for _ in range(2):
        assert client.post("/saml/myguichet/acs", data={}).status_code == 400
    assert client.post("/saml/myguichet/acs", data={}).status_code == 429


def test_a_signed_response_with_a_duplicated_attribute_is_refused_cleanly(client, federation):
    """python3-saml refuses an Attribute name given twice when it reads the attributes; that is a
    rejected answer (400 page, audited), not an error of ours."""
    def duplicate_an_attribute(document):
        statement = document.find(f"{{{SAML}}}Assertion/{{{SAML}}}AttributeStatement")
        statement.append(copy.deepcopy(statement.find(f"{{{SAML}}}Attribute")))

    form = resigned(federation, valid_answer(client, federation), duplicate_an_attribute)
    assert_refused(post_to_acs(client, "myguichet", form), "duplicated")
