"""The activation wizard ("J'active mon compte"), the "no activation code" request and prompt=create."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from idp import account as accounts, activation_letter, audit, cgu_acceptance, clock, credential, helpdesk_request
from idp.extensions import db
from tests.conftest import authorization_url, csrf_token, pkce_pair, query_of


@pytest.fixture
def pending(patients):
    patient = patients.create(status="pending", email=None, mobile=None)
    _, code = activation_letter.issue(patient.account)
    db.session.commit()
    return patient.account, code


class Wizard:
    def __init__(self, client, patients):
        self.client, self.patients = client, patients

    def post(self, path: str, page: str | None = None, **data):
        html = self.client.get(page or path).get_data(as_text=True).replace('&#39;', "'")
        return self.client.post(path, data={"csrf_token": csrf_token(html), **data})

    def accept_cgu(self):
        return self.post("/activation", accept="y")

    def code(self, matricule: str, code: str, has_code: str = "yes"):
        return self.post("/activation/code", matricule=matricule, has_code=has_code, activation_code=code)

    def password(self, password: str = "Luxembourg2026x", confirmation: str | None = None):
        return self.post("/activation/password", password=password, confirmation=confirmation or password)

    def send(self, channel: str = "sms", destination: str = "+352621555777"):
        return self.post("/activation/channel", **{"send-channel": channel, "send-destination": destination, "send-submit": "1"})

    def verify(self, code: str):
        return self.post("/activation/channel", **{"verify-code": code, "verify-submit": "1"})

    def finish(self):
        return self.post("/activation/other-means")

    def to_last_step(self, account, code):
        """CGU, letter code, password, channel and its code: everything but the final step."""
        assert self.accept_cgu().status_code == 303
        assert self.code(account.matricule, code).status_code == 303
        assert self.password().status_code == 303
        assert self.send().status_code == 303
        assert self.verify(self.patients.last_code("+352621555777")).status_code == 303

    def run(self, account, code):
        self.to_last_step(account, code)
        return self.finish()


@pytest.fixture
def wizard(client, patients):
    return Wizard(client, patients)


def test_the_start_page_shows_prerequisites_cgu_and_the_no_code_link(client):
    html = client.get("/activation").get_data(as_text=True).replace('&#39;', "'")
    assert "Votre numéro de matricule (à 11 ou 13 chiffres)" in html
    assert "Activer mon compte" in html and "Je n'ai pas de code d'activation" in html
    assert "Conditions Générales d'Utilisation" in html
    pdf = client.get("/cgu.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def test_cgu_must_be_accepted(wizard):
    response = wizard.post("/activation")
    assert response.status_code == 400
    assert "Vous devez accepter" in response.get_data(as_text=True).replace('&#39;', "'")


def test_whole_wizard_activates_the_account(wizard, pending, client):
    account, code = pending
    done = wizard.run(account, code)
    assert done.status_code == 303 and done.headers["Location"].endswith("/activation/done")
    page = client.get("/activation/done").get_data(as_text=True).replace('&#39;', "'")
    assert "Votre activation est terminée!" in page and "Connectez-vous" in page
    db.session.refresh(account)
    assert account.status == "active" and account.mobile == "+352621555777" and account.mobile_verified
    assert cgu_acceptance.latest(account.id).version == "2024-1"
    assert activation_letter.current_letter(account) is None
    credential.verify_password(account, "Luxembourg2026x")


def test_steps_cannot_be_skipped_by_posting_directly(wizard, pending):
    account, code = pending
    wizard.accept_cgu()
    skipped = wizard.post("/activation/password", page="/activation/code", password="Luxembourg2026x", confirmation="Luxembourg2026x")
    assert skipped.status_code == 303 and skipped.headers["Location"].endswith("/activation/code")
    assert wizard.client.get("/activation/other-means").headers["Location"].endswith("/activation/code")


def test_wrong_code_is_refused_and_the_code_is_consumed_only_at_the_end(wizard, pending):
    account, code = pending
    wizard.accept_cgu()
    wrong = wizard.code(account.matricule, "AAAA-BBBB-CCCC")
    assert wrong.status_code == 400 and "code d'activation incorrect" in wrong.get_data(as_text=True).replace('&#39;', "'")
    assert wizard.code(account.matricule, code).status_code == 303
    db.session.refresh(account)
    assert account.status == "pending" and activation_letter.current_letter(account) is not None


def test_expired_code_explains_how_to_get_a_new_letter(wizard, pending):
    account, code = pending
    clock.advance(timedelta(days=91))
    wizard.accept_cgu()
    response = wizard.code(account.matricule, code)
    assert response.status_code == 400 and "a expiré" in response.get_data(as_text=True).replace('&#39;', "'")


def test_repeated_wrong_codes_lock_for_a_while_and_keep_the_letter(app, wizard, pending):
    """Throttle, not void (issue 13): ten wrong codes make everyone wait, the patient's letter stays valid."""
    account, code = pending
    wizard.accept_cgu()
    statuses = [wizard.code(account.matricule, "AAAA-BBBB-CCCC").status_code for _ in range(activation_letter.ACTIVATION_MAX_FAILURES)]
    assert statuses == [400] * (activation_letter.ACTIVATION_MAX_FAILURES - 1) + [429]
    locked = wizard.code(account.matricule, code)
    text = locked.get_data(as_text=True).replace('&#39;', "'")
    assert locked.status_code == 429 and "Trop de codes d'activation erronés pour ce matricule" in text and "reste valable" in text
    clock.advance(timedelta(seconds=app.config["ACTIVATION_LOCKOUT_SECONDS"]))
    assert wizard.code(account.matricule, code).status_code == 303


