"""prompt=select_account: "Accéder aux autres dossiers patient", tokens for the chosen patient with ``act``."""

from idp import audit, consent, delegation as delegations, token as tokens
from idp.extensions import db
from idp.subject import subject_for
from tests.delegation.conftest import assist
from tests.conftest import query_of
from tests.oauth.conftest import IssuedCode, authorization_request, hidden_fields, is_consent_page
from tests.oauth.test_rfc9126_par import authorize_url, push

SELECT_SCOPE = "openid profile assisted_patients"


def choose(oidc, page, patient: str):
    """Press the patient's button on the selection page."""
    return oidc.client.post("/authorize", data={**hidden_fields(page.get_data(as_text=True)), "patient": patient})


def select_page(oidc, rp, patient, scope: str = SELECT_SCOPE):
    request = authorization_request(rp, scope=scope, prompt="select_account")
    page = oidc.authorize(request.url, patient)
    return request, page


def test_an_assistant_sees_themself_and_each_patient_they_assist(oidc, viewer, child, parent):
    found = assist(child, parent)
    _, page = select_page(oidc, viewer, parent)
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Accéder aux autres dossiers patient" in text
    assert "Mon dossier : Hector Doe" in text and "Rita Doe" in text
    assert f'name="patient" value="{found.id}"' in text and 'name="patient" value="self"' in text


def test_choosing_a_patient_yields_tokens_for_them_with_act_naming_the_assistant(oidc, viewer, child, parent):
    found = assist(child, parent)
    request, page = select_page(oidc, viewer, parent, SELECT_SCOPE + " offline_access")
    issued = request.issued(choose(oidc, page, found.id))
    body = oidc.exchange(viewer, issued).get_json()
    id_token, access = oidc.verify(body["id_token"]).claims, oidc.verify(body["access_token"]).claims
    assert id_token["sub"] == access["sub"] == child.account.subject
    assert id_token["act"] == access["act"] == {"sub": parent.account.subject}
    assert id_token["assisted_patients"] == []  # the child assists no one
    refreshed = oidc.refresh(viewer, body["refresh_token"]).get_json()
    assert oidc.verify(refreshed["access_token"]).claims["act"] == {"sub": parent.account.subject}
    assert oidc.verify(refreshed["id_token"]).claims["act"] == {"sub": parent.account.subject}
    names = [e.name for e in audit.trail(child.account.id)]
    assert "delegation:patient_selected" in names and "delegation:token_issued" in names


def test_choosing_oneself_yields_ones_own_tokens_with_the_patients_one_assists(oidc, viewer, child, parent):
    assist(child, parent)
    request, page = select_page(oidc, viewer, parent)
    body = oidc.exchange(viewer, request.issued(choose(oidc, page, "self"))).get_json()
    claims = oidc.verify(body["id_token"]).claims
    assert claims["sub"] == parent.account.subject and "act" not in claims
    assert claims["assisted_patients"] == [{"sub": child.account.subject, "name": "Rita Doe"}]
    assert oidc.userinfo(body["access_token"]).get_json()["assisted_patients"] == [{"sub": child.account.subject, "name": "Rita Doe"}]


def test_the_patients_own_tokens_name_their_assistant_in_may_act(oidc, viewer, child, parent):
    assist(child, parent)
    body = oidc.tokens(viewer, child, scope="openid profile")
    assert oidc.verify(body["access_token"]).claims["may_act"] == {"sub": parent.account.subject}
    assert oidc.verify(body["id_token"]).claims["may_act"] == {"sub": parent.account.subject}


def test_a_patient_who_assists_no_one_is_not_asked(oidc, viewer, parent):
    request = authorization_request(viewer, scope=SELECT_SCOPE, prompt="select_account")
    issued = request.issued(oidc.authorize(request.url, parent))
    assert oidc.verify(oidc.exchange(viewer, issued).get_json()["id_token"]).claims["sub"] == parent.account.subject


