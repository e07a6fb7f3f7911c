""""Activation via MyGuichet" and the login through MyGuichet, through our SAML SP and the pysaml2 stand-in."""

from html import unescape

from idp import account as accounts, cgu_acceptance, federated_identity, national_id_consent, sso_session
from idp.federation.sandbox.citizens import Citizen
from tests.conftest import csrf_token
from tests.federation.conftest import saml_round_trip
from tests.flows.conftest import audit_names


def citizen_for(federation, patient, subject="mg-marie", email="marie.mg@example.lu", phone="+352 621 555 444") -> Citizen:
    return federation.myguichet.add_citizen(Citizen(subject, patient.account.given_name, patient.account.family_name, patient.matricule,
                                                    email, phone))


def consent(client, accept=True):
    page = client.get("/federation/myguichet/consent")
    return client.post("/federation/myguichet/consent", data={"csrf_token": csrf_token(page.get_data(as_text=True)),
                                                             **({"consent": "y"} if accept else {})})


def accept_cgu(client, accept=True):
    page = client.get("/federation/myguichet/cgu")
    return client.post("/federation/myguichet/cgu", data={"csrf_token": csrf_token(page.get_data(as_text=True)),
                                                         **({"accept": "y"} if accept else {})})



def test_a_pending_patient_activates_through_myguichet_without_a_letter(client, federation, patients):
    patient = patients.create(status="pending", email=None, mobile=None)
    citizen_for(federation, patient)
    arrived = saml_round_trip(client, federation, "/federation/myguichet/start", "mg-marie")
    assert arrived.status_code == 303 and arrived.headers["Location"].endswith("/federation/myguichet/consent")
    page = unescape(client.get("/federation/myguichet/consent").get_data(as_text=True))
    assert "Je consens à ce que MyGuichet.lu partage mon identifiant national avec l'Agence eSanté." in page
    assert "Ce consentement est révocable à tout moment dans l'onglet Paramètres." in page
    assert consent(client).headers["Location"].endswith("/federation/myguichet/cgu")
    cgu_page = client.get("/federation/myguichet/cgu").get_data(as_text=True)
    assert "En cochant cette case, je reconnais avoir lu et accepté" in cgu_page
    done = accept_cgu(client)
    assert done.headers["Location"].endswith("/federation/myguichet/activated")
    assert "Votre compte eSanté est activé !" in client.get("/federation/myguichet/activated").get_data(as_text=True)

    account = accounts.get(patient.account.id)
    assert account.is_active and account.activated_at is not None
    assert (account.email, account.mobile, account.preferred_channel) == ("marie.mg@example.lu", "+352621555444", "sms")
    assert cgu_acceptance.latest(account.id).context == "myguichet"
    given = national_id_consent.current(account.id)
    assert given.text_version == national_id_consent.TEXT_VERSION and given.given_at is not None
    assert [identity.subject for identity in federated_identity.of_account(account.id, "myguichet")] == ["mg-marie"]
    assert client.get("/account").status_code == 200  # logged in
    assert {"national_id_consent:given", "federation:identity_linked", "account:activated", "login:succeeded"} <= set(audit_names())


def test_nothing_is_written_before_the_cgu_are_accepted(client, federation, patients):
    patient = patients.create(status="pending")
    citizen_for(federation, patient)
    saml_round_trip(client, federation, "/federation/myguichet/start", "mg-marie")
    refused = consent(client, accept=False)
    assert refused.status_code == 400 and "Sans ce consentement" in refused.get_data(as_text=True)
    consent(client)
    assert accept_cgu(client, accept=False).status_code == 400
    assert not accounts.get(patient.account.id).is_active
    assert national_id_consent.current(patient.account.id) is None
    assert federated_identity.of_account(patient.account.id) == []


def test_the_cgu_page_needs_the_consent_first(client, federation, patients):
    patient = patients.create(status="pending")
    citizen_for(federation, patient)
    saml_round_trip(client, federation, "/federation/myguichet/start", "mg-marie")
    assert client.get("/federation/myguichet/cgu").headers["Location"].endswith("/federation/myguichet/consent")


