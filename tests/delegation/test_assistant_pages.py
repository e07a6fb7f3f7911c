"""The account pages "Assistants": the guide's steps to add an Assistant DSP, and removing one."""

import pytest
from flask import g

from idp import audit, credential, delegation as delegations, messaging, sso_session
from idp.extensions import db
from tests.conftest import csrf_token
from tests.delegation.conftest import assist


def search(client, matricule: str):
    page = client.get("/account/assistants/add")
    return client.post("/account/assistants/add", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "matricule": matricule})


def test_the_guides_steps_add_an_assistant_dsp(client, patients, child, parent):
    patients.login(child)
    assert "Ajouter" in client.get("/account/assistants").get_data(as_text=True)
    found = search(client, parent.matricule)
    text = found.get_data(as_text=True)
    assert found.status_code == 200 and "H. Doe" in text and "Hector" not in text
    form = client.get("/account/assistants/new")
    assert "Assistant DSP" in form.get_data(as_text=True) and "Rôle" in form.get_data(as_text=True)
    done = client.post("/account/assistants/new", data={"csrf_token": csrf_token(form.get_data(as_text=True)), "type": "assistant_dsp", "role": "",
                                                         "current_password": child.password})
    assert done.status_code == 303
    listed = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "H. Doe" in listed and "est maintenant votre assistant DSP" in listed
    (created,) = delegations.for_owner(child.account)
    assert (created.assistant_id, created.role, created.created_by_id) == (parent.account.id, None, child.account.id)


def test_an_unknown_or_partial_matricule_finds_no_one(client, patients, child, parent):
    patients.login(child)
    unknown = search(client, "1893120105732")
    assert unknown.status_code == 404 and "Aucun patient ne correspond" in unknown.get_data(as_text=True)
    partial = search(client, parent.matricule[:8])
    assert partial.status_code == 400 and "11 ou 13 chiffres" in partial.get_data(as_text=True)
    assert client.get("/account/assistants/new").status_code == 303  # nothing was picked


def test_oneself_cannot_be_picked(client, patients, child):
    patients.login(child)
    assert search(client, child.matricule).status_code == 400


@pytest.mark.settings(RATE_LIMIT_DELEGATION_LOOKUP="2 per minute")
def test_the_search_is_rate_limited(client, patients, child, parent):
    patients.login(child)
    assert [search(client, parent.matricule).status_code for _ in range(3)] == [200, 200, 429]


def test_the_pages_need_a_login(client):
    for path in ("/account/assistants", "/account/assistants/add", "/account/assistants/new", "/account/trail"):
        response = client.get(path)
        assert response.status_code == 303 and "/login" in response.headers["Location"]


def test_removing_an_assistant(client, patients, child, parent):
    found = assist(child, parent)
    patients.login(child)
    page = client.get("/account/assistants").get_data(as_text=True)
    response = client.post(f"/account/assistants/{found.id}/remove", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 303
    assert delegations.for_owner(child.account) == []
    assert audit.trail(child.account.id)[0].name == "delegation:revoked"


def test_someone_elses_delegation_cannot_be_removed(client, patients, child, parent):
    theirs = assist(parent, child)
    patients.login(child)
    page = client.get("/account/assistants/add").get_data(as_text=True)
    client.post(f"/account/assistants/{theirs.id}/remove", data={"csrf_token": csrf_token(page)})
    assert delegations.for_owner(parent.account) != []


def test_the_assistants_page_lists_the_records_one_may_open(client, patients, child, parent):
    assist(child, parent)
    patients.login(parent)
    assert "Rita Doe" in client.get("/account/assistants").get_data(as_text=True)


def pick(client, patients, owner, assistant):
    """Logged in as ``owner``, up to the confirmation of ``assistant`` as Assistant DSP; returns that page."""
    patients.login(owner)
    assert search(client, assistant.matricule).status_code == 200
    return client.get("/account/assistants/new")


def confirm(client, page, **fields):
    return client.post("/account/assistants/new", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "type": "assistant_dsp",
                                                        "role": "", **fields})


def test_adding_an_assistant_asks_for_the_password_first(client, patients, child, parent):
    """Before: the ✓ alone gave the whole record to whoever held the session (gap 12)."""
    page = pick(client, patients, child, parent)
    assert "Votre mot de passe, pour confirmer" in page.get_data(as_text=True)
    assert confirm(client, page).status_code == 400, "no password, no assistant"
    wrong = confirm(client, page, current_password="Not-the-password-1")
    assert wrong.status_code == 400 and "Mot de passe incorrect" in wrong.get_data(as_text=True)
    assert delegations.for_owner(child.account) == []
    assert confirm(client, page, current_password=child.password).status_code == 303
    assert [d.assistant_id for d in delegations.for_owner(child.account)] == [parent.account.id]


def test_wrong_passwords_there_count_towards_the_lockout(app, client, patients, child, parent):
    page = pick(client, patients, child, parent)
    for _ in range(app.config["PASSWORD_MAX_FAILURES"]):
        confirm(client, page, current_password="Not-the-password-1")
    locked = confirm(client, page, current_password=child.password)
    assert locked.status_code == 400 and "Trop de tentatives" in locked.get_data(as_text=True)
    assert delegations.for_owner(child.account) == []


def test_the_owner_is_told_on_every_channel_in_their_language(client, patients, child, parent):
    child.account.locale = "en"
    db.session.commit()
    page = pick(client, patients, child, parent)
    assert confirm(client, page, current_password=child.password).status_code == 303
    db.session.expire_all()
    for destination in (child.account.mobile, child.account.email):
        notices = [m.body for m in messaging.outbox_messages(destination) if "H. Doe" in m.body]
        assert len(notices) == 1 and "assistant" in notices[0] and "Mon compte" not in notices[0], notices


def test_an_account_without_a_password_confirms_with_a_fresh_code(client, patients, parent):
    """Activated through MyGuichet, it never chose a password: a code sent now stands in for it."""
    owner = patients.create(given_name="Lea", family_name="Muller", birth="19900909", email=None, mobile="+352621000777")
    db.session.delete(db.session.get(credential.PasswordCredential, owner.account.id))
    db.session.commit()
    with client.application.test_request_context():
        sso_session.start(owner.account.id, amr=["hwk"], acr="http://eidas.europa.eu/LoA/substantial")  # as MyGuichet does
        cookie = g.sso_cookie
        db.session.commit()
    client.set_cookie(client.application.config["SSO_COOKIE_NAME"], cookie)
    assert search(client, parent.matricule).status_code == 200
    page = client.get("/account/assistants/new")
    assert "Recevoir un code" in page.get_data(as_text=True) and "Votre mot de passe" not in page.get_data(as_text=True)
    assert confirm(client, page, code="000000").status_code == 400, "no code was asked for yet"
    sent = client.post("/account/assistants/new/code", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert sent.status_code == 303
    page = client.get("/account/assistants/new")
    code = patients.last_code("+352621000777")
    wrong = confirm(client, page, code="000000" if code != "000000" else "111111")
    assert wrong.status_code == 400 and delegations.for_owner(owner.account) == []
    assert confirm(client, page, code=code).status_code == 303
    assert [d.assistant_id for d in delegations.for_owner(owner.account)] == [parent.account.id]
