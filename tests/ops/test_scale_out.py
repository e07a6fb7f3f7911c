"""Two gunicorn instances behind a round-robin nginx, sharing PostgreSQL and Redis.

Nothing that matters lives in one process: a login on one instance is an SSO session on the
other, a code issued by one is redeemed at the other, a logout on one ends the session on both,
per-IP rate limits are counted across both, and a key rotated from one is published by both.
Requests go straight to the chosen instance (with the X-Forwarded-For nginx would add, to give
each test its own client address) or through nginx, as relying parties do.
"""

import itertools
import json
import re
import secrets
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from bench.cluster import Balancer, Instance, Services, free_port, idp_environment, run_idp
from idp import client as clients, create_app, matricule, messaging
from idp.extensions import db
from tests.conftest import PatientFactory, csrf_token, pkce_pair
from tests.ops.conftest import metric_value

CALLBACK = "https://dsp.example.lu/callback"
LOGIN_LIMIT = 4


class Deployment:
    """The running deployment, and an app on its database to seed it and read the outbox."""

    def __init__(self, environment, first: Instance, second: Instance, balancer: Balancer):
        self.environment, self.first, self.second, self.balancer = environment, first, second, balancer
        self.app = create_app({key.removeprefix("IDP_"): value for key, value in environment.items()})
        self.patients = PatientFactory(self.app, None)

    def patient(self):
        with self.app.app_context():
            created = self.patients.create(email=None, mobile=f"+35262{secrets.randbelow(10**7):07d}")
            db.session.refresh(created.account)  # loaded before the session goes
            db.session.expunge_all()
            return created

    def relying_party(self, **metadata):
        """A client's (client_id, secret)."""
        metadata = metadata or {"redirect_uris": [CALLBACK], "post_logout_redirect_uris": ["https://dsp.example.lu/"]}
        with self.app.app_context():
            registered, secret = clients.create(name="DSP viewer", first_party=True, scope="openid profile offline_access", **metadata)
            db.session.commit()
            return registered.client_id, secret

    def last_code(self, to: str) -> str:
        with self.app.app_context():
            return re.search(r"\b(\d{6})\b", messaging.outbox_messages(to)[-1].body).group(1)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scale-out")
    services = Services(folder / "services").start()
    started = []
    try:
        balancer = Balancer(folder / "nginx", port=free_port())
        environment = idp_environment(services, balancer.url, folder / "instance", RATE_LIMIT_LOGIN=f"{LOGIN_LIMIT} per minute")
        run_idp(environment, "db", "upgrade")
        first = Instance(environment, folder, workers=2).start()
        started.append(first)
        second = Instance(environment, folder, workers=1).start()
        started.append(second)
        balancer.start([first, second])
        started.append(balancer)
        yield Deployment(environment, first, second, balancer)
    finally:
        for process in reversed(started):
            process.stop()
        services.stop()


_CLIENT_ADDRESSES = itertools.count(1)


class Browser:
    """A user agent that picks the instance of each request; its cookies hold for the host
    127.0.0.1 whatever the port, as they would for the one public host name."""

    def __init__(self, deployment: Deployment):
        self.deployment = deployment
        self.http = requests.Session()
        self.http.headers["X-Forwarded-For"] = f"203.0.113.{next(_CLIENT_ADDRESSES)}"  # its own rate-limit bucket

    def get(self, instance, target: str):
        return self.http.get(instance.url + _path(target), allow_redirects=False, timeout=30)

    def post(self, instance, target: str, data: dict):
        return self.http.post(instance.url + _path(target), data=data, allow_redirects=False, timeout=30)

    def login(self, instance, patient, authorize_query: str) -> str:
        """Authorize, password, one-time code on ``instance``; returns the redirect to the client."""
        to_login = self.get(instance, "/authorize?" + authorize_query)
        assert to_login.status_code in (302, 303), to_login.text
        page = self.get(instance, to_login.headers["Location"])
        sent = self.post(instance, "/login", {"csrf_token": csrf_token(page.text), "matricule": patient.matricule,
                                              "password": patient.password, "next": _query(to_login.headers["Location"])["next"]})
        assert sent.status_code == 303 and sent.headers["Location"].endswith("/login/code"), sent.text
        page = self.get(instance, "/login/code")
        code = self.deployment.last_code(patient.account.mobile)
        done = self.post(instance, "/login/code", {"csrf_token": csrf_token(page.text), "code": code})
        assert done.status_code == 303, done.text
        back = self.get(instance, done.headers["Location"])
        assert back.status_code in (302, 303) and back.headers["Location"].startswith(CALLBACK), back.text
        return back.headers["Location"]


