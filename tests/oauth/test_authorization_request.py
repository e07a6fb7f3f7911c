"""The authorization request (OpenID Connect Core §3.1.2): state, nonce, prompt, max_age, hints,
locales, acr, the claims parameter, response modes and RFC 9207 ``iss``."""

import json
import re
from datetime import timedelta
from urllib.parse import urlsplit

from idp import clock
from tests.conftest import query_of
from tests.oauth.conftest import authorization_request, hidden_fields, is_login_redirect

ISSUER = "http://127.0.0.1:5000"
SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"


def _url(rp, **params) -> str:
    return authorization_request(rp, **params).url


def _answer(response) -> dict:
    assert response.status_code == 303, response.get_data(as_text=True)
    return query_of(response.headers["Location"])


def _logged_in(oidc, patients, rp, patient=None):
    patient = patient or patients.create()
    oidc.code(rp, patient)
    return patient


# --- state, nonce ----------------------------------------------------------------------------


def test_state_is_echoed_with_the_code(oidc, patients, rp_client):
    issued = oidc.code(rp_client, patients.create(), state="af0ifjsldkj")
    assert issued.answer["state"] == "af0ifjsldkj"
    assert urlsplit(issued.redirect_uri).netloc == "dsp.example.lu"


def test_nonce_is_in_the_id_token(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create(), nonce="n-0S6_WzA2Mj")
    assert oidc.verify(tokens["id_token"]).claims["nonce"] == "n-0S6_WzA2Mj"


def test_nonce_reused_by_the_same_client_is_rejected(oidc, patients, rp_client):
    patient = patients.create()
    oidc.code(rp_client, patient, nonce="n-used-once")
    answer = _answer(oidc.authorize(_url(rp_client, nonce="n-used-once", state="again")))
    assert answer["error"] == "invalid_request" and answer["state"] == "again" and "code" not in answer


def test_nonce_of_another_client_is_not_a_replay(oidc, patients, rp_client, third_party_client):
    patient = patients.create()
    oidc.code(rp_client, patient, nonce="n-shared")
    page = oidc.authorize(_url(third_party_client, nonce="n-shared"))
    assert page.status_code == 200 and "Pharmacie du Centre" in page.get_data(as_text=True)


# --- prompt ----------------------------------------------------------------------------------


def test_prompt_none_without_session_is_login_required(oidc, rp_client):
    answer = _answer(oidc.authorize(_url(rp_client, prompt="none", state="s-none")))
    assert answer["error"] == "login_required" and answer["state"] == "s-none" and answer["iss"] == ISSUER
    assert "code" not in answer


def test_prompt_none_with_session_returns_a_code_without_any_page(oidc, patients, rp_client):
    _logged_in(oidc, patients, rp_client)
    answer = _answer(oidc.authorize(_url(rp_client, prompt="none")))
    assert "code" in answer


def test_prompt_none_when_consent_is_needed_is_consent_required(oidc, patients, rp_client, third_party_client):
    _logged_in(oidc, patients, rp_client)
    answer = _answer(oidc.authorize(_url(third_party_client, prompt="none", state="s-consent")))
    assert answer["error"] == "consent_required" and answer["state"] == "s-consent" and answer["iss"] == ISSUER


def test_prompt_none_combined_with_another_value_is_invalid(oidc, patients, rp_client):
    _logged_in(oidc, patients, rp_client)
    assert _answer(oidc.authorize(_url(rp_client, prompt="none login")))["error"] == "invalid_request"


def test_prompt_login_forces_a_new_login_even_with_a_session(oidc, patients, rp_client, client):
    _logged_in(oidc, patients, rp_client)
    url = _url(rp_client, prompt="login")
    first = client.get(url)
    assert is_login_redirect(first)
    again = client.get(url)
    assert is_login_redirect(again), "the old session answered a prompt=login request"


def test_prompt_login_succeeds_after_the_new_login_without_looping(oidc, patients, rp_client, client):
    patient = _logged_in(oidc, patients, rp_client)
    first_session = client.get_cookie("esante_sso").value
    url = _url(rp_client, prompt="login")
    answer = _answer(oidc.authorize(url, patient))
    assert "code" in answer
    assert client.get_cookie("esante_sso").value != first_session


def test_prompt_login_for_a_third_party_goes_through_login_then_consent_once(oidc, patients, rp_client, third_party_client):
    patient = _logged_in(oidc, patients, rp_client)
    request = authorization_request(third_party_client, prompt="login")
    issued = request.issued(oidc.authorize(request.url, patient, decision="allow"))
    assert oidc.exchange(third_party_client, issued).status_code == 200


def test_authorization_request_may_be_posted(oidc, patients, rp_client, client):
    """Core §3.1.2.1: the authorization endpoint supports GET and POST."""
    _logged_in(oidc, patients, rp_client)
    request = authorization_request(rp_client, state="s-post")
    response = client.post("/authorize", data=query_of(request.url))
    issued = request.issued(response)
    assert issued.answer["state"] == "s-post"
    assert oidc.exchange(rp_client, issued).status_code == 200