def test_an_unknown_national_identifier_gets_a_clear_page_and_the_helpdesk_route(client, federation):
    federation.myguichet.add_citizen(Citizen("mg-stranger", "Inconnu", "Registre", "1970010199951", "x@example.lu", None))
    page = saml_round_trip(client, federation, "/federation/myguichet/start", "mg-stranger")
    assert page.status_code == 404
    html = unescape(page.get_data(as_text=True))
    assert "ne figure pas dans le registre des assurés" in html
    assert "/activation/request?matricule=1970010199951" in html and "Je n'ai pas de code d'activation" in html
    assert audit_names()[-1] == "federation:unknown_identity"


def test_an_active_account_is_linked_after_the_consent_and_logged_in(client, federation, patients):
    patient = patients.create()
    citizen_for(federation, patient)
    saml_round_trip(client, federation, "/federation/myguichet/start?next=/account", "mg-marie")
    done = consent(client)
    assert done.status_code == 303 and done.headers["Location"].endswith("/account")
    assert federated_identity.find("myguichet", "mg-marie").account_id == patient.account.id
    assert accounts.get(patient.account.id).email == "patient@example.lu"  # an active profile is not overwritten
    assert client.get("/account").status_code == 200


def test_a_linked_consenting_patient_logs_in_through_myguichet_directly(client, federation, patients):
    patient = patients.create()
    citizen_for(federation, patient)
    saml_round_trip(client, federation, "/federation/myguichet/start", "mg-marie")
    consent(client)
    other_browser = client.application.test_client()
    back = saml_round_trip(other_browser, federation, "/federation/myguichet/start?next=/account", "mg-marie", device="smartcard")
    assert back.status_code == 303 and back.headers["Location"].endswith("/account")
    live = [row for row in sso_session.live_sessions(patient.account.id)]
    assert live[-1].acr == "http://eidas.europa.eu/LoA/high" and live[-1].amr == ["sc"]


def test_myguichet_may_start_the_login_itself(client, federation, patients):
    """IdP-initiated: the citizen clicks "Dossier de Soins Partagé (DSP)" on MyGuichet.lu."""
    patient = patients.create(status="pending")
    citizen_for(federation, patient)
    stand_in = federation.myguichet.app.test_client()
    answer = stand_in.post("/idp-initiated", data={"citizen": "mg-marie", "device": "token"})
    from tests.federation.conftest import hidden_fields, post_to_acs

    arrived = post_to_acs(client, "myguichet", hidden_fields(answer.get_data(as_text=True)))
    assert arrived.headers["Location"].endswith("/federation/myguichet/consent")


def test_revoking_the_consent_unlinks_myguichet_and_password_login_remains(client, federation, patients):
    patient = patients.create()
    citizen_for(federation, patient)
    saml_round_trip(client, federation, "/federation/myguichet/start", "mg-marie")
    consent(client)
    settings = client.get("/account/settings").get_data(as_text=True)
    assert "Révoquer mon consentement" in settings
    revoked = client.post("/account/settings/myguichet-consent/revoke", data={"csrf_token": csrf_token(settings)})
    assert revoked.status_code == 303
    assert national_id_consent.current(patient.account.id) is None
    assert federated_identity.find("myguichet", "mg-marie") is None
    assert {"national_id_consent:revoked", "federation:identity_unlinked"} <= set(audit_names())
    again = saml_round_trip(client.application.test_client(), federation, "/federation/myguichet/start", "mg-marie")
    assert again.headers["Location"].endswith("/federation/myguichet/consent")  # no login without a new consent
    password_browser = client.application.test_client()
    from tests.conftest import PatientFactory

    assert PatientFactory(client.application, password_browser).login(patient).status_code == 303


def test_an_expired_or_foreign_arrival_is_refused(client, federation, patients):
    assert client.get("/federation/myguichet/consent").status_code == 400
    assert client.get("/saml/myguichet/continue?arrival=made-up").status_code == 400


def test_the_esante_pages_lead_to_myguichet(client, federation):
    assert "/federation/myguichet/start" in client.get("/login").get_data(as_text=True)
    assert "/federation/myguichet/start" in client.get("/activation").get_data(as_text=True)
