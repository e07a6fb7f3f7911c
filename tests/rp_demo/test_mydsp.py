"""MyDSP, the native-app stand-in, against a live provider: loopback redirect, PKCE, no secret,
refresh tokens, the records one may open, and a child's record through a token exchange."""

import queue
import stat
import threading

import pytest
from playwright.sync_api import expect

from idp import delegation
from idp.extensions import db
from rp_demo.dsp_api import documents_for
from rp_demo.mydsp import MyDsp, MyDspError, main
from tests.browser.conftest import last_code_sent_to


@pytest.fixture
def family(patients):
    parent = patients.create(given_name="Marc", family_name="Weber", birth="19800214", email=None, mobile="+352621000301")
    child = patients.create(given_name="Léa", family_name="Weber", birth="20170520", email=None, mobile="+352621000302")
    delegation.grant(child.account, parent.account, created_by=child.account)
    db.session.commit()
    return parent, child


def log_in(page, app: MyDsp, patient) -> dict:
    """Run ``login`` as the app does, the test's browser standing in for the system browser."""
    opened, outcome = queue.Queue(), {}
    worker = threading.Thread(target=lambda: outcome.update(claims=app.login(opened.put, timeout=60)))
    worker.start()
    url = opened.get(timeout=10)
    assert url.startswith(app.metadata["authorization_endpoint"] + "?")
    assert "code_challenge_method=S256" in url and "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in url
    page.goto(url)
    page.get_by_label("Matricule", exact=True).fill(patient.matricule)
    page.get_by_label("Mot de passe", exact=True).fill(patient.password)
    page.get_by_role("button", name="Connexion").click()
    page.get_by_label("Code à usage unique", exact=True).fill(last_code_sent_to(patient.account.mobile))
    page.get_by_role("button", name="Valider").click()
    page.get_by_role("button", name="Autoriser").click()  # a third-party app: consent first
    expect(page.get_by_text("Vous pouvez revenir à MyDSP.")).to_be_visible()
    worker.join(timeout=30)
    assert "claims" in outcome, "login did not finish"
    return outcome["claims"]


def test_parent_logs_in_and_opens_the_childs_record(page, provider, dsp_api, demo_clients, family, tmp_path, capsys):
    parent, child = family
    token_file = tmp_path / "mydsp" / "tokens.json"
    app = MyDsp(provider.url, dsp_api.url, token_file=token_file)
    claims = log_in(page, app, parent)
    assert claims["aud"] == "mydsp" and claims["iss"] == provider.url
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "refresh_token" in app.state["token"]

    records = app.records()
    assert [(record["name"], record["own"]) for record in records] == [("Marc Weber", True), ("Léa Weber", False)]
    child_sub = records[1]["sub"]
    opened = app.open_record(child_sub)
    assert opened["subject"] == child_sub
    assert opened["acting"] == {"sub": claims["sub"]}
    assert opened["documents"] == documents_for(child_sub)
    assert app.open_record(claims["sub"])["acting"] is None

    # The command line reads the same token file.
    arguments = ["--issuer", provider.url, "--dsp-api", dsp_api.url, "--token-file", str(token_file)]
    assert main([*arguments, "records"]) == 0
    assert capsys.readouterr().out == "1. Marc Weber (mon dossier)\n2. Léa Weber\n"
    assert main([*arguments, "open", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Dossier de Léa Weber (vous agissez en tant qu'assistant DSP) — mes derniers documents :\n")
    assert documents_for(child_sub)[0]["title"] in printed


def test_an_expiring_access_token_is_renewed_with_the_refresh_token(page, provider, dsp_api, demo_clients, family, tmp_path):
    parent, _ = family
    app = MyDsp(provider.url, dsp_api.url, token_file=tmp_path / "tokens.json")
    log_in(page, app, parent)
    before = dict(app.state["token"])
    app.state["token"]["expires_at"] = 0
    renewed = app.access_token()
    assert renewed != before["access_token"]
    assert app.state["token"]["refresh_token"] != before["refresh_token"], "refresh tokens rotate"
    assert MyDsp(provider.url, dsp_api.url, token_file=tmp_path / "tokens.json").state["token"]["access_token"] == renewed
    assert app.records()[0]["name"] == "Marc Weber"


def test_a_record_one_does_not_assist_is_refused(page, provider, dsp_api, demo_clients, family, patients, tmp_path):
    parent, _ = family
    stranger = patients.create(given_name="Paul", family_name="Muller", birth="19700101", email=None, mobile="+352621000303")
    app = MyDsp(provider.url, dsp_api.url, token_file=tmp_path / "tokens.json")
    log_in(page, app, parent)
    from idp import client as clients, token as tokens

    with pytest.raises(MyDspError, match="Accès au dossier refusé par eSanté"):
        app.open_record(tokens.subject_for(stranger.account, clients.get("mydsp")))


def test_commands_need_a_login_first(provider, dsp_api, demo_clients, tmp_path, capsys):
    assert main(["--issuer", provider.url, "--dsp-api", dsp_api.url, "--token-file", str(tmp_path / "none.json"), "records"]) == 1
    assert "lancez d'abord « login »" in capsys.readouterr().err