# --- max_age, auth_time ----------------------------------------------------------------------


def test_max_age_forces_a_new_login_when_the_session_is_older(oidc, patients, rp_client, client):
    patient = _logged_in(oidc, patients, rp_client)
    clock.advance(timedelta(minutes=10))
    request = authorization_request(rp_client, max_age="300")
    assert is_login_redirect(client.get(request.url))
    before_login = clock.timestamp()
    tokens = oidc.exchange(rp_client, request.issued(oidc.authorize(request.url, patient))).get_json()
    auth_time = oidc.verify(tokens["id_token"]).claims["auth_time"]
    assert before_login <= auth_time <= clock.timestamp()


def test_max_age_does_not_disturb_a_recent_session(oidc, patients, rp_client):
    _logged_in(oidc, patients, rp_client)
    clock.advance(timedelta(minutes=2))
    assert "code" in _answer(oidc.authorize(_url(rp_client, max_age="300")))


def test_id_token_has_auth_time(oidc, patients, rp_client):
    login_started = clock.timestamp()
    tokens = oidc.tokens(rp_client, patients.create())
    assert login_started <= oidc.verify(tokens["id_token"]).claims["auth_time"] <= clock.timestamp()


def test_max_age_zero_logs_in_once_and_then_answers(oidc, patients, rp_client, client):
    patient = _logged_in(oidc, patients, rp_client)
    request = authorization_request(rp_client, max_age="0")
    assert is_login_redirect(client.get(request.url))
    assert "code" in request.issued(oidc.authorize(request.url, patient)).answer


def test_negative_max_age_is_invalid(oidc, patients, rp_client):
    _logged_in(oidc, patients, rp_client)
    assert _answer(oidc.authorize(_url(rp_client, max_age="-1")))["error"] == "invalid_request"


# --- id_token_hint, login_hint, ui_locales ---------------------------------------------------


def test_id_token_hint_of_the_logged_in_patient_is_answered_from_the_session(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create())
    answer = _answer(oidc.authorize(_url(rp_client, prompt="none", id_token_hint=tokens["id_token"])))
    assert "code" in answer


def test_id_token_hint_for_another_patient_forces_login(oidc, patients, rp_client, client):
    other = patients.create(email="other@example.lu", mobile="+352621000999")
    hint = oidc.tokens(rp_client, other)["id_token"]
    client.delete_cookie("esante_sso")
    _logged_in(oidc, patients, rp_client, patients.create())
    assert is_login_redirect(client.get(_url(rp_client, id_token_hint=hint)))
    assert _answer(client.get(_url(rp_client, id_token_hint=hint, prompt="none")))["error"] == "login_required"


def test_login_hint_prefills_the_matricule(oidc, patients, rp_client, client):
    patient = patients.create()
    response = client.get(_url(rp_client, login_hint=patient.matricule))
    login_page = client.get(response.headers["Location"]).get_data(as_text=True)
    field = re.search(r'<input[^>]*name="matricule"[^>]*>', login_page).group(0)
    assert f'value="{patient.matricule}"' in field


def test_ui_locales_switches_the_page_language(client, rp_client):
    response = client.get(_url(rp_client, ui_locales="de-LU en"))
    login_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert '<html lang="de">' in login_page


# --- acr, amr --------------------------------------------------------------------------------


def test_acr_is_the_eidas_level_and_amr_lists_the_factors(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create(), acr_values=SUBSTANTIAL)
    claims = oidc.verify(tokens["id_token"]).claims
    assert claims["acr"] == SUBSTANTIAL
    assert {"pwd", "otp", "sms"} <= set(claims["amr"])


def test_amr_does_not_say_sms_when_the_code_went_by_e_mail(oidc, patients, rp_client, client):
    patient = patients.create()
    request = authorization_request(rp_client)
    start = client.get(request.url)
    patients.submit_password(patient, query_of(start.headers["Location"])["next"])
    patients.choose_channel("email")
    done = patients.submit_code(patients.last_code(patient.account.email))
    tokens = oidc.exchange(rp_client, request.issued(client.get(done.headers["Location"]))).get_json()
    amr = oidc.verify(tokens["id_token"]).claims["amr"]
    assert {"pwd", "otp"} <= set(amr) and "sms" not in amr


# --- the claims parameter --------------------------------------------------------------------


def test_claims_parameter_puts_a_claim_in_the_id_token(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create(), claims=json.dumps({"id_token": {"email": None}}))
    claims = oidc.verify(tokens["id_token"]).claims
    assert claims["email"] == "patient@example.lu"


def test_id_token_has_no_profile_claims_unless_asked(oidc, patients, rp_client):
    claims = oidc.verify(oidc.tokens(rp_client, patients.create())["id_token"]).claims
    assert "email" not in claims and "family_name" not in claims and "matricule" not in claims


