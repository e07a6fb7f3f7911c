"""The single sign-on session cookie and its lifetime."""

from datetime import timedelta

import pytest

from idp import clock
from tests.conftest import csrf_token, query_of
from tests.oauth.conftest import authorization_request


def _login_response(patients):
    return patients.login(patients.create())


def _sso_set_cookie(response) -> str:
    cookies = [value for value in response.headers.getlist("Set-Cookie") if value.startswith("esante_sso=")]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


def _prompt_none(oidc, rp) -> dict:
    return query_of(oidc.authorize(authorization_request(rp, prompt="none").url).headers["Location"])


def test_session_cookie_is_httponly_and_samesite_lax(patients):
    cookie = _sso_set_cookie(_login_response(patients))
    attributes = [part.strip() for part in cookie.split(";")]
    assert "HttpOnly" in attributes and "SameSite=Lax" in attributes and "Path=/" in attributes
    assert "Secure" not in attributes


@pytest.mark.settings(ISSUER="https://idp.example.lu")
def test_session_cookie_is_secure_when_the_issuer_is_https(patients):
    attributes = [part.strip() for part in _sso_set_cookie(_login_response(patients)).split(";")]
    assert "Secure" in attributes and "HttpOnly" in attributes and "SameSite=Lax" in attributes


def test_session_cookie_holds_only_a_random_id(patients):
    patient = patients.create()
    value = _sso_set_cookie(patients.login(patient)).split(";")[0].split("=", 1)[1]
    assert len(value) >= 43 and patient.matricule not in value and str(patient.account.id) != value


def test_every_login_gets_a_new_session_id(oidc, patients, rp_client, client):
    patient = patients.create()
    first = _sso_set_cookie(patients.login(patient)).split(";")[0]
    second = _sso_set_cookie(patients.login(patient)).split(";")[0]
    assert first != second
    client.set_cookie("esante_sso", first.split("=", 1)[1])
    assert _prompt_none(oidc, rp_client)["error"] == "login_required", "the replaced session still works"


def test_session_ends_after_the_idle_timeout(app, oidc, patients, rp_client):
    patients.login(patients.create())
    assert "code" in _prompt_none(oidc, rp_client)
    clock.advance(timedelta(seconds=app.config["SSO_IDLE_TIMEOUT"] + 1))
    assert _prompt_none(oidc, rp_client)["error"] == "login_required"


def test_activity_keeps_the_session_alive(app, oidc, patients, rp_client):
    patients.login(patients.create())
    step = timedelta(seconds=app.config["SSO_IDLE_TIMEOUT"] * 2 // 3)
    for _ in range(3):
        clock.advance(step)
        assert "code" in _prompt_none(oidc, rp_client)


def test_session_ends_after_the_absolute_timeout_even_when_active(app, oidc, patients, rp_client):
    patients.login(patients.create())
    step = timedelta(seconds=app.config["SSO_IDLE_TIMEOUT"] // 2)
    elapsed = timedelta(0)
    while elapsed + step < timedelta(seconds=app.config["SSO_ABSOLUTE_TIMEOUT"]):
        clock.advance(step)
        elapsed += step
        assert "code" in _prompt_none(oidc, rp_client), f"ended early, after {elapsed}"
    clock.advance(timedelta(seconds=app.config["SSO_ABSOLUTE_TIMEOUT"]) - elapsed + timedelta(seconds=1))
    assert _prompt_none(oidc, rp_client)["error"] == "login_required"


def test_an_ended_session_clears_its_cookie(app, oidc, patients, rp_client, client):
    patients.login(patients.create())
    clock.advance(timedelta(seconds=app.config["SSO_IDLE_TIMEOUT"] + 1))
    _prompt_none(oidc, rp_client)
    assert client.get_cookie("esante_sso") is None


def _login_with(browser, patients, remember: bool, mobile: str):
    patient = patients.create(email=None, mobile=mobile)
    page = browser.get("/login").get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "matricule": patient.matricule, "password": patient.password}
    browser.post("/login", data={**form, **({"remember": "y"} if remember else {})})
    code_page = browser.get("/login/code").get_data(as_text=True)
    return browser.post("/login/code", data={"csrf_token": csrf_token(code_page), "code": patients.last_code(mobile)})


def test_the_sso_cookie_ends_with_the_browser_unless_the_device_is_remembered(app, client, patients):
    """Before: the cookie lived 12 hours on disk, surviving a browser restart on a shared computer."""
    page = client.get("/login").get_data(as_text=True)
    assert 'name="remember"' in page and "Se souvenir de cet appareil" in page and "checked" not in page.split('name="remember"')[1][:40]
    attributes = {part.strip().split("=")[0].lower() for part in _sso_set_cookie(_login_with(client, patients, False, "+352621000501")).split(";")}
    assert "max-age" not in attributes and "expires" not in attributes, "a session cookie"
    remembered = _sso_set_cookie(_login_with(app.test_client(), patients, True, "+352621000502"))
    assert f"Max-Age={app.config['SSO_ABSOLUTE_TIMEOUT']}" in remembered, "kept for the session's absolute lifetime, no longer"


@pytest.mark.parametrize("language, label", [("de", "Dieses Gerät merken"), ("en", "Remember this device")])
def test_the_remember_box_speaks_the_patients_language(client, language, label):
    assert label in client.get("/login", headers={"Accept-Language": language}).get_data(as_text=True)
