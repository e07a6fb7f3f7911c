"""The DSP viewer's protocol duties against a live provider, without a browser: the patient's
login runs through the provider's test client, the viewer's own requests through its test client."""

import html
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from idp import clock, delegation, pushed_request, token as tokens
from idp.extensions import db
from rp_demo import viewer as viewer_module
from tests.conftest import csrf_token, query_of


@pytest.fixture
def web(viewer):
    """The viewer app served by ``viewer``, driven through its test client."""
    return viewer.app.test_client()


def text(response) -> str:
    """The page as a reader sees it (entities such as ``&#39;`` decoded)."""
    return html.unescape(response.get_data(as_text=True))


def visits(web):
    return web.application.extensions["dsp_viewer"]["visits"]


def current_visit(web) -> dict:
    with web.session_transaction() as session:
        return visits(web).get(session["visit"])


def authorization_response(web, client, patients, patient, provider) -> str:
    """The viewer's redirect to the provider, the login there, and the provider's answer (a URL).

    FAPI 2.0 §5.3.3.2: the request was pushed; the browser carries ``client_id`` and ``request_uri`` only."""
    start = web.get("/login")
    assert start.status_code == 302 and start.headers["Location"].startswith(provider.url + "/authorize?")
    authorize = start.headers["Location"][len(provider.url):]
    sent = query_of(authorize)
    assert set(sent) == {"client_id", "request_uri"} and sent["client_id"] == "dsp-viewer"
    patients.login(patient, next_url=authorize)
    answer = client.get(authorize)
    assert answer.status_code in (302, 303), text(answer)
    return answer.headers["Location"]


def log_in(web, client, patients, patient, provider, viewer):
    location = authorization_response(web, client, patients, patient, provider)
    landed = web.get(location[len(viewer.url):])
    assert landed.status_code == 302 and landed.headers["Location"] == "/dossier"


def test_an_access_token_about_to_expire_is_renewed_with_the_refresh_token(web, client, patients, provider, viewer, demo_clients):
    log_in(web, client, patients, patients.create(), provider, viewer)
    visit = current_visit(web)
    before = dict(visit["token"])
    visit["token"]["expires_at"] = 0
    assert web.get("/dossier").status_code == 200
    assert visit["token"]["access_token"] != before["access_token"] and visit["token"]["token_type"].lower() == "dpop"
    assert visit["token"]["refresh_token"] == before["refresh_token"], "FAPI 2.0 §5.3.2.1: kept, not rotated"
    visit["token"]["expires_at"] = 0
    assert web.get("/dossier").status_code == 200, "and it works again"


def test_the_viewer_is_a_fapi2_client_its_tokens_bound_to_its_dpop_key(web, client, patients, provider, viewer, demo_clients):
    """Pushed request, private_key_jwt, DPoP-bound tokens presented with proofs to the DSP API and
    the provider; the record pages work with them (idp/oauth/fapi2_profile.py)."""
    log_in(web, client, patients, patients.create(), provider, viewer)
    token = current_visit(web)["token"]
    assert token["token_type"].lower() == "dpop"
    bound = tokens.find_access_token(token["access_token"])
    assert bound.dpop_jkt == viewer.app.extensions["dsp_viewer"]["dpop_key"].thumbprint()
    assert "Synthèse" in text(web.get("/dossier"))


def test_a_refresh_token_that_no_longer_works_asks_for_a_new_login(web, client, patients, provider, viewer, demo_clients):
    log_in(web, client, patients, patients.create(), provider, viewer)
    visit = current_visit(web)
    visit["token"].update(expires_at=0, refresh_token="revoked-or-unknown")
    response = web.get("/dossier")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "Votre session a expiré" in text(web.get("/"))
    assert web.get("/dossier").headers["Location"] == "/"


def test_an_error_from_the_provider_is_shown_not_redeemed(web, provider, demo_clients):
    web.get("/login")
    response = web.get("/callback?error=access_denied&error_description=refus&state=x")
    assert response.status_code == 400
    assert "access_denied" in text(response)


def test_a_response_naming_another_issuer_is_refused(web, client, patients, provider, viewer, demo_clients):
    """RFC 9207 §2.4: a mix-up attack brings a code from another issuer."""
    location = authorization_response(web, client, patients, patients.create(), provider)
    assert query_of(location)["iss"] == provider.url
    forged = location.replace("iss=" + query_of(location)["iss"].replace(":", "%3A").replace("/", "%2F"), "iss=https%3A%2F%2Fevil.example")
    assert forged != location
    response = web.get(forged[len(viewer.url):])
    assert response.status_code == 400 and "Réponse d'un autre émetteur." in text(response)