def test_claims_parameter_cannot_reach_the_matricule_without_the_scope(oidc, patients, third_party_client, client):
    patient = patients.create()
    wanted = {"userinfo": {"matricule": None}, "id_token": {"matricule": {"essential": True}}}
    request = authorization_request(third_party_client, scope="openid profile matricule", claims=json.dumps(wanted))
    form = hidden_fields(oidc.authorize(request.url, patient).get_data(as_text=True))
    assert json.loads(form["claims"]) == wanted
    tokens = oidc.exchange(third_party_client, request.issued(client.post("/authorize", data={**form, "decision": "allow"}))).get_json()
    assert "matricule" not in oidc.verify(tokens["id_token"]).claims
    info = oidc.userinfo(tokens["access_token"]).get_json()
    assert "matricule" not in info and patient.matricule not in json.dumps(info)


def test_claims_parameter_releases_the_matricule_to_a_client_allowed_it(oidc, patients, rp_client):
    patient = patients.create()
    tokens = oidc.tokens(rp_client, patient, scope="openid matricule", claims=json.dumps({"id_token": {"matricule": None}}))
    assert oidc.verify(tokens["id_token"]).claims["matricule"] == patient.matricule


def test_invalid_claims_json_is_invalid_request(oidc, patients, rp_client):
    _logged_in(oidc, patients, rp_client)
    answer = _answer(oidc.authorize(_url(rp_client, claims="{not json", state="s-claims")))
    assert answer["error"] == "invalid_request" and answer["state"] == "s-claims" and answer["iss"] == ISSUER


def test_claims_with_an_unknown_member_is_invalid_request(oidc, patients, rp_client):
    _logged_in(oidc, patients, rp_client)
    assert _answer(oidc.authorize(_url(rp_client, claims='{"access_token": {}}')))["error"] == "invalid_request"


# --- response modes and RFC 9207 iss ---------------------------------------------------------


def test_form_post_returns_a_form_that_posts_code_state_and_iss_to_the_client(oidc, patients, rp_client):
    _logged_in(oidc, patients, rp_client)
    response = oidc.authorize(_url(rp_client, response_mode="form_post", state="s-form"))
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert re.search(r'<form method="post" action="https://dsp.example.lu/callback"', page)
    fields = hidden_fields(page)
    assert set(fields) == {"code", "state", "iss"}
    assert fields["state"] == "s-form" and fields["iss"] == ISSUER
    assert response.headers["Cache-Control"] == "no-store"


def test_form_post_page_has_no_inline_script_and_its_csp_allows_the_form_action(oidc, patients, rp_client):
    _logged_in(oidc, patients, rp_client)
    response = oidc.authorize(_url(rp_client, response_mode="form_post"))
    page = response.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all('src="' in attributes and not body.strip() for attributes, body in scripts)
    directives = dict(d.strip().split(" ", 1) for d in response.headers["Content-Security-Policy"].split(";") if " " in d.strip())
    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives["form-action"].split() == ["https://dsp.example.lu"]


def test_form_post_error_carries_error_state_and_iss(oidc, rp_client):
    response = oidc.authorize(_url(rp_client, response_mode="form_post", prompt="none", state="s-fe"))
    fields = hidden_fields(response.get_data(as_text=True))
    assert fields["error"] == "login_required" and fields["state"] == "s-fe" and fields["iss"] == ISSUER


def test_unsupported_response_mode_is_an_error(oidc, patients, rp_client):
    _logged_in(oidc, patients, rp_client)
    assert _answer(oidc.authorize(_url(rp_client, response_mode="fragment")))["error"] == "invalid_request"


def test_every_redirect_carries_iss(oidc, patients, rp_client, third_party_client, client):
    patient = patients.create()
    assert oidc.code(rp_client, patient).answer["iss"] == ISSUER
    assert _answer(client.get(_url(rp_client, max_age="x")))["iss"] == ISSUER
    form = hidden_fields(oidc.authorize(_url(third_party_client)).get_data(as_text=True))
    answer = _answer(client.post("/authorize", data={**form, "decision": "deny"}))
    assert answer["error"] == "access_denied" and answer["iss"] == ISSUER


def test_request_objects_are_refused_with_their_own_error(oidc, patients, rp_client):
    _logged_in(oidc, patients, rp_client)
    assert _answer(oidc.authorize(_url(rp_client, request="eyJhbGciOiJub25lIn0.e30.")))["error"] == "request_not_supported"
    assert _answer(oidc.authorize(_url(rp_client, request_uri="https://dsp.example.lu/r/1")))["error"] == "request_uri_not_supported"



def test_the_implicit_and_hybrid_flows_are_refused(oidc, patients, rp_client):
    """RFC 9700 §2.1.2: no token in the front channel; only ``response_type=code``."""
    _logged_in(oidc, patients, rp_client)
    for response_type in ("token", "id_token", "code id_token", "code token"):
        answer = _answer(oidc.authorize(_url(rp_client, response_type=response_type)))
        assert answer["error"] == "unsupported_response_type" and "access_token" not in answer and "id_token" not in answer
