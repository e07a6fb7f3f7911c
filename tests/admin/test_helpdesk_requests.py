"""Admin pages for "Je n'ai pas de code d'activation" requests: list, issue a new letter, reject."""

import json
import re

import pytest

from idp import activation_letter, audit, helpdesk_request
from idp.extensions import db
from tests.admin.test_admin_ui import AdminBrowser, events, is_login_redirect

CODE_RE = re.compile(r'id="activation-code">([^<]+)<')


@pytest.fixture
def admin(client):
    browser = AdminBrowser(client)
    browser.login()
    return browser


@pytest.fixture
def pending(patients):
    """A pending patient holding a letter, and a request that matches them."""
    account = patients.create(status="pending", email=None, mobile=None).account
    _, old_code = activation_letter.issue(account)
    request = helpdesk_request.file(matricule=account.matricule, family_name=account.family_name.upper(),
                                    given_name=account.given_name, birth_date=account.birth_date,
                                    contact_email="marie@example.lu", contact_phone=None, note="Courrier perdu")
    db.session.commit()
    return account, old_code, request


def text_of(response) -> str:
    return response.get_data(as_text=True).replace("&#39;", "'")


def test_request_pages_need_the_admin_session(client, pending):
    _, _, request = pending
    assert is_login_redirect(client.get("/admin/requests"))
    assert client.post(f"/admin/requests/{request.id}/issue-letter").status_code in (303, 400)  # CSRF check comes first
    assert client.post(f"/admin/requests/{request.id}/reject").status_code in (303, 400)
    assert helpdesk_request.get(request.id).status == "open"


def test_open_requests_are_listed_with_their_registry_match(client, admin, pending):
    account, _, request = pending
    page = client.get("/admin/requests")
    html = text_of(page)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert account.matricule in html and "SCHMIT" in html and "marie@example.lu" in html and "Courrier perdu" in html
    assert account.birth_date.strftime("%d/%m/%Y") in html
    assert "Correspond au registre" in html
    assert "Demandes de code d'activation" in text_of(client.get("/admin/"))  # nav link


def test_issuing_a_letter_shows_the_new_code_once_and_voids_the_old_one(client, admin, pending):
    account, old_code, request = pending
    response = admin.post(f"/admin/requests/{request.id}/issue-letter", form_page="/admin/requests")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    new_code = CODE_RE.search(response.get_data(as_text=True)).group(1)
    assert activation_letter.check(account.matricule, new_code)[0].id == account.id
    with pytest.raises(activation_letter.ActivationCodeInvalid):
        activation_letter.check(account.matricule, old_code)
    db.session.rollback()
    assert helpdesk_request.get(request.id).status == "letter_issued"
    assert helpdesk_request.get(request.id).resolved_by == "admin:alice"
    assert new_code not in text_of(client.get("/admin/requests?status=all"))
    resolved = events(audit.Event.HELPDESK_REQUEST_RESOLVED)
    assert [(e.actor, e.details["status"]) for e in resolved] == [("admin:alice", "letter_issued")]
    assert [e.actor for e in events(audit.Event.LETTER_ISSUED)][0] == "admin:alice"
    again = admin.post(f"/admin/requests/{request.id}/issue-letter", form_page="/admin/requests?status=all")
    assert again.status_code == 303
    assert "déjà été traitée" in text_of(client.get(again.headers["Location"]))


def test_rejecting_a_request_keeps_the_letter(client, admin, pending):
    account, old_code, request = pending
    response = admin.post(f"/admin/requests/{request.id}/reject", {"note": "Doublon"}, form_page="/admin/requests")
    assert response.status_code == 303
    assert f"Demande n° {request.id} rejetée." in text_of(client.get(response.headers["Location"]))
    stored = helpdesk_request.get(request.id)
    assert (stored.status, stored.resolution_note, stored.resolved_by) == ("rejected", "Doublon", "admin:alice")
    assert activation_letter.check(account.matricule, old_code)[0].id == account.id
    assert "Aucune demande." in text_of(client.get("/admin/requests"))
    assert [e.details["status"] for e in events(audit.Event.HELPDESK_REQUEST_RESOLVED)] == ["rejected"]


def test_a_request_that_matches_nobody_is_refused_with_a_message(client, admin, pending):
    account, old_code, _ = pending
    stranger = helpdesk_request.file(matricule=account.matricule, family_name="Doe", given_name="Jane",
                                     birth_date=account.birth_date, contact_email=None, contact_phone="+352621000000", note=None)
    db.session.commit()
    assert "Ne correspond à aucun patient du registre" in text_of(client.get("/admin/requests"))
    letters_before = len(events(audit.Event.LETTER_ISSUED))
    response = admin.post(f"/admin/requests/{stranger.id}/issue-letter", form_page="/admin/requests")
    assert response.status_code == 303
    assert "Aucun patient en attente d'activation ne correspond" in text_of(client.get(response.headers["Location"]))
    assert helpdesk_request.get(stranger.id).status == "open"
    assert len(events(audit.Event.LETTER_ISSUED)) == letters_before
    assert events(audit.Event.HELPDESK_REQUEST_RESOLVED) == []
    assert activation_letter.check(account.matricule, old_code)[0].id == account.id


def test_actions_need_the_csrf_token(client, admin, pending):
    _, _, request = pending
    assert client.post(f"/admin/requests/{request.id}/issue-letter").status_code == 400
    assert helpdesk_request.get(request.id).status == "open"


@pytest.fixture
def request_for_an_active_account(patients):
    account = patients.create().account  # active, with a password
    found = helpdesk_request.file(matricule=account.matricule, family_name=account.family_name, given_name=account.given_name,
                                  birth_date=account.birth_date, contact_email="marie@example.lu", contact_phone=None, note=None)
    db.session.commit()
    return account, found


def test_a_request_for_an_active_account_shows_its_state_and_offers_no_letter(client, admin, request_for_an_active_account):
    """Issue 14, item 13: the state is in the list, and only the actions that apply are offered."""
    _, found = request_for_an_active_account
    html = text_of(client.get("/admin/requests"))
    section = html[html.index(f'id="request-{found.id}"'):]
    assert "Déjà activé" in section
    assert "Émettre un nouveau courrier" not in section and "Rejeter" in section
    assert "Ce compte est déjà activé : aucun courrier n'est nécessaire." in section


def test_a_request_for_a_pending_account_offers_the_letter(client, admin, pending):
    _, _, found = pending
    html = text_of(client.get("/admin/requests"))
    section = html[html.index(f'id="request-{found.id}"'):]
    assert "En attente d'activation" in section and "Émettre un nouveau courrier" in section


def test_the_requests_list_command_shows_the_account_state(runner, pending, request_for_an_active_account):
    result = runner.invoke(args=["requests", "list", "--json"])
    rows = {row["id"]: row for row in json.loads(result.output)}
    _, _, pending_request = pending
    _, active_request = request_for_an_active_account
    assert (rows[pending_request.id]["account_state"], rows[pending_request.id]["can_issue_letter"]) == ("pending", True)
    assert (rows[active_request.id]["account_state"], rows[active_request.id]["can_issue_letter"]) == ("active", False)
    text = runner.invoke(args=["requests", "list"]).output
    assert f"#{active_request.id} open" in text and "account active (no letter possible: reject)" in text