def test_a_response_with_an_unknown_state_is_refused(web, client, patients, provider, viewer, demo_clients):
    location = authorization_response(web, client, patients, patients.create(), provider)
    response = web.get(location[len(viewer.url):].replace("state=", "state=x"))
    assert response.status_code == 400


def test_only_the_records_one_assists_can_be_opened(web, client, patients, provider, viewer, demo_clients):
    log_in(web, client, patients, patients.create(), provider, viewer)
    page = text(web.get("/dossiers"))
    assert "Vous n'êtes assistant DSP d'aucun autre dossier." in page
    response = web.post("/dossiers/ouvrir", data={"csrf_token": csrf_token(page), "sub": "someone-else"})
    assert response.headers["Location"] == "/dossiers"
    assert "Vous n'êtes pas assistant DSP de ce dossier." in text(web.get("/dossiers"))
    assert current_visit(web)["record"] is None


def test_an_expired_delegated_token_is_exchanged_again(web, client, patients, provider, viewer, demo_clients):
    parent = patients.create(given_name="Marc", family_name="Weber", birth="19800214", email=None, mobile="+352621000401")
    child = patients.create(given_name="Léa", family_name="Weber", birth="20170520", email=None, mobile="+352621000402")
    delegation.grant(child.account, parent.account, created_by=child.account)
    db.session.commit()
    log_in(web, client, patients, parent, provider, viewer)
    page = text(web.get("/dossiers"))
    child_sub = re.findall(r'name="sub" value="([^"]+)"', page)[1]  # the first is the parent's own record
    assert web.post("/dossiers/ouvrir", data={"csrf_token": csrf_token(page), "sub": child_sub}).headers["Location"] == "/dossier"
    record = current_visit(web)["record"]
    assert record["name"] == "Léa Weber" and record["birthdate"] == "2017-05-20"
    first = record["token"]["access_token"]
    assert "refresh_token" not in record["token"], "token exchange issues no refresh token"
    record["token"]["expires_at"] = 0
    page = text(web.get("/dossier"))
    assert "Dossier de <strong>Léa Weber</strong> ouvert" in page
    assert record["token"]["access_token"] != first


