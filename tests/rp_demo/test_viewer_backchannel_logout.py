"""The DSP viewer takes OpenID Connect Back-Channel Logout 1.0: a session ended at the provider
ends the viewer's visits in it, and only a logout token passing every §2.6 check does so."""

import secrets
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from sqlalchemy import select

from idp import backchannel_logout, signing_key
from idp.extensions import db
from tests.conftest import PatientFactory, csrf_token
from tests.rp_demo.test_viewer import current_visit, log_in, text

EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGGED_OUT = "Votre session eSanté a pris fin : vous avez été déconnecté du DSP. Veuillez vous reconnecter."


@pytest.fixture
def web(viewer):
    return viewer.app.test_client()


def logged_in(web, client, patients, provider, viewer, patient=None) -> dict:
    """A patient's visit at the viewer; returns it (tokens, ``sid``, ``sub``)."""
    log_in(web, client, patients, patient or patients.create(), provider, viewer)
    assert web.get("/dossier").status_code == 200
    return current_visit(web)


def logout_token(provider, visit: dict, *, header: dict | None = None, key=None, drop: tuple[str, ...] = (), **claims) -> str:
    """A logout token as the provider makes them (§2.4), signed with its key unless ``key`` is given."""
    kid, provider_key = signing_key.active_key("RS256")
    now = int(time.time())
    body = {"iss": provider.url, "aud": "dsp-viewer", "iat": now, "exp": now + 120, "jti": secrets.token_urlsafe(16),
            "events": {EVENT: {}}, "sub": visit["user"]["sub"], "sid": visit["sid"], **claims}
    for name in drop:
        body.pop(name)
    return jwt.encode({"typ": "logout+jwt", "alg": "RS256", "kid": kid, **(header or {})}, body, key or provider_key)


def deliveries() -> list[backchannel_logout.LogoutDelivery]:
    db.session.expire_all()
    return list(db.session.scalars(select(backchannel_logout.LogoutDelivery)))


def test_the_demo_seed_registers_the_viewers_back_channel_logout_endpoint(viewer, demo_clients):
    from idp import client as clients

    metadata = clients.get("dsp-viewer").extra_metadata
    assert metadata["backchannel_logout_uri"] == viewer.url + "/backchannel-logout"
    assert metadata["backchannel_logout_session_required"] is True


def test_a_logout_at_the_provider_ends_the_viewer_visit(web, client, patients, provider, viewer, demo_clients):
    """The patient logs out at the provider (not through the viewer): the viewer asks for a new login."""
    visit = logged_in(web, client, patients, provider, viewer)
    assert visit["sid"], "the viewer keeps the ID token's sid"
    assert client.get("/logout", query_string={"id_token_hint": visit["id_token"]}).status_code == 200
    (delivery,) = deliveries()
    assert delivery.delivered_at is not None and delivery.last_error is None, "the viewer accepted the logout token"
    response = web.get("/dossier")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert LOGGED_OUT in text(web.get("/"))
    assert web.get("/dossier").headers["Location"] == "/"


def test_log_out_elsewhere_ends_only_the_other_browsers_visit(app, web, client, patients, provider, viewer, demo_clients):
    """``sid`` names one provider session: the visit started from the other browser ends, this one stays."""
    patient = patients.create()
    mine = logged_in(web, client, patients, provider, viewer, patient)
    other_browser = app.test_client()
    other_web = viewer.app.test_client()
    theirs = logged_in(other_web, other_browser, PatientFactory(app, other_browser), provider, viewer, patient)
    assert mine["sid"] != theirs["sid"] and mine["user"]["sub"] == theirs["user"]["sub"]

    page = client.get("/account/sessions")
    ended = client.post("/account/sessions/logout-elsewhere",
                        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "current_password": patient.password})
    assert ended.status_code == 303
    assert other_web.get("/dossier").headers["Location"] == "/"
    assert web.get("/dossier").status_code == 200


def test_a_valid_logout_token_is_acknowledged_with_no_store(web, client, patients, provider, viewer, demo_clients):
    visit = logged_in(web, client, patients, provider, viewer)
    response = web.post("/backchannel-logout", data={"logout_token": logout_token(provider, visit)})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert web.get("/dossier").headers["Location"] == "/"


