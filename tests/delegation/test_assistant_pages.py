"""The account pages "Assistants": the guide's steps to add an Assistant DSP, and removing one."""

import pytest

from idp import audit, delegation as delegations
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
    done = client.post("/account/assistants/new", data={"csrf_token": csrf_token(form.get_data(as_text=True)), "type": "assistant_dsp", "role": ""})
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
