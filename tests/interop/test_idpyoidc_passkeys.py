"""An independent strict relying party (idpyoidc) sees a passkey login's ``amr``, ``acr`` and ``auth_time``.

The patient adds a passkey (password + code first, as the account page requires), then a fresh
browser signs in to the relying party with the passkey alone. idpyoidc checks the ID token
(signature, ``iss``, ``aud``, ``nonce``, ``at_hash``, and ``auth_time`` against the ``max_age``
it asked); the test reads what the RP received.
"""

import time
from urllib.parse import urlsplit

import requests

from idp import clock, sso_session
from idp.extensions import db
from tests.interop.test_idpyoidc import PatientBrowser, browser, live_provider, relying_party  # noqa: F401  (fixtures)
from tests.support import passkey_driver
from tests.support.soft_authenticator import SoftAuthenticator


class PasskeyBrowser(PatientBrowser):
    """The patient's browser answering the login page with a passkey instead of password + code."""

    def __init__(self, provider, patient, authenticator: SoftAuthenticator):
        super().__init__(provider, patient)
        self.authenticator = authenticator

    def _step(self, target: str):
        if urlsplit(target).path != "/login":
            return super()._step(target)
        token, options = passkey_driver.login_options(_Absolute(self.session, self.provider.url), page=target)
        next_url = dict(part.split("=", 1) for part in urlsplit(target).query.split("&"))["next"]
        answer = self.authenticator.get(options)
        return passkey_driver.post_answer(_Absolute(self.session, self.provider.url), token, answer,
                                          next_url=requests.utils.unquote(next_url))


class _Absolute:
    """A requests session taking the provider's paths (the driver speaks in paths)."""

    def __init__(self, session: requests.Session, base: str):
        self.session, self.base = session, base

    def get(self, path: str, **kwargs):
        return self.session.get(path if path.startswith("http") else self.base + path, allow_redirects=False, **kwargs)

    def post(self, path: str, **kwargs):
        return self.session.post(self.base + path, allow_redirects=False, **kwargs)


def log_in_with_password(browser: PatientBrowser, url: str) -> None:
    response = browser._step(url)
    while response.status_code in (302, 303) and not response.headers["Location"].endswith("/account/passkeys/new"):
        response = browser._step(requests.compat.urljoin(response.url, response.headers["Location"]))
    assert response.status_code == 303, response.text[:300]


def test_a_strict_rp_sees_amr_acr_and_auth_time_of_a_passkey_login(live_provider, relying_party, browser):
    authenticator = SoftAuthenticator(rp_id="127.0.0.1", origin=live_provider.url)
    log_in_with_password(browser, live_provider.url + "/login?next=/account/passkeys/new")  # as the page requires
    added = passkey_driver.register(_Absolute(browser.session, live_provider.url), authenticator)
    assert added.status_code == 303, added.text[:300]
    passkey_browser = PasskeyBrowser(live_provider, browser.patient, authenticator)
    before = int(time.time())

    result = relying_party.sign_in(passkey_browser, max_age=600, acr_values="http://eidas.europa.eu/LoA/substantial")

    assert "error" not in result, result
    id_token = result["id_token"]  # verified by idpyoidc, auth_time included (max_age was asked)
    assert id_token["amr"] == ["hwk", "user", "mfa"]
    assert id_token["acr"] == "http://eidas.europa.eu/LoA/substantial"
    assert before - 1 <= id_token["auth_time"] <= int(time.time())
    db.session.rollback()
    [passkey_session] = [row for row in db.session.query(sso_session.SsoSession) if "hwk" in row.amr]
    assert id_token["auth_time"] == clock.to_timestamp(passkey_session.auth_time), "the passkey login's time, not an earlier one"
