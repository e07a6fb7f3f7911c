"""RP-Initiated Logout 1.0."""

from tests.conftest import csrf_token, query_of
from tests.oauth.conftest import authorization_request

DSP_HOME = "https://dsp.example.lu/"


def _prompt_none(oidc, rp) -> dict:
    response = oidc.authorize(authorization_request(rp, prompt="none").url)
    return query_of(response.headers["Location"])


def test_logout_with_id_token_hint_ends_the_session_and_returns_with_state(oidc, patients, rp_client, client):
    tokens = oidc.tokens(rp_client, patients.create())
    response = client.get("/logout", query_string={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": DSP_HOME, "state": "bye-1"})
    assert response.status_code == 303
    assert response.headers["Location"] == DSP_HOME + "?state=bye-1"
    assert client.get_cookie("esante_sso") is None
    assert _prompt_none(oidc, rp_client)["error"] == "login_required"


def test_logout_by_post_works_like_get(oidc, patients, rp_client, client):
    tokens = oidc.tokens(rp_client, patients.create())
    response = client.post("/logout", data={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": DSP_HOME})
    assert response.headers["Location"] == DSP_HOME
    assert _prompt_none(oidc, rp_client)["error"] == "login_required"


def test_logout_with_client_id_and_registered_uri_is_allowed(oidc, patients, rp_client, client):
    oidc.tokens(rp_client, patients.create())
    page = client.get("/logout", query_string={"client_id": rp_client.client_id, "post_logout_redirect_uri": DSP_HOME, "state": "s"})
    assert page.status_code == 200, "without id_token_hint the patient confirms"
    response = client.post("/logout", data={
        "csrf_token": csrf_token(page.get_data(as_text=True)), "confirm": "yes", "client_id": rp_client.client_id,
        "post_logout_redirect_uri": DSP_HOME, "state": "s",
    })
    assert response.headers["Location"] == DSP_HOME + "?state=s"


def test_unregistered_post_logout_redirect_uri_gets_an_error_page(oidc, patients, rp_client, client):
    tokens = oidc.tokens(rp_client, patients.create())
    response = client.get("/logout", query_string={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://attacker.example.com/"})
    assert response.status_code == 400 and "Location" not in response.headers
    assert _prompt_none(oidc, rp_client).get("code"), "the session must survive a refused logout"


def test_post_logout_redirect_uri_without_a_client_is_refused(client):
    response = client.get("/logout", query_string={"post_logout_redirect_uri": DSP_HOME})
    assert response.status_code == 400 and "Location" not in response.headers


def test_logout_without_id_token_hint_asks_for_confirmation(oidc, patients, rp_client, client):
    oidc.tokens(rp_client, patients.create())
    page = client.get("/logout")
    assert page.status_code == 200 and 'name="confirm"' in page.get_data(as_text=True)
    assert "code" in _prompt_none(oidc, rp_client), "showing the confirmation must not log out"
    done = client.post("/logout", data={"csrf_token": csrf_token(page.get_data(as_text=True)), "confirm": "yes"})
    assert done.status_code == 200
    assert _prompt_none(oidc, rp_client)["error"] == "login_required"


def test_confirmation_without_csrf_token_does_not_log_out(oidc, patients, rp_client, client):
    oidc.tokens(rp_client, patients.create())
    response = client.post("/logout", data={"confirm": "yes"})
    assert response.status_code == 200 and 'name="confirm"' in response.get_data(as_text=True)
    assert "code" in _prompt_none(oidc, rp_client)


def test_id_token_hint_of_another_patient_asks_for_confirmation(oidc, patients, rp_client, client):
    hint = oidc.tokens(rp_client, patients.create(email="a@example.lu", mobile="+352621000444"))["id_token"]
    client.delete_cookie("esante_sso")
    oidc.tokens(rp_client, patients.create())
    page = client.get("/logout", query_string={"id_token_hint": hint, "post_logout_redirect_uri": DSP_HOME})
    assert page.status_code == 200 and 'name="confirm"' in page.get_data(as_text=True)
    assert "code" in _prompt_none(oidc, rp_client)


def test_invalid_id_token_hint_gets_an_error_page(client):
    response = client.get("/logout", query_string={"id_token_hint": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"})
    assert response.status_code == 400


def test_logout_revokes_the_sessions_access_tokens_but_not_offline_ones(oidc, patients, rp_client, client):
    patient = patients.create()
    online = oidc.tokens(rp_client, patient, scope="openid profile")
    offline = oidc.tokens(rp_client, patient, scope="openid profile offline_access")
    client.get("/logout", query_string={"id_token_hint": online["id_token"]})
    assert oidc.userinfo(online["access_token"]).status_code == 401
    assert oidc.refresh(rp_client, offline["refresh_token"]).status_code == 200


def test_logout_without_a_session_still_returns_to_the_client(oidc, patients, rp_client, client):
    tokens = oidc.tokens(rp_client, patients.create())
    client.delete_cookie("esante_sso")
    response = client.get("/logout", query_string={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": DSP_HOME, "state": "x"})
    assert response.headers["Location"] == DSP_HOME + "?state=x"
