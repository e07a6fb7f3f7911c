"""Admin web UI: password + TOTP login, the client registry pages and the audit log."""

import hashlib
import re
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import func, select

from idp import admin_account, admin_session, audit, client as clients, clock
from idp.extensions import db
from tests.conftest import csrf_token

PASSWORD = "Correct-Horse-42-battery"
NEW_CLIENT = {
    "name": "Pharmacie du Centre",
    "redirect_uris": "https://pharmacie.example.lu/callback\n\nhttps://pharmacie.example.lu/callback2\n",
    "post_logout_redirect_uris": "https://pharmacie.example.lu/",
    "grant_types": ["authorization_code", "refresh_token"],
    "scope": "openid profile email",
    "auth_method": "client_secret_basic",
    "jwks": "",
    "subject_type": "",
}
SECRET_RE = re.compile(r'id="client-secret">([^<]+)<')


class AdminBrowser:
    """Drives the admin pages like an administrator with an authenticator app."""

    def __init__(self, client, username: str = "alice"):
        self.client = client
        self.account = admin_account.create(username, PASSWORD)
        db.session.commit()
        self.totp = pyotp.TOTP(admin_account.totp_seed(self.account))

    def code(self) -> str:
        return self.totp.at(clock.timestamp())

    def submit_login(self, password: str = PASSWORD, code: str | None = None, username: str | None = None):
        page = self.client.get("/admin/login")
        return self.client.post("/admin/login", data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "username": username or self.account.username,
            "password": password,
            "totp_code": self.code() if code is None else code,
        })

    def login(self):
        response = self.submit_login()
        assert response.status_code == 303, response.get_data(as_text=True)
        return response

    def post(self, url: str, data: dict | None = None, form_page: str = "/admin/"):
        token = csrf_token(self.client.get(form_page).get_data(as_text=True))
        return self.client.post(url, data={"csrf_token": token, **(data or {})})

    def create_client(self, **changes):
        return self.post("/admin/clients/new", {**NEW_CLIENT, **changes}, form_page="/admin/clients/new")


@pytest.fixture
def admin(client):
    return AdminBrowser(client)


def is_login_redirect(response) -> bool:
    return response.status_code == 303 and response.headers["Location"].endswith("/admin/login")


def client_count() -> int:
    return db.session.scalar(select(func.count()).select_from(clients.Client))


def events(name: audit.Event) -> list[audit.AuditEvent]:
    return audit.recent(name=name.value)


def test_login_with_password_and_totp_opens_the_admin_pages(client, admin):
    response = admin.login()
    assert response.headers["Location"].endswith("/admin/")
    page = client.get("/admin/")
    assert page.status_code == 200 and "Clients" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert [e.actor for e in events(audit.Event.ADMIN_LOGIN_SUCCEEDED)] == ["alice"]


@pytest.mark.parametrize("password, code", [
    ("Wrong-Horse-42-battery", None),
    (PASSWORD, "000000"),
    (PASSWORD, ""),
])
def test_login_needs_the_right_password_and_totp_code(client, admin, password, code):
    if code == "000000" and admin.code() == "000000":
        code = "111111"
    response = admin.submit_login(password=password, code=code)
    assert response.status_code == 400
    assert is_login_redirect(client.get("/admin/"))


def test_failed_login_gives_one_generic_message_and_is_audited(client, admin):
    unknown = admin.submit_login(username="mallory").get_data(as_text=True)
    wrong_password = admin.submit_login(password="Wrong-Horse-42-battery").get_data(as_text=True)
    assert "Identifiant, mot de passe ou code incorrect." in unknown
    assert "Identifiant, mot de passe ou code incorrect." in wrong_password
    assert [e.actor for e in reversed(events(audit.Event.ADMIN_LOGIN_FAILED))] == ["mallory", "alice"]


def test_totp_code_cannot_be_used_twice(client, admin):
    code = admin.code()
    admin.login()
    client.post("/admin/logout", data={"csrf_token": csrf_token(client.get("/admin/").get_data(as_text=True))})
    assert admin.submit_login(code=code).status_code == 400
    clock.advance(timedelta(seconds=30))
    assert admin.submit_login().status_code == 303


