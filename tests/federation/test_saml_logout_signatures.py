"""Single logout messages from the upstream must be signed by the upstream (SAML Bindings §3.4.4.1).

python3-saml checks a signature only when one is present; a LogoutRequest or LogoutResponse by
HTTP-Redirect carries its signature in the query string, so without ``wantMessagesSigned`` anyone
could end a patient's federated sessions with a plain URL. The stand-in (pysaml2, its own key)
signs real messages; the unsigned and forged ones are built from the same messages.
"""

from urllib.parse import urlencode, urlsplit

import xmlsec
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from saml2 import BINDING_HTTP_REDIRECT
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.xmldsig import SIG_RSA_SHA256

from idp import sso_session
from idp.federation.sandbox.citizens import Citizen
from tests.conftest import csrf_token
from tests.federation.conftest import saml_round_trip
from tests.federation.test_saml_security import assert_refused


def logged_in_through_myguichet(client, federation, patients, subject: str = "mg-p"):
    patient = patients.create()
    federation.myguichet.add_citizen(Citizen(subject, "Marie", "Schmit", patient.matricule, None, None))
    saml_round_trip(client, federation, "/federation/myguichet/start", subject)
    page = client.get("/federation/myguichet/consent")
    client.post("/federation/myguichet/consent", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "consent": "y"})
    assert sso_session.live_sessions(patient.account.id)
    return patient


def logout_request_query(federation, subject: str, sign: bool) -> str:
    """The stand-in's LogoutRequest for ``subject`` by HTTP-Redirect, signed by its own key or not."""
    server = federation.myguichet.state.server()
    destination = f"{federation.provider.url}/saml/myguichet/sls"
    _, request = server.create_logout_request(destination, f"{federation.provider.url}/saml/myguichet/metadata",
                                              name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=subject), sign=False)
    binding = server.apply_binding(BINDING_HTTP_REDIRECT, str(request), destination, relay_state="", sign=sign,
                                   sigalg=SIG_RSA_SHA256 if sign else None)
    return urlsplit(dict(binding["headers"])["Location"]).query


def without_signature(query: str) -> str:
    return "&".join(part for part in query.split("&") if not part.startswith(("Signature=", "SigAlg=")))


def signed_by(query: str, key_pem: str, message: str) -> str:
    """``query`` signed again (HTTP-Redirect, RSA-SHA256) with another key than the upstream's."""
    kept = [part for part in without_signature(query).split("&") if part.startswith((f"{message}=", "RelayState="))]
    sig_alg = "SigAlg=" + OneLogin_Saml2_Utils.escape_url(OneLogin_Saml2_Constants.RSA_SHA256)
    signed_part = "&".join([*kept, sig_alg])
    signature = OneLogin_Saml2_Utils.sign_binary(signed_part, key_pem, algorithm=xmlsec.Transform.RSA_SHA256)
    return signed_part + "&" + urlencode({"Signature": OneLogin_Saml2_Utils.b64encode(signature)})


def test_a_signed_logout_request_from_the_upstream_ends_the_session(client, federation, patients):
    """The control: the stand-in's own signature is accepted."""
    patient = logged_in_through_myguichet(client, federation, patients)
    answered = client.application.test_client().get("/saml/myguichet/sls?" + logout_request_query(federation, "mg-p", sign=True))
    assert answered.status_code == 303
    assert sso_session.live_sessions(patient.account.id) == []


def test_an_unsigned_logout_request_is_refused_and_ends_nothing(client, federation, patients):
    patient = logged_in_through_myguichet(client, federation, patients)
    stranger = client.application.test_client()
    assert_refused(stranger.get("/saml/myguichet/sls?" + logout_request_query(federation, "mg-p", sign=False)), "not signed")
    assert sso_session.live_sessions(patient.account.id)


def test_a_logout_request_signed_with_another_key_is_refused_and_ends_nothing(client, federation, patients, key_folder):
    patient = logged_in_through_myguichet(client, federation, patients)
    forged = signed_by(logout_request_query(federation, "mg-p", sign=True), (key_folder / "saml" / "sp.key").read_text(), "SAMLRequest")
    assert_refused(client.application.test_client().get("/saml/myguichet/sls?" + forged), "signature")
    assert sso_session.live_sessions(patient.account.id)


def test_a_signed_logout_request_works_only_once(client, federation, patients):
    """A logout URL seen once (browser history, a proxy log) cannot end the patient's later sessions."""
    query = logout_request_query(federation, "mg-p", sign=True)
    patient = logged_in_through_myguichet(client, federation, patients)
    assert client.application.test_client().get("/saml/myguichet/sls?" + query).status_code == 303
    assert saml_round_trip(client, federation, "/federation/myguichet/start", "mg-p").status_code == 303  # linked: logged in again
    assert sso_session.live_sessions(patient.account.id)
    assert_refused(client.application.test_client().get("/saml/myguichet/sls?" + query), "replayed")
    assert sso_session.live_sessions(patient.account.id)


def _logout_response_query(client, federation) -> str:
    """Our SP-initiated logout, answered by the stand-in: the query of its signed LogoutResponse."""
    settings = client.get("/account/settings").get_data(as_text=True)
    to_myguichet = client.post("/federation/logout", data={"csrf_token": csrf_token(settings)})
    parts = urlsplit(to_myguichet.headers["Location"])
    answered = federation.myguichet.app.test_client().get(parts.path + "?" + parts.query)
    assert answered.status_code == 303
    return urlsplit(answered.headers["Location"]).query


def test_an_unsigned_logout_response_is_refused(client, federation, patients):
    logged_in_through_myguichet(client, federation, patients)
    query = without_signature(_logout_response_query(client, federation))
    assert_refused(client.get("/saml/myguichet/sls?" + query), "not signed")


def test_a_logout_response_signed_with_another_key_is_refused(client, federation, patients, key_folder):
    logged_in_through_myguichet(client, federation, patients)
    forged = signed_by(_logout_response_query(client, federation), (key_folder / "saml" / "sp.key").read_text(), "SAMLResponse")
    assert_refused(client.get("/saml/myguichet/sls?" + forged), "signature")


def test_a_signed_logout_response_to_our_request_is_accepted(client, federation, patients):
    logged_in_through_myguichet(client, federation, patients)
    done = client.get("/saml/myguichet/sls?" + _logout_response_query(client, federation))
    assert done.status_code == 200