def test_a_logout_token_with_only_sub_ends_every_visit_of_the_patient(app, web, client, patients, provider, viewer,
                                                                      demo_clients):
    patient, someone_else = patients.create(), patients.create(mobile="+352621000901")
    visit = logged_in(web, client, patients, provider, viewer, patient)
    other_browser = app.test_client()
    other_web = viewer.app.test_client()
    logged_in(other_web, other_browser, PatientFactory(app, other_browser), provider, viewer, someone_else)
    assert web.post("/backchannel-logout", data={"logout_token": logout_token(provider, visit, drop=("sid",))}).status_code == 200
    assert web.get("/dossier").headers["Location"] == "/"
    assert other_web.get("/dossier").status_code == 200, "another patient's visit stays"


FORGED = {
    "signed by another key under the provider's kid": lambda provider, visit: logout_token(
        provider, visit, key=RSAKey.generate_key(2048)),
    "signed by a key the provider never published": lambda provider, visit: logout_token(
        provider, visit, header={"kid": "not-the-providers", "alg": "ES256"}, key=ECKey.generate_key("P-256")),
    "signed with a shared secret (HS256)": lambda provider, visit: logout_token(
        provider, visit, header={"alg": "HS256"}, key=OctKey.generate_key(256)),
    "another issuer": lambda provider, visit: logout_token(provider, visit, iss="https://evil.example"),
    "another audience": lambda provider, visit: logout_token(provider, visit, aud="mydsp"),
    "issued too long ago": lambda provider, visit: logout_token(provider, visit, iat=int(time.time()) - 3600),
    "expired": lambda provider, visit: logout_token(provider, visit, exp=int(time.time()) - 600),
    "without jti": lambda provider, visit: logout_token(provider, visit, drop=("jti",)),
    "with a nonce (an ID token's claim)": lambda provider, visit: logout_token(provider, visit, nonce="n-0S6_WzA2Mj"),
    "without events": lambda provider, visit: logout_token(provider, visit, drop=("events",)),
    "with another event": lambda provider, visit: logout_token(
        provider, visit, events={"http://schemas.openid.net/event/other": {}}),
    "with a non-empty logout event": lambda provider, visit: logout_token(provider, visit, events={EVENT: {"x": 1}}),
    "without sub or sid": lambda provider, visit: logout_token(provider, visit, drop=("sub", "sid")),
    "typed as a plain JWT": lambda provider, visit: logout_token(provider, visit, header={"typ": "JWT"}),
    "an ID token": lambda provider, visit: visit["id_token"],
    "not a JWT": lambda provider, visit: "not-a-jwt",
}


@pytest.mark.parametrize("forgery", FORGED.values(), ids=FORGED.keys())
def test_an_invalid_logout_token_is_refused_and_ends_nothing(forgery, web, client, patients, provider, viewer, demo_clients):
    """Back-Channel Logout 1.0 §2.6: any failed check answers 400 (§2.8) and logs no one out."""
    visit = logged_in(web, client, patients, provider, viewer)
    response = web.post("/backchannel-logout", data={"logout_token": forgery(provider, visit)})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert response.headers["Cache-Control"] == "no-store"
    assert web.get("/dossier").status_code == 200
    assert current_visit(web) is visit


def test_a_request_without_a_logout_token_is_refused(web, client, patients, provider, viewer, demo_clients):
    logged_in(web, client, patients, provider, viewer)
    response = web.post("/backchannel-logout", data={})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"
    assert web.get("/dossier").status_code == 200


def test_a_replayed_logout_token_is_refused(web, client, patients, provider, viewer, demo_clients):
    """§2.6 step 7: the same ``jti`` twice. The token names the patient (``sub``), so a replay
    would end the visit of their next login: it must not."""
    patient = patients.create()
    token = logout_token(provider, logged_in(web, client, patients, provider, viewer, patient), drop=("sid",))
    assert web.post("/backchannel-logout", data={"logout_token": token}).status_code == 200
    assert web.get("/dossier").headers["Location"] == "/"
    logged_in(web, client, patients, provider, viewer, patient)
    replayed = web.post("/backchannel-logout", data={"logout_token": token})
    assert replayed.status_code == 400 and "jti" in replayed.get_json()["error_description"]
    assert web.get("/dossier").status_code == 200