def test_a_letter_voided_during_the_wizard_cannot_finish_it(client, wizard, pending):
    """Before: a letter voided by a newer one (or expired) after step 1 still activated the account at the end."""
    account, code = pending
    wizard.to_last_step(account, code)
    activation_letter.issue(account)  # the helpdesk sends a new letter meanwhile
    db.session.commit()
    finished = wizard.finish()
    assert finished.status_code == 303 and finished.headers["Location"].endswith("/activation/code")
    page = client.get("/activation/code").get_data(as_text=True).replace('&#39;', "'")
    assert "Ce code d'activation n'est plus valable" in page
    db.session.refresh(account)
    assert account.status == "pending" and cgu_acceptance.latest(account.id) is None
    assert client.get("/activation/other-means").headers["Location"].endswith("/activation/code"), "the wizard starts over at step 1"


def test_a_letter_that_expires_during_the_wizard_cannot_finish_it(client, wizard, patients):
    patient = patients.create(status="pending", email=None, mobile=None)
    letter, code = activation_letter.issue(patient.account)
    letter.expires_at = clock.now() + timedelta(minutes=10)
    db.session.commit()
    wizard.to_last_step(patient.account, code)
    clock.advance(timedelta(minutes=11))
    finished = wizard.finish()
    assert finished.headers["Location"].endswith("/activation/code")
    db.session.refresh(patient.account)
    assert patient.account.status == "pending"


def test_weak_password_lists_every_failed_rule(wizard, pending):
    account, code = pending
    wizard.accept_cgu()
    wizard.code(account.matricule, code)
    html = wizard.password("abc", "abd").get_data(as_text=True).replace('&#39;', "'")
    assert "au minimum 8 caractères" in html and "caractère numérique" in html and "La confirmation ne correspond pas" in html
    common = wizard.password("password1").get_data(as_text=True).replace('&#39;', "'")
    assert "trop courant" in common


def test_going_back_keeps_the_wizard_consistent(wizard, pending):
    account, code = pending
    wizard.accept_cgu()
    wizard.code(account.matricule, code)
    wizard.password()
    back = wizard.post("/activation/back/2", page="/activation/channel")
    assert back.headers["Location"].endswith("/activation/password")
    assert wizard.client.get("/activation/channel").headers["Location"].endswith("/activation/password")