def test_every_page_but_login_needs_the_admin_session(client, admin):
    rp, _ = clients.create(name="RP", redirect_uris=["https://rp.example.lu/cb"])
    db.session.commit()
    for url in ("/admin/", "/admin/clients/new", f"/admin/clients/{rp.client_id}", "/admin/audit"):
        assert is_login_redirect(client.get(url)), url
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    for url in ("/admin/clients/new", f"/admin/clients/{rp.client_id}/disable", f"/admin/clients/{rp.client_id}/rotate-secret"):
        assert is_login_redirect(client.post(url, data={"csrf_token": token, **NEW_CLIENT})), url
    assert clients.get(rp.client_id) is not None and client_count() == 1
    assert client.get("/admin/login").status_code == 200


def test_session_ends_after_15_idle_minutes(client, admin):
    admin.login()
    clock.advance(timedelta(minutes=10))
    assert client.get("/admin/").status_code == 200
    clock.advance(timedelta(minutes=10))
    assert client.get("/admin/").status_code == 200
    clock.advance(timedelta(minutes=15, seconds=1))
    assert is_login_redirect(client.get("/admin/"))
    assert is_login_redirect(client.get("/admin/"))


def test_login_starts_a_new_session(client, admin):
    with client.session_transaction() as session:
        session["planted"] = "before login"
    client.set_cookie("esante_admin", "planted-before-login", path="/admin")
    admin.login()
    with client.session_transaction() as session:
        assert "planted" not in session and "admin_id" not in session, "nothing of the admin session is in the signed cookie"
    cookie = client.get_cookie("esante_admin", path="/admin")
    assert cookie.value != "planted-before-login" and len(cookie.value) == 43
    (row,) = db.session.scalars(select(admin_session.AdminSession))
    assert row.id == hashlib.sha256(cookie.value.encode()).hexdigest() and row.admin_id == admin.account.id, \
        "the database holds the session, the browser only a random id"


def test_logout_ends_the_session(client, admin):
    admin.login()
    response = admin.post("/admin/logout")
    assert is_login_redirect(response)
    assert is_login_redirect(client.get("/admin/"))


@pytest.mark.settings(RATE_LIMIT_LOGIN="3 per minute")
def test_login_attempts_are_rate_limited_per_ip(client, admin):
    statuses = [admin.submit_login(password="Wrong-Horse-42-battery").status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 429]


def test_post_without_csrf_token_is_refused(client, admin):
    refused = client.post("/admin/login", data={"username": "alice", "password": PASSWORD, "totp_code": admin.code()})
    assert refused.status_code == 400
    assert is_login_redirect(client.get("/admin/"))
    admin.login()
    assert client.post("/admin/clients/new", data=NEW_CLIENT).status_code == 400
    assert client_count() == 0


def test_create_client_shows_the_secret_once(client, admin):
    admin.login()
    response = admin.create_client()
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    secret = SECRET_RE.search(response.get_data(as_text=True)).group(1)
    created = clients.all_clients()[0]
    assert created.name == "Pharmacie du Centre"
    assert created.redirect_uris == ["https://pharmacie.example.lu/callback", "https://pharmacie.example.lu/callback2"]
    assert created.post_logout_redirect_uris == ["https://pharmacie.example.lu/"]
    assert created.scope == "openid profile email" and created.first_party is False and created.subject_type == "pairwise"
    assert created.client_secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in client.get(f"/admin/clients/{created.client_id}").get_data(as_text=True)
    assert secret not in client.get("/admin/").get_data(as_text=True)
    assert [(e.client_id, e.actor) for e in events(audit.Event.CLIENT_CREATED)] == [(created.client_id, "admin:alice")]


def test_create_public_first_party_client(client, admin):
    admin.login()
    response = admin.create_client(name="MyDSP", redirect_uris="lu.esante.mydsp:/callback", auth_method="none", first_party="y")
    assert response.status_code == 200
    assert not SECRET_RE.search(response.get_data(as_text=True))
    created = clients.all_clients()[0]
    assert created.is_public and created.first_party and created.subject_type == "public"


def test_invalid_client_is_refused_with_a_message_and_nothing_written(client, admin):
    admin.login()
    response = admin.create_client(redirect_uris="http://pharmacie.example.lu/callback")
    assert response.status_code == 400
    assert "Enregistrement refusé" in response.get_data(as_text=True)
    bad_jwks = admin.create_client(auth_method="private_key_jwt", jwks="{not json")
    assert bad_jwks.status_code == 400
    assert admin.create_client(grant_types=[]).status_code == 400
    assert client_count() == 0
    assert events(audit.Event.CLIENT_CREATED) == []


FAPI_JWKS = ('{"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", '
             '"y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}')


