"""``idp demo seed``: the demo patients and relying parties ``make run`` shows, created once."""

import json
import stat
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from joserfc.jwk import ECKey
from sqlalchemy import func, select

from idp import account as accounts, activation_letter, client as clients, clock, credential, matricule
from idp.extensions import db
from tests.conftest import Patient, pkce_pair, query_of
from tests.oauth.test_fapi2_profile import FapiClient


def seed(runner, *options: str) -> dict:
    result = runner.invoke(args=["demo", "seed", "--json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def by_name(report: dict) -> dict[str, dict]:
    return {patient["name"]: patient for patient in report["patients"]}


def counts() -> tuple[int, int, int]:
    return tuple(
        db.session.scalar(select(func.count()).select_from(model))
        for model in (accounts.Account, clients.Client, activation_letter.ActivationLetter)
    )


def test_seed_imports_the_demo_family_and_another_adult(runner):
    printed = by_name(seed(runner))
    hector, rita, filat = (accounts.find_by_matricule(printed[name]["matricule"]) for name in ("Hector Doe", "Rita Doe", "Filat D."))
    assert all(matricule.is_valid(account.matricule) and len(account.matricule) == 13 for account in (hector, rita, filat))
    assert all(account.matricule[:8] == account.birth_date.strftime("%Y%m%d") for account in (hector, rita, filat))
    assert hector.is_active and hector.mobile and hector.email
    assert printed["Hector Doe"]["password"]
    today = clock.now().date()
    assert rita.family_name == hector.family_name and rita.status == "pending" and rita.age_on(today) < 18
    assert hector.age_on(today) >= 18 and filat.age_on(today) >= 18 and filat.status == "pending"
    for name, account in (("Rita Doe", rita), ("Filat D.", filat)):
        assert printed[name]["letter"] == "issued"
        assert activation_letter.check(account.matricule, printed[name]["activation_code"]) == (account, activation_letter.current_letter(account))


def test_seed_registers_the_demo_relying_parties(app, runner):
    report = seed(runner)
    viewer, mydsp = clients.get("dsp-viewer"), clients.get("mydsp")
    assert viewer.first_party and viewer.token_endpoint_auth_method == "private_key_jwt" and viewer.security_profile == "fapi2"
    assert viewer.redirect_uris == ["http://127.0.0.1:5001/callback"]
    assert viewer.post_logout_redirect_uris == ["http://127.0.0.1:5001/"]
    assert viewer.scope == "openid profile email phone offline_access matricule delegations assisted_patients"
    key_file = Path(report["clients"][0]["client_key_file"])
    assert key_file == Path(app.instance_path) / "dsp-viewer-key.json" and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    private = ECKey.import_key(json.loads(key_file.read_text()))
    assert viewer.jwks["keys"][0]["kid"] == private.kid and viewer.jwks["keys"][0]["x"] == private.as_dict()["x"]
    assert "d" not in viewer.jwks["keys"][0], "only the public half is registered"
    assert mydsp.is_public and mydsp.client_metadata["application_type"] == "native"
    assert mydsp.redirect_uris == ["http://127.0.0.1/callback"] and mydsp.scope == "openid profile offline_access delegations assisted_patients"
    assert mydsp.check_redirect_uri("http://127.0.0.1:61234/callback"), "a native app may use any loopback port"
    assert "client_key_file" not in report["clients"][1]


def test_the_viewers_key_is_made_once_and_an_earlier_secret_registration_is_brought_to_fapi2(runner):
    clients.create(client_id="dsp-viewer", name="DSP viewer (demo)", redirect_uris=["http://127.0.0.1:5001/callback"])
    db.session.commit()
    first = seed(runner)["clients"][0]
    viewer = clients.get("dsp-viewer")
    assert viewer.security_profile == "fapi2" and viewer.client_secret_hash is None
    key = Path(first["client_key_file"]).read_text()
    seed(runner)
    assert Path(first["client_key_file"]).read_text() == key


def test_seed_is_idempotent_and_keeps_the_letters_it_issued(runner):
    first = by_name(seed(runner))
    before = counts()
    second = seed(runner)
    assert counts() == before
    assert not any(patient["created"] for patient in second["patients"])
    assert not any(registered["created"] for registered in second["clients"])
    for name in ("Rita Doe", "Filat D."):
        assert by_name(second)[name]["letter"] == "shown_at_first_seed"
        assert "activation_code" not in by_name(second)[name]
        account = accounts.find_by_matricule(first[name]["matricule"])
        activation_letter.check(account.matricule, first[name]["activation_code"])


def test_the_text_output_says_where_a_lost_code_comes_from(runner):
    seed(runner)
    result = runner.invoke(args=["demo", "seed"])
    assert result.exit_code == 0
    assert "Sante-Demo-2026" in result.stdout
    assert result.stdout.count("--reissue-letters") == 3  # once per pending demo patient


def test_reissue_letters_voids_the_codes_of_the_first_seed(runner):
    first = by_name(seed(runner))
    again = by_name(seed(runner, "--reissue-letters"))
    for name in ("Rita Doe", "Filat D."):
        assert again[name]["letter"] == "issued" and again[name]["activation_code"] != first[name]["activation_code"]
        with pytest.raises(activation_letter.ActivationCodeInvalid):
            activation_letter.check(first[name]["matricule"], first[name]["activation_code"])
        activation_letter.check(again[name]["matricule"], again[name]["activation_code"])


def test_a_pending_patient_without_a_usable_letter_gets_a_new_one(runner):
    first = by_name(seed(runner))
    filat = accounts.find_by_matricule(first["Filat D."]["matricule"])
    activation_letter.current_letter(filat).voided_at = clock.now()
    db.session.commit()
    again = by_name(seed(runner))
    assert again["Filat D."]["letter"] == "issued"
    assert again["Rita Doe"]["letter"] == "shown_at_first_seed"


def test_the_demo_parent_logs_in_with_the_printed_password(runner, patients, client):
    printed = by_name(seed(runner))["Hector Doe"]
    hector = Patient(accounts.find_by_matricule(printed["matricule"]), printed["password"])
    done = patients.login(hector)
    assert done.status_code == 303 and done.headers["Location"].endswith("/services")
    assert "Hector" in client.get("/services").get_data(as_text=True)


def test_the_printed_password_works_again_after_the_parent_changed_it(runner, patients):
    printed = by_name(seed(runner))["Hector Doe"]
    hector = accounts.find_by_matricule(printed["matricule"])
    credential.set_password(hector, "Changed-Since-2027")
    db.session.commit()
    seed(runner)
    assert patients.submit_password(Patient(hector, printed["password"])).status_code == 303


def test_the_dsp_viewer_gets_tokens_for_the_demo_parent_with_its_key(runner, patients, client):
    """The FAPI 2.0 way (idp/oauth/fapi2_profile.py): pushed, private_key_jwt with the seed's key, DPoP."""
    report = seed(runner)
    printed, viewer = by_name(report)["Hector Doe"], report["clients"][0]
    key = ECKey.import_key(json.loads(Path(viewer["client_key_file"]).read_text()))
    dsp = FapiClient(clients.get("dsp-viewer"), key, ECKey.generate_key("P-256", private=True))
    verifier, challenge = pkce_pair()
    callback = "http://127.0.0.1:5001/callback"
    pushed = client.post("/par", data={"response_type": "code", "redirect_uri": callback, "scope": "openid profile matricule",
                                       "nonce": "n-demo", "code_challenge": challenge, "code_challenge_method": "S256",
                                       **dsp.authentication()})
    assert pushed.status_code == 201, pushed.get_data(as_text=True)
    started = client.get("/authorize?" + urlencode({"client_id": "dsp-viewer", "request_uri": pushed.get_json()["request_uri"]}))
    hector = Patient(accounts.find_by_matricule(printed["matricule"]), printed["password"])
    done = patients.login(hector, next_url=query_of(started.headers["Location"])["next"])
    answer = query_of(client.get(done.headers["Location"]).headers["Location"])
    token = client.post("/token", data={
        "grant_type": "authorization_code", "code": answer["code"], "redirect_uri": callback, "code_verifier": verifier,
        **dsp.authentication()}, headers={"DPoP": dsp.proof("http://127.0.0.1:5000/token")})
    assert token.status_code == 200, token.get_data(as_text=True)
    access_token = token.get_json()["access_token"]
    info = client.get("/userinfo", headers={"Authorization": "DPoP " + access_token,
                                            "DPoP": dsp.proof("http://127.0.0.1:5000/userinfo", "GET", access_token=access_token)})
    assert (info.get_json()["given_name"], info.get_json()["matricule"]) == ("Hector", printed["matricule"])


@pytest.mark.settings(ISSUER="https://idp.esante.lu")
def test_seed_refuses_to_run_on_an_https_issuer(runner):
    result = runner.invoke(args=["demo", "seed"])
    assert result.exit_code != 0 and "https" in result.output
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize("years", [0, -20])
def test_the_child_is_ten_at_the_first_seed_whatever_its_day(runner, years):
    clock.advance(timedelta(days=365 * years))
    rita = by_name(seed(runner))["Rita Doe"]
    today = clock.now().date()
    assert date.fromisoformat(rita["birth_date"]).year == today.year - 10
    assert accounts.find_by_matricule(rita["matricule"]).age_on(today) < 18


def test_seed_never_renames_a_patient_who_holds_a_demo_matricule(runner, patients):
    holder = patients.create(birth="19840615", given_name="Anna", family_name="Muller")
    holder.account.matricule = matricule.with_check_digits("19840615101")
    db.session.commit()
    result = runner.invoke(args=["demo", "seed"])
    assert result.exit_code != 0 and "already belongs" in result.output
    db.session.expire_all()
    assert accounts.find_by_matricule(holder.matricule).given_name == "Anna"