def test_completed_activation_cannot_be_replayed(wizard, pending, client, patients):
    account, code = pending
    wizard.run(account, code)
    again = Wizard(client, patients)
    client.delete_cookie("esante_flow")
    again.accept_cgu()
    response = again.code(account.matricule, code)
    assert response.status_code == 409 and "déjà activé" in response.get_data(as_text=True).replace('&#39;', "'")
    activated = db.session.scalar(select(func.count()).select_from(audit.AuditEvent).where(audit.AuditEvent.name == "account:activated"))
    assert activated == 1


def test_no_code_request_is_stored_with_a_neutral_answer(wizard):
    response = wizard.post("/activation/request", matricule="1893120105732", family_name="Doe", given_name="Jane",
                           birth_date="1893-12-01", contact_email="jane@example.lu", note="Courrier perdu")
    assert response.status_code == 303
    page = wizard.client.get(response.headers["Location"]).get_data(as_text=True).replace('&#39;', "'")
    assert "Si les informations correspondent" in page
    assert [r.family_name for r in helpdesk_request.listing()] == ["Doe"]


def test_resolving_a_request_issues_a_new_letter(runner, pending):
    account, old_code = pending
    request = helpdesk_request.file(matricule=account.matricule, family_name=account.family_name, given_name=account.given_name,
                                    birth_date=account.birth_date, contact_email=None, contact_phone="+352621000000", note=None)
    db.session.commit()
    result = runner.invoke(args=["requests", "resolve", str(request.id), "--json"])
    assert result.exit_code == 0, result.output
    new_code = re.search(r'"activation_code": "([^"]+)"', result.output).group(1)
    with pytest.raises(activation_letter.ActivationCodeInvalid):
        activation_letter.check(account.matricule, old_code)
    assert activation_letter.check(account.matricule, new_code)[0].id == account.id


def test_prompt_create_activates_then_returns_to_the_client_logged_in(client, wizard, pending, rp_client):
    account, code = pending
    verifier, challenge = pkce_pair()
    start = client.get(authorization_url(rp_client.client_id, "https://dsp.example.lu/callback", challenge, prompt="create"))
    assert start.headers["Location"].endswith("/activation")
    done = wizard.run(account, code)
    assert done.status_code == 303
    page = client.get("/activation/done").get_data(as_text=True).replace('&#39;', "'")
    continue_to = re.search(r'href="(/authorize\?[^"]+)"', page).group(1).replace("&amp;", "&")
    back = client.get(continue_to)
    assert back.status_code == 303 and "code" in query_of(back.headers["Location"])
    token = client.post("/token", data={"grant_type": "authorization_code", "code": query_of(back.headers["Location"])["code"],
                                        "redirect_uri": "https://dsp.example.lu/callback", "code_verifier": verifier},
                        auth=(rp_client.client_id, rp_client.plain_secret))
    assert token.status_code == 200 and "id_token" in token.get_json()
    assert accounts.get(account.id).is_active


def test_wizard_survives_a_reload_but_expires(wizard, pending):
    account, code = pending
    wizard.accept_cgu()
    wizard.code(account.matricule, code)
    assert wizard.client.get("/activation/password").status_code == 200
    assert wizard.client.get("/activation/password").status_code == 200
    clock.advance(timedelta(minutes=31))
    expired = wizard.client.get("/activation/password")
    assert expired.status_code == 410 and "a expiré" in expired.get_data(as_text=True)
    db.session.refresh(account)
    assert account.status == "pending" and activation_letter.current_letter(account) is not None


def test_a_second_submission_of_the_last_step_activates_once(wizard, pending, client):
    account, code = pending
    wizard.run(account, code)
    token = csrf_token(client.get("/activation/request").get_data(as_text=True))
    again = client.post("/activation/other-means", data={"csrf_token": token})
    assert again.status_code == 303 and again.headers["Location"].endswith("/activation/done")
    names = [e.name for e in audit.recent(name="account:activated")]
    assert names == ["account:activated"]


@pytest.mark.settings(RATE_LIMIT_ACTIVATION="3 per minute")
def test_activation_codes_are_rate_limited_per_ip(wizard, pending):
    """Guessing letters' codes across many matricules is bounded per address, not only per letter."""
    account, _ = pending
    wizard.accept_cgu()
    statuses = [wizard.code(account.matricule, "WRONG-CODE-0000").status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 429]