def test_logout_revokes_the_refresh_token_and_sends_the_browser_to_the_provider(web, client, patients, provider, viewer, demo_clients):
    log_in(web, client, patients, patients.create(), provider, viewer)
    visit = current_visit(web)
    page = text(web.get("/dossier"))
    response = web.post("/logout", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == provider.url + "/logout"
    sent = query_of(response.headers["Location"])
    assert sent["id_token_hint"] == visit["id_token"] and sent["post_logout_redirect_uri"] == viewer.url + "/"
    db.session.expire_all()
    assert tokens.find_refresh_token(visit["token"]["refresh_token"]).revoked_at is not None
    assert web.get("/dossier").headers["Location"] == "/"
    back = web.get(f"/?state={sent['state']}")
    assert back.status_code == 302
    assert "Vous êtes déconnecté du DSP et de votre compte eSanté." in text(web.get("/"))


def test_forms_need_the_csrf_token(web, client, patients, provider, viewer, demo_clients):
    log_in(web, client, patients, patients.create(), provider, viewer)
    refused = web.post("/logout")
    assert refused.status_code == 400 and "Le formulaire a expiré" in text(refused)
    assert current_visit(web) is not None


def test_a_dsp_api_that_does_not_answer_gives_a_page_not_a_500(client, patients, provider, viewer, demo_clients):
    viewer.app.config["DSP_API_URL"] = "http://127.0.0.1:9"  # discard port: nothing listens
    web = viewer.app.test_client()
    log_in(web, client, patients, patients.create(), provider, viewer)
    response = web.get("/dossier")
    assert response.status_code == 503
    assert "Un service eSanté ne répond pas." in text(response)


def test_age_counts_whole_years():
    from datetime import date

    assert viewer_module.age_in_years("2017-05-20", date(2026, 5, 19)) == 8
    assert viewer_module.age_in_years("2017-05-20", date(2026, 5, 20)) == 9
    assert viewer_module.age_in_years(None) is None


def test_an_assistant_added_twice_is_refused_and_can_be_removed(web, client, patients, provider, viewer, demo_clients):
    owner = patients.create(given_name="Anna", family_name="Klein", mobile="+352621000501")
    helper = patients.create(given_name="Paul", family_name="Muller", birth="19700101", mobile="+352621000502")
    log_in(web, client, patients, owner, provider, viewer)
    page = text(web.get("/dossier?ajouter=1"))
    found = text(web.post("/assistants/recherche", data={"csrf_token": csrf_token(page), "matricule": helper.matricule}))
    assert 'value="P. Muller"' in found
    form = {"csrf_token": csrf_token(found), "matricule": helper.matricule, "type": "assistant_dsp", "role": ""}
    assert web.post("/assistants", data=form).headers["Location"] == "/dossier"
    assert "P. Muller est maintenant assistant DSP de ce dossier." in text(web.get("/dossier"))
    web.post("/assistants", data=form)
    page = text(web.get("/dossier"))
    assert "Cette personne est déjà assistant de ce dossier." in page
    assert [d.assistant_id for d in delegation.for_owner(owner.account)] == [helper.account.id]

    delegation_id = re.search(r'action="/assistants/([0-9a-f]+)/retirer"', page).group(1)
    web.post(f"/assistants/{delegation_id}/retirer", data={"csrf_token": csrf_token(page)})
    page = text(web.get("/dossier"))
    assert "L'assistant a été retiré de ce dossier." in page
    assert "Aucune donnée disponible dans le tableau" in page
    db.session.expire_all()
    assert delegation.for_owner(owner.account) == []


def test_adding_an_assistant_with_an_old_login_sends_the_patient_to_log_in_again(web, client, patients, provider, viewer, demo_clients):
    """The provider's RFC 9470 challenge: the viewer asks for a fresh login with the ``max_age`` it names."""
    owner = patients.create(given_name="Anna", family_name="Klein", mobile="+352621000511")
    helper = patients.create(given_name="Paul", family_name="Muller", birth="19700101", mobile="+352621000512")
    log_in(web, client, patients, owner, provider, viewer)
    found = text(web.post("/assistants/recherche", data={"csrf_token": csrf_token(text(web.get("/dossier?ajouter=1"))),
                                                         "matricule": helper.matricule}))
    # Shorter than the access token's life, and than a DPoP proof's (the viewer's proofs carry the
    # real time, the provider's clock is moved).
    max_age = provider.app.config["DELEGATION_REAUTHENTICATION_MAX_AGE"] = 30
    clock.advance(timedelta(seconds=max_age + 1))
    answer = web.post("/assistants", data={"csrf_token": csrf_token(found), "matricule": helper.matricule, "type": "assistant_dsp", "role": ""})
    assert answer.status_code == 302 and answer.headers["Location"] == f"/login?max_age={max_age}"
    authorize = web.get(answer.headers["Location"])
    assert set(query_of(authorize.headers["Location"])) == {"client_id", "request_uri"}, "pushed (FAPI 2.0)"
    db.session.expire_all()
    pushed = db.session.scalars(select(pushed_request.PushedRequest).order_by(pushed_request.PushedRequest.id)).all()[-1]
    assert pushed.parameters["max_age"] == str(max_age), "the fresh login is asked of the provider"
    assert delegation.for_owner(owner.account) == []


def test_when_the_delegation_ends_the_childs_record_closes(web, client, patients, provider, viewer, demo_clients):
    parent = patients.create(given_name="Marc", family_name="Weber", birth="19800214", email=None, mobile="+352621000601")
    child = patients.create(given_name="Léa", family_name="Weber", birth="20170520", email=None, mobile="+352621000602")
    granted = delegation.grant(child.account, parent.account, created_by=child.account)
    db.session.commit()
    log_in(web, client, patients, parent, provider, viewer)
    page = text(web.get("/dossiers"))
    web.post("/dossiers/ouvrir", data={"csrf_token": csrf_token(page), "sub": re.findall(r'name="sub" value="([^"]+)"', page)[1]})
    delegation.revoke(granted, by=child.account)
    db.session.commit()
    current_visit(web)["record"]["token"]["expires_at"] = 0
    assert web.get("/dossier").headers["Location"] == "/dossier"
    page = text(web.get("/dossier"))
    assert "Votre accès au dossier de Léa Weber a pris fin" in page
    assert "Votre dossier — <strong>Marc Weber</strong>" in page


def test_an_id_token_not_signed_by_the_providers_keys_is_refused(web, client, patients, provider, viewer, demo_clients):
    """The viewer checks the ID token against the JWKS: here keys with the provider's ``kid`` but other values."""
    from joserfc.jwk import ECKey, KeySet, RSAKey

    location = authorization_response(web, client, patients, patients.create(), provider)
    esante = viewer.app.extensions["authlib.integrations.flask_client"].esante
    real = esante.fetch_jwk_set(force=True)["keys"]
    impostors = [(RSAKey.generate_key(2048) if key["kty"] == "RSA" else ECKey.generate_key("P-256")).as_dict(private=False)
                 for key in real]
    esante.server_metadata["jwks"] = KeySet.import_key_set(
        {"keys": [{**impostor, "kid": key["kid"], "alg": key.get("alg"), "use": "sig"} for impostor, key in zip(impostors, real)]}
    ).as_dict(private=False)
    response = web.get(location[len(viewer.url):])
    assert response.status_code == 400 and "invalid_id_token" in text(response)
    assert web.get("/dossier").headers["Location"] == "/"