def test_refresh_tokens_issued_under_a_delegation_die_with_it(oidc, viewer, child, parent):
    found = assist(child, parent)
    request, page = select_page(oidc, viewer, parent, SELECT_SCOPE + " offline_access")
    body = oidc.exchange(viewer, request.issued(choose(oidc, page, found.id))).get_json()
    delegations.revoke(found, by=child.account)
    db.session.commit()
    assert oidc.refresh(viewer, body["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert oidc.userinfo(body["access_token"]).status_code == 401


def test_a_patient_one_does_not_assist_cannot_be_chosen(oidc, viewer, child, parent, patients):
    stranger = patients.create(given_name="Paul", family_name="Klein", birth="20150101", mobile="+352621000008")
    other = assist(stranger, child)  # someone else's delegation
    assist(child, parent)
    _, page = select_page(oidc, viewer, parent)
    again = choose(oidc, page, other.id)
    assert again.status_code == 200 and "Accéder aux autres dossiers patient" in again.get_data(as_text=True)


def test_consent_for_a_third_party_is_the_patients_and_records_the_assistant(oidc, pharmacy, child, parent):
    found = assist(child, parent)
    request, page = select_page(oidc, pharmacy, parent)
    consent_page = choose(oidc, page, found.id)
    assert is_consent_page(consent_page)
    issued = request.issued(oidc.decide(consent_page, "allow"))
    claims = oidc.verify(oidc.exchange(pharmacy, issued).get_json()["id_token"]).claims
    assert claims["sub"] == subject_for(child.account, pharmacy)
    assert claims["act"] == {"sub": subject_for(parent.account, pharmacy)}
    assert consent.covers(child.account.id, pharmacy.client_id, "openid profile")
    assert not consent.covers(parent.account.id, pharmacy.client_id, "openid")
    recorded = [e for e in audit.trail(child.account.id) if e.name == "delegation:consent_granted"]
    assert recorded and recorded[0].details["assistant_id"] == parent.account.id


def test_the_choice_works_for_a_pushed_authorization_request(oidc, viewer, child, parent):
    found = assist(child, parent)
    pushed, verifier = push(oidc.client, viewer, scope=SELECT_SCOPE, prompt="select_account")
    page = oidc.authorize(authorize_url(viewer, pushed.get_json()["request_uri"]), parent)
    assert "Accéder aux autres dossiers patient" in page.get_data(as_text=True)
    answer = query_of(choose(oidc, page, found.id).headers["Location"])
    body = oidc.exchange(viewer, IssuedCode(answer["code"], verifier, viewer.redirect_uris[0], answer)).get_json()
    assert oidc.verify(body["id_token"]).claims["act"] == {"sub": parent.account.subject}


def test_an_assistant_logged_in_with_their_own_passkey_opens_the_childs_record(oidc, viewer, child, parent):
    """Issue 17: parents acting as Assistant DSP use their own passkey; delegation is unchanged."""
    from idp import sso_session
    from tests.support import passkey_driver
    from tests.support.soft_authenticator import SoftAuthenticator

    found = assist(child, parent)
    oidc.patients.login(parent)
    authenticator = SoftAuthenticator(rp_id="127.0.0.1", origin="http://127.0.0.1:5000")
    assert passkey_driver.register(oidc.client, authenticator).status_code == 303
    sso_session.end_all(parent.account.id)
    db.session.commit()
    oidc.client.delete_cookie("esante_sso")
    assert passkey_driver.log_in(oidc.client, authenticator).status_code == 303

    request = authorization_request(viewer, scope=SELECT_SCOPE, prompt="select_account")
    page = oidc.authorize(request.url)
    issued = request.issued(choose(oidc, page, found.id))
    body = oidc.exchange(viewer, issued).get_json()
    claims = oidc.verify(body["id_token"]).claims

    assert claims["sub"] == child.account.subject and claims["act"] == {"sub": parent.account.subject}
    assert claims["amr"] == ["hwk", "user", "mfa"], "the assistant's own passkey login"
