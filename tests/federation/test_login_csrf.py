"""Login CSRF through unsolicited (IdP-initiated) MyGuichet answers.

An attacker gets a valid answer for himself from MyGuichet's "DSP" entry and either hands the
victim the continuation link, or makes the victim's browser post the answer itself (a form on
his page). The continuation belongs to the browser that posted; and a browser where another
person is logged in changes account only when its user says so.
"""

from html import unescape

from idp import federated_identity, national_id_consent, sso_session
from idp.extensions import db
from idp.federation.sandbox.citizens import Citizen
from tests.conftest import PatientFactory, csrf_token
from tests.federation.conftest import hidden_fields
from tests.flows.conftest import audit_names


def linked_myguichet_patient(federation, patients, subject: str, given_name: str, family_name: str):
    """A patient who uses MyGuichet: consent given, identity linked (logs in directly)."""
    patient = patients.create(given_name=given_name, family_name=family_name, mobile=f"+35262100{len(subject):04d}")
    federation.myguichet.add_citizen(Citizen(subject, given_name, family_name, patient.matricule, None, None))
    national_id_consent.give(patient.account.id)
    federated_identity.link(patient.account.id, "myguichet", subject)
    db.session.commit()
    return patient


def unsolicited_answer(federation, subject: str) -> dict:
    """MyGuichet's IdP-initiated answer for ``subject``, as its page would post it."""
    page = federation.myguichet.app.test_client().post("/idp-initiated", data={"citizen": subject, "device": "token"})
    assert page.status_code == 200
    return hidden_fields(page.get_data(as_text=True))


def is_logged_in_as(client, patient) -> bool:
    page = client.get("/account")
    return page.status_code == 200 and patient.matricule in unescape(page.get_data(as_text=True))


def test_the_continuation_link_is_worth_nothing_in_another_browser(app, client, federation, patients):
    attacker = linked_myguichet_patient(federation, patients, "mg-attacker", "Eve", "Mallory")
    posted = client.post("/saml/myguichet/acs", data=unsolicited_answer(federation, "mg-attacker"))
    assert posted.status_code == 303
    link = posted.headers["Location"]
    assert "arrival" not in link, "the answer's token travels in a cookie, never in the URL"

    victim_browser = app.test_client()
    victim = patients.create(given_name="Rita", family_name="Doe", mobile="+352621999888")
    PatientFactory(app, victim_browser).login(victim)
    opened = victim_browser.get(link)
    assert opened.status_code == 400 and "Cette connexion a expiré" in unescape(opened.get_data(as_text=True))
    assert is_logged_in_as(victim_browser, victim) and not is_logged_in_as(victim_browser, attacker)
    assert sso_session.live_sessions(attacker.account.id) == []

    fresh_browser = app.test_client()
    assert fresh_browser.get(link).status_code == 400
    assert not is_logged_in_as(fresh_browser, attacker)


def test_the_browser_that_posted_continues_as_before(client, federation, patients):
    patient = linked_myguichet_patient(federation, patients, "mg-marie", "Marie", "Schmit")
    posted = client.post("/saml/myguichet/acs", data=unsolicited_answer(federation, "mg-marie"))
    assert client.get(posted.headers["Location"]).status_code == 303
    assert is_logged_in_as(client, patient)


def test_an_answer_for_another_person_posted_into_a_logged_in_browser_asks_first(client, federation, patients):
    victim = patients.create(given_name="Rita", family_name="Doe", mobile="+352621999888")
    patients.login(victim)
    attacker = linked_myguichet_patient(federation, patients, "mg-attacker", "Eve", "Mallory")
    posted = client.post("/saml/myguichet/acs", data=unsolicited_answer(federation, "mg-attacker"))  # the attacker's auto-post
    question = client.get(posted.headers["Location"])
    assert question.status_code == 200
    page = unescape(question.get_data(as_text=True))
    assert "Vous êtes connecté(e) à eSanté en tant que R. Doe." in page
    assert "MyGuichet.lu demande de vous connecter en tant que E. Mallory." in page
    assert "Continuer en tant que E. Mallory" in page and "Rester connecté(e) en tant que R. Doe" in page
    assert is_logged_in_as(client, victim), "nothing changed before the answer"

    stayed = client.post(question.request.path, data={"csrf_token": csrf_token(page), "decision": "stay"})
    assert stayed.status_code == 303 and stayed.headers["Location"].endswith("/services")
    assert is_logged_in_as(client, victim)
    assert sso_session.live_sessions(attacker.account.id) == []
    assert audit_names()[-1] == "federation:response_rejected"
    assert client.post(question.request.path, data={"csrf_token": csrf_token(page), "decision": "switch"}).status_code == 400, \
        "the answer was dropped with the refusal"
    assert is_logged_in_as(client, victim)


def test_the_patient_may_confirm_the_change_of_account(client, federation, patients):
    first = patients.create(given_name="Rita", family_name="Doe", mobile="+352621999888")
    patients.login(first)
    second = linked_myguichet_patient(federation, patients, "mg-hector", "Hector", "Doe")
    posted = client.post("/saml/myguichet/acs", data=unsolicited_answer(federation, "mg-hector"))
    question = client.get(posted.headers["Location"])
    switched = client.post(question.request.path, data={"csrf_token": csrf_token(question.get_data(as_text=True)), "decision": "switch"})
    assert switched.status_code == 303
    assert is_logged_in_as(client, second)
    assert sso_session.live_sessions(first.account.id) == []


def test_the_change_of_account_needs_the_pages_csrf_token(client, federation, patients):
    first = patients.create(given_name="Rita", family_name="Doe", mobile="+352621999888")
    patients.login(first)
    linked_myguichet_patient(federation, patients, "mg-attacker", "Eve", "Mallory")
    posted = client.post("/saml/myguichet/acs", data=unsolicited_answer(federation, "mg-attacker"))
    question = client.get(posted.headers["Location"])
    assert client.post(question.request.path, data={"decision": "switch"}).status_code == 400
    assert is_logged_in_as(client, first)


def test_an_unsolicited_answer_for_the_person_already_logged_in_asks_nothing(client, federation, patients):
    patient = linked_myguichet_patient(federation, patients, "mg-marie", "Marie", "Schmit")
    patients.login(patient)
    posted = client.post("/saml/myguichet/acs", data=unsolicited_answer(federation, "mg-marie"))
    assert client.get(posted.headers["Location"]).status_code == 303
    assert is_logged_in_as(client, patient)