def test_create_a_fapi2_client_and_take_it_out_of_the_profile(client, admin):
    """The "Profil de sécurité" field: FAPI 2.0 (idp.oauth.fapi2_profile), or none."""
    admin.login()
    refused = admin.create_client(security_profile="fapi2")
    assert refused.status_code == 400 and "private_key_jwt" in refused.get_data(as_text=True)
    assert client_count() == 0
    created = admin.create_client(security_profile="fapi2", auth_method="private_key_jwt", jwks=FAPI_JWKS)
    assert created.status_code == 200
    registered = clients.all_clients()[0]
    assert registered.security_profile == "fapi2" and registered.extra_metadata["dpop_bound_access_tokens"] is True
    url = f"/admin/clients/{registered.client_id}"
    assert '<option selected value="fapi2">' in client.get(url).get_data(as_text=True)
    left = admin.post(url, {**NEW_CLIENT, "auth_method": "private_key_jwt", "jwks": FAPI_JWKS, "subject_type": "pairwise",
                            "security_profile": ""}, form_page=url)
    assert left.status_code == 303
    db.session.expire_all()
    assert clients.get(registered.client_id).security_profile is None
    assert events(audit.Event.CLIENT_UPDATED)[0].details["fields"] == ["security_profile"]


def test_edit_client_changes_and_audits_only_what_changed(client, admin):
    admin.login()
    admin.create_client()
    created = clients.all_clients()[0]
    url = f"/admin/clients/{created.client_id}"
    form = client.get(url).get_data(as_text=True)
    assert "Pharmacie du Centre" in form and "https://pharmacie.example.lu/callback2" in form
    response = admin.post(url, {**NEW_CLIENT, "name": "Pharmacie de la Gare", "subject_type": "pairwise"}, form_page=url)
    assert response.status_code == 303
    db.session.expire_all()
    assert clients.get(created.client_id).name == "Pharmacie de la Gare"
    event = events(audit.Event.CLIENT_UPDATED)[0]
    assert event.actor == "admin:alice" and event.details["fields"] == ["name"]


def test_invalid_edit_changes_nothing(client, admin):
    admin.login()
    admin.create_client()
    created = clients.all_clients()[0]
    url = f"/admin/clients/{created.client_id}"
    response = admin.post(url, {**NEW_CLIENT, "name": "Renamed", "subject_type": "pairwise",
                                "redirect_uris": "https://ok.example.lu/cb#frag"}, form_page=url)
    assert response.status_code == 400
    db.session.expire_all()
    assert clients.get(created.client_id).name == "Pharmacie du Centre"
    assert events(audit.Event.CLIENT_UPDATED) == []


def test_disable_and_enable_client(client, admin):
    admin.login()
    admin.create_client()
    created = clients.all_clients()[0]
    url = f"/admin/clients/{created.client_id}"
    assert admin.post(url + "/disable", form_page=url).status_code == 303
    assert clients.get(created.client_id) is None
    assert "Désactivé" in client.get("/admin/").get_data(as_text=True)
    assert admin.post(url + "/enable", form_page=url).status_code == 303
    assert clients.get(created.client_id) is not None
    assert [e.actor for e in events(audit.Event.CLIENT_DISABLED)] == ["admin:alice"]
    assert events(audit.Event.CLIENT_UPDATED)[0].details["fields"] == ["disabled"]


def test_rotate_secret_shows_the_new_secret_once(client, admin):
    admin.login()
    first = SECRET_RE.search(admin.create_client().get_data(as_text=True)).group(1)
    created = clients.all_clients()[0]
    url = f"/admin/clients/{created.client_id}"
    response = admin.post(url + "/rotate-secret", form_page=url)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    second = SECRET_RE.search(response.get_data(as_text=True)).group(1)
    db.session.expire_all()
    stored = clients.get(created.client_id)
    assert stored.check_client_secret(second) and not stored.check_client_secret(first)
    assert [e.actor for e in events(audit.Event.CLIENT_SECRET_ROTATED)] == ["admin:alice"]


def test_audit_page_lists_recent_events(client, admin):
    admin.login()
    admin.create_client()
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "client:created" in page and "admin:alice" in page and "admin:login_succeeded" in page
    filtered = client.get("/admin/audit?name=client:created").get_data(as_text=True)
    assert "admin:login_succeeded</td>" not in filtered and "client:created</td>" in filtered


def test_unknown_client_is_404(client, admin):
    admin.login()
    assert client.get("/admin/clients/nope").status_code == 404
