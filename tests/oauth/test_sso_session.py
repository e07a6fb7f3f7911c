"""The single sign-on session cookie and its lifetime."""

from datetime import timedelta

import pytest

from idp import clock
from tests.conftest import query_of
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
