"""MyDSP, the native-app stand-in, against a live provider: loopback redirect, PKCE, no secret,
refresh tokens, the records one may open, and a child's record through a token exchange; every
token bound to the app's own key with DPoP (RFC 9449), nonces included."""

import json
import queue
import stat
import threading

import pytest
import requests
from flask import Flask, request
from joserfc import jws
from joserfc.jwk import ECKey
from playwright.sync_api import expect

from idp import delegation
from idp.extensions import db
from idp.subject import subject_for
from rp_demo.dsp_api import documents_for
from rp_demo.mydsp import DPoPKey, MyDsp, MyDspError, main
from rp_demo.protocol import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE, access_token_hash
from tests.browser.conftest import last_code_sent_to
from tests.support.browser import LiveServer


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
    own = app.open_record(claims["sub"])
    assert own["acting"] is None
    # The DSP API knows people by its own identifiers (RFC 9068 §6), not by the app's sub.
    assert opened["subject"] not in (child_sub, own["subject"]) and own["subject"] != claims["sub"]
    assert opened["acting"] == {"sub": own["subject"]}, "the assistant is the parent of the parent's own record"
    assert opened["documents"] == documents_for(opened["subject"])

    # The command line reads the same token file.
    arguments = ["--issuer", provider.url, "--dsp-api", dsp_api.url, "--token-file", str(token_file)]
    assert main([*arguments, "records"]) == 0
    assert capsys.readouterr().out == "1. Marc Weber (mon dossier)\n2. Léa Weber\n"
    assert main([*arguments, "open", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Dossier de Léa Weber (vous agissez en tant qu'assistant DSP) — mes derniers documents :\n")
    assert documents_for(opened["subject"])[0]["title"] in printed


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
        app.open_record(subject_for(stranger.account, clients.get("mydsp")))


def test_commands_need_a_login_first(provider, dsp_api, demo_clients, tmp_path, capsys):
    assert main(["--issuer", provider.url, "--dsp-api", dsp_api.url, "--token-file", str(tmp_path / "none.json"), "records"]) == 1
    assert "lancez d'abord « login »" in capsys.readouterr().err


@pytest.mark.parametrize("token_expired", [False, True], ids=["access-token-still-fresh", "refresh-needed"])
def test_after_the_patient_withdraws_the_access_mydsp_says_so_and_offers_to_log_in(
        page, provider, dsp_api, demo_clients, family, tmp_path, capsys, token_expired):
    """Issue 14, item 8: not "invalid_grant: " but what happened and what to do."""
    parent, _ = family
    token_file = tmp_path / "tokens.json"
    app = MyDsp(provider.url, dsp_api.url, token_file=token_file)
    log_in(page, app, parent)
    page.goto(provider.url + "/account/consents")
    page.get_by_role("button", name="Retirer l'accès à MyDSP").click()
    expect(page.get_by_role("status")).to_have_text("L'accès a été retiré.")
    if token_expired:
        state = json.loads(token_file.read_text())
        state["token"]["expires_at"] = 0
        token_file.write_text(json.dumps(state))
    assert main(["--issuer", provider.url, "--dsp-api", dsp_api.url, "--token-file", str(token_file), "records"]) == 1
    error = capsys.readouterr().err
    assert "L'accès de MyDSP à votre compte eSanté a été retiré" in error and "python -m rp_demo.mydsp login" in error
    assert "invalid_grant" not in error


# --- DPoP (RFC 9449) -------------------------------------------------------------------------


def thief() -> DPoPKey:
    """Someone who copied the tokens, with a key of their own."""
    return DPoPKey(ECKey.generate_key("P-256", private=True))


def test_the_tokens_are_bound_to_the_installations_own_key(page, provider, dsp_api, demo_clients, family, tmp_path):
    parent, _ = family
    token_file = tmp_path / "mydsp" / "tokens.json"
    app = MyDsp(provider.url, dsp_api.url, token_file=token_file)
    log_in(page, app, parent)
    assert app.state["token"]["token_type"] == "DPoP"
    claims = app.keys.verify(app.state["token"]["access_token"]).claims
    assert claims["cnf"] == {"jkt": app.dpop_key.thumbprint()}

    key_file = token_file.with_name("dpop-key.json")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert '"d"' not in token_file.read_text(), "the private key is not among the tokens"
    again = MyDsp(provider.url, dsp_api.url, token_file=token_file)
    assert again.dpop_key.thumbprint() == app.dpop_key.thumbprint(), "one key per installation, made once"
    assert again.records()[0]["name"] == "Marc Weber"


def test_the_refresh_token_works_only_with_the_apps_key(page, provider, dsp_api, demo_clients, family, tmp_path):
    parent, _ = family
    app = MyDsp(provider.url, dsp_api.url, token_file=tmp_path / "tokens.json")
    log_in(page, app, parent)
    refresh_token, token_endpoint = app.state["token"]["refresh_token"], app.metadata["token_endpoint"]
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "mydsp"}
    for headers in ({}, {"DPoP": thief().proof("POST", token_endpoint)}):
        stolen = requests.post(token_endpoint, data=form, headers=headers, timeout=10)
        assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant", stolen.json().get("error_description")

    app.state["token"]["expires_at"] = 0
    renewed = app.access_token()
    assert app.state["token"]["refresh_token"] != refresh_token
    assert app.state["token"]["token_type"] == "DPoP"
    assert app.keys.verify(renewed).claims["cnf"] == {"jkt": app.dpop_key.thumbprint()}


def test_a_stolen_access_token_is_refused_by_userinfo_the_dsp_api_and_the_token_exchange(
        page, provider, dsp_api, demo_clients, family, tmp_path):
    parent, child = family
    app = MyDsp(provider.url, dsp_api.url, token_file=tmp_path / "tokens.json")
    log_in(page, app, parent)
    stolen = app.access_token()
    other = thief()
    for url in (app.metadata["userinfo_endpoint"], dsp_api.url + "/v1/record"):
        as_bearer = requests.get(url, headers={"Authorization": f"Bearer {stolen}"}, timeout=10)
        assert as_bearer.status_code == 401 and as_bearer.headers["WWW-Authenticate"].startswith("DPoP "), url
        with_another_key = requests.get(url, timeout=10, headers={"Authorization": f"DPoP {stolen}",
                                                                  "DPoP": other.proof("GET", url, access_token=stolen)})
        assert with_another_key.status_code == 401, url
        assert 'error="invalid_dpop_proof"' in with_another_key.headers["WWW-Authenticate"], url

    records = app.records()
    own_record = app.open_record(records[0]["sub"])["subject"]
    exchange = {"grant_type": TOKEN_EXCHANGE, "subject_token": stolen, "subject_token_type": ACCESS_TOKEN_TYPE,
                "requested_subject": records[1]["sub"], "client_id": "mydsp"}
    token_endpoint = app.metadata["token_endpoint"]
    refused = requests.post(token_endpoint, data=exchange, headers={"DPoP": other.proof("POST", token_endpoint)}, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert app.open_record(records[0]["sub"])["subject"] == own_record, "the app itself still gets through"
    assert app.open_record(records[1]["sub"])["acting"] == {"sub": own_record}


@pytest.mark.settings(FEATURES={"dpop": {"nonce_required": True}})
@pytest.mark.parametrize("dsp_api_config", [{"DPOP_NONCE_REQUIRED": True}])
def test_the_app_follows_the_server_nonces_of_the_provider_and_the_dsp_api(page, provider, dsp_api, demo_clients, family, tmp_path):
    """§8 at the token endpoint (400 ``use_dpop_nonce``), §9 at userinfo and the DSP API (401)."""
    parent, _ = family
    app = MyDsp(provider.url, dsp_api.url, token_file=tmp_path / "tokens.json")
    log_in(page, app, parent)
    records = app.records()
    assert app.open_record(records[1]["sub"])["acting"] == {"sub": app.open_record(records[0]["sub"])["subject"]}
    app.state["token"]["expires_at"] = 0
    app.access_token()
    assert set(app.dpop_nonces) == {provider.url, dsp_api.url}
    assert app.dpop_nonces[provider.url] != app.dpop_nonces[dsp_api.url], "each server's own nonce"


def test_a_nonce_is_retried_only_once(provider, tmp_path):
    """A server that keeps asking for another nonce gets a second request with the one it gave, not a loop."""
    proofs = []
    pester = Flask("pester")

    @pester.get("/v1/record")
    def record():
        proofs.append(request.headers["DPoP"])
        challenge = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": f"nonce-{len(proofs)}"}
        return {"error": "use_dpop_nonce"}, 401, challenge

    token_file = tmp_path / "tokens.json"
    token_file.write_text(json.dumps({"sub": "me", "token": {"access_token": "t", "token_type": "DPoP", "expires_at": 2**40}}))
    with LiveServer(pester) as server:
        app = MyDsp(provider.url, server.url, token_file=token_file)
        with pytest.raises(MyDspError, match=r"\(401\)"):
            app.open_record("me")
    claims = [json.loads(jws.extract_compact(proof.encode()).payload) for proof in proofs]
    assert len(claims) == 2
    assert "nonce" not in claims[0] and claims[1]["nonce"] == "nonce-1"
    assert claims[1]["htu"] == server.url + "/v1/record" and claims[1]["ath"] == access_token_hash("t")