def _path(target: str) -> str:
    parts = urlsplit(target)
    return parts.path + ("?" + parts.query if parts.query else "")


def _query(location: str) -> dict:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def _authorize_query(client_id: str, **extra) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK, "scope": "openid profile offline_access",
              "state": secrets.token_hex(4), "nonce": secrets.token_hex(8), "code_challenge": challenge,
              "code_challenge_method": "S256", **extra}
    return urlencode(params), verifier


def _redeem(instance, rp: tuple[str, str], location: str, verifier: str) -> dict:
    response = requests.post(instance.url + "/token", auth=rp, timeout=30, data={
        "grant_type": "authorization_code", "code": _query(location)["code"], "redirect_uri": CALLBACK, "code_verifier": verifier})
    assert response.status_code == 200, response.text
    return response.json()


def _userinfo(base_url: str, access_token: str):
    return requests.get(base_url + "/userinfo", headers={"Authorization": "Bearer " + access_token}, timeout=30)


def test_login_on_one_instance_token_on_the_other_userinfo_on_either(deployment):
    rp, patient, browser = deployment.relying_party(), deployment.patient(), Browser(deployment)
    query, verifier = _authorize_query(rp[0])
    location = browser.login(deployment.first, patient, query)

    tokens = _redeem(deployment.second, rp, location, verifier)

    answers = [_userinfo(base, tokens["access_token"]) for base in (deployment.first.url, deployment.second.url, deployment.balancer.url)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert len({answer.json()["sub"] for answer in answers}) == 1
    refreshed = requests.post(deployment.first.url + "/token", auth=rp, timeout=30,
                              data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    replayed = requests.post(deployment.second.url + "/token", auth=rp, timeout=30,
                             data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert replayed.json()["error"] == "invalid_grant"


def test_logout_on_one_instance_ends_the_sso_session_on_both(deployment):
    rp, patient, browser = deployment.relying_party(), deployment.patient(), Browser(deployment)
    query, verifier = _authorize_query(rp[0])
    tokens = _redeem(deployment.second, rp, browser.login(deployment.first, patient, query), verifier)
    silent, _ = _authorize_query(rp[0], prompt="none")
    assert "code" in _query(browser.get(deployment.second, "/authorize?" + silent).headers["Location"])

    logout = browser.get(deployment.first, "/logout?" + urlencode({"id_token_hint": tokens["id_token"],
                                                                    "post_logout_redirect_uri": "https://dsp.example.lu/"}))
    assert logout.status_code == 303, logout.text

    for instance in (deployment.second, deployment.first):
        silent, _ = _authorize_query(rp[0], prompt="none")
        answer = _query(browser.get(instance, "/authorize?" + silent).headers["Location"])
        assert answer.get("error") == "login_required", answer


def _wrong_login(browser: Browser, instance) -> int:
    """A login attempt with an unknown matricule each time (so no per-account lock interferes)."""
    page = browser.get(instance, "/login")
    unknown = matricule.with_check_digits(f"1970{secrets.randbelow(10**7):07d}")
    return browser.post(instance, "/login", {"csrf_token": csrf_token(page.text), "matricule": unknown,
                                             "password": "Wrong-password-1"}).status_code


def test_per_ip_login_rate_limit_is_counted_across_both_instances(deployment):
    browser = Browser(deployment)
    statuses = [_wrong_login(browser, (deployment.first, deployment.second)[attempt % 2]) for attempt in range(LOGIN_LIMIT + 1)]
    assert statuses == [400] * LOGIN_LIMIT + [429]
    assert _wrong_login(Browser(deployment), deployment.first) == 400  # another client address has its own count


def _published_kids(instance) -> set[str]:
    response = requests.get(instance.url + "/jwks.json", timeout=30)
    assert response.status_code == 200
    return {key["kid"] for key in response.json()["keys"]}


def _client_credentials_token(instance, rp) -> str:
    issued = requests.post(instance.url + "/token", auth=rp, data={"grant_type": "client_credentials"}, timeout=30)
    assert issued.status_code == 200, issued.text
    return issued.json()["access_token"]


API_AUDIENCE = "https://api.dsp.example.lu"


def _introspect(instance, rp, token: str) -> dict:
    return requests.post(instance.url + "/introspect", auth=rp, data={"token": token}, timeout=30).json()


def test_key_rotated_on_one_instance_is_published_and_used_by_both(deployment):
    # A machine client whose tokens are for the DSP API, and the DSP API, which may introspect them (RFC 7662 §4).
    rp_client = deployment.relying_party(grant_types=["client_credentials"], extra_metadata={"access_token_audiences": [API_AUDIENCE]})
    rp = deployment.relying_party(grant_types=["client_credentials"], resource_audience=API_AUDIENCE)
    before = _published_kids(deployment.first)
    assert _published_kids(deployment.second) == before
    old_token = _client_credentials_token(deployment.second, rp_client)
    assert _introspect(deployment.first, rp, old_token)["active"] is True  # each instance has read the keys

    rotated = json.loads(run_idp(deployment.environment, "keys", "rotate", "--json"))
    new_kids = {key["kid"] for key in rotated}

    # Each worker keeps its JWKS answer SIGNING_KEY_CACHE_SECONDS (5 s by default); the new keys
    # sign only after that long, so every instance publishes them before any token needs them.
    for instance in (deployment.first, deployment.second):
        deadline = time.monotonic() + 30
        while not new_kids <= (published := _published_kids(instance)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert new_kids <= published and before <= published  # old keys stay until their tokens expire
    assert _introspect(deployment.second, rp, old_token)["active"] is True
    # Each instance moves to the new key within SIGNING_KEY_CACHE_SECONDS (5 s by default) and
    # the other verifies what it signs at once, whatever keys it had read before.
    deadline = time.monotonic() + 30
    while True:
        token = _client_credentials_token(deployment.first, rp_client)
        kid = jwt.decode(token, KeySet.import_key_set(requests.get(deployment.second.url + "/jwks.json", timeout=30).json()),
                         algorithms=["RS256"]).header["kid"]
        if kid in new_kids or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert kid in new_kids
    assert _introspect(deployment.second, rp, token)["active"] is True


def test_round_robin_reaches_both_instances_and_each_logs_json_with_the_request_id(deployment):
    answers = [requests.get(deployment.balancer.url + "/.well-known/openid-configuration", timeout=30) for _ in range(4)]
    assert {answer.status_code for answer in answers} == {200}
    assert {answer.headers["X-Upstream"] for answer in answers} == {f"127.0.0.1:{deployment.first.port}",
                                                                   f"127.0.0.1:{deployment.second.port}"}
    logged = {}
    for instance in (deployment.first, deployment.second):
        for line in instance.log_path.read_text().splitlines():
            entry = json.loads(line)  # every line gunicorn and the app write is JSON
            if entry.get("logger") == "idp.access":
                logged[entry["request_id"]] = entry
    for answer in answers:
        assert logged[answer.headers["X-Request-ID"]]["path"] == "/.well-known/openid-configuration"


def test_metrics_of_an_instance_sum_its_workers(deployment):
    instance = deployment.first
    assert len(instance.worker_pids()) == 2
    before = requests.get(instance.url + "/metrics", timeout=30).text
    for _ in range(12):
        requests.get(instance.url + "/jwks.json", timeout=30, headers={"Connection": "close"})
    after = requests.get(instance.url + "/metrics", timeout=30).text
    labels = {"endpoint": "/jwks.json", "method": "GET", "status": "200"}
    assert metric_value(after, "idp_http_requests_total", **labels) - metric_value(before, "idp_http_requests_total", **labels) == 12


def test_readiness_of_both_instances_checks_database_and_redis(deployment):
    for instance in (deployment.first, deployment.second):
        response = requests.get(instance.url + "/readyz", timeout=30)
        assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
