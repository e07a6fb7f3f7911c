"""Resource servers: one ``sub`` per patient per resource server, and introspection only for them.

RFC 9068 §6 (privacy): a resource server relies on an access token's ``sub`` to find what it
keeps for the person; tokens meant for different resource servers should carry ``sub`` values
that cannot be correlated. So the access token's ``sub`` is chosen for its resource server (its
audience), whichever client holds the token, while the ID token's and userinfo's stay the
client's own (OpenID Connect Core §8.1, §5.3.2). RFC 7662 §2.2: a protected resource not allowed
to introspect a token gets ``{"active": false}``; only the resource server registered for the
token's audience is allowed (§4).
"""

import pytest
from joserfc import jwt

from idp import client as clients, delegation
from idp.extensions import db
from tests.oauth.conftest import LAB_CALLBACK, PHARMACY_CALLBACK, register

API = "https://api.dsp.example.lu"
OTHER_API = "https://labo-api.example.lu"


@pytest.fixture
def api_server(app):
    """The DSP API, registered by an admin as the resource server of ``API``."""
    return register(name="DSP API", grant_types=["client_credentials"], scope="openid", resource_audience=API)


@pytest.fixture
def viewer_rp(app):
    """First party, public ``sub``, tokens for the DSP API."""
    return register(name="DSP viewer", redirect_uris=["https://dsp.example.lu/callback"], first_party=True,
                    scope="openid profile offline_access assisted_patients", grant_types=["authorization_code", "refresh_token", clients.TOKEN_EXCHANGE],
                    extra_metadata={"access_token_audiences": [API]})


@pytest.fixture
def app_rp(app):
    """Third party, pairwise ``sub`` (another sector), tokens for the DSP API too."""
    return register(name="MyDSP", redirect_uris=[PHARMACY_CALLBACK], scope="openid profile offline_access assisted_patients",
                    grant_types=["authorization_code", "refresh_token", clients.TOKEN_EXCHANGE],
                    extra_metadata={"access_token_audiences": [API]})


def claims_of(oidc, token: str) -> dict:
    return jwt.decode(token, oidc.jwks()).claims


def test_the_access_tokens_sub_is_the_resource_servers_whatever_the_client(oidc, patients, viewer_rp, app_rp):
    patient = patients.create()
    through_viewer = oidc.tokens(viewer_rp, patient)
    through_app = oidc.tokens(app_rp, patient)
    viewer_access, app_access = claims_of(oidc, through_viewer["access_token"]), claims_of(oidc, through_app["access_token"])
    assert API in viewer_access["aud"] and API in app_access["aud"]
    assert viewer_access["sub"] == app_access["sub"], "one identifier per patient for the DSP API"


def test_the_id_token_and_userinfo_keep_the_clients_own_sub(oidc, patients, viewer_rp, app_rp):
    patient = patients.create()
    for rp in (viewer_rp, app_rp):
        tokens = oidc.tokens(rp, patient)
        id_sub = claims_of(oidc, tokens["id_token"])["sub"]
        assert oidc.userinfo(tokens["access_token"]).get_json()["sub"] == id_sub  # Core §5.3.2
    viewer_sub = claims_of(oidc, oidc.tokens(viewer_rp, patient)["id_token"])["sub"]
    app_sub = claims_of(oidc, oidc.tokens(app_rp, patient)["id_token"])["sub"]
    assert viewer_sub == patient.account.subject and app_sub != viewer_sub, "public for the first party, pairwise for the third"
    assert claims_of(oidc, oidc.tokens(app_rp, patient)["access_token"])["sub"] not in (viewer_sub, app_sub)


def test_another_resource_server_gets_another_sub(oidc, patients, viewer_rp):
    lab = register(name="Labo", redirect_uris=[LAB_CALLBACK], first_party=True, scope="openid profile",
                   extra_metadata={"access_token_audiences": [OTHER_API]})
    patient = patients.create()
    assert claims_of(oidc, oidc.tokens(viewer_rp, patient)["access_token"])["sub"] != \
        claims_of(oidc, oidc.tokens(lab, patient)["access_token"])["sub"]


def test_a_token_for_no_resource_server_keeps_the_clients_sub(oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create())
    assert claims_of(oidc, tokens["access_token"])["sub"] == claims_of(oidc, tokens["id_token"])["sub"]


def test_the_sub_stays_the_same_across_refreshes(oidc, patients, app_rp):
    tokens = oidc.tokens(app_rp, patients.create(), scope="openid profile offline_access")
    refreshed = oidc.refresh(app_rp, tokens["refresh_token"]).get_json()
    assert claims_of(oidc, refreshed["access_token"])["sub"] == claims_of(oidc, tokens["access_token"])["sub"]


def test_a_delegated_token_names_patient_and_assistant_as_the_resource_server_knows_them(oidc, patients, viewer_rp, app_rp, api_server):
    parent = patients.create(given_name="Hector", family_name="Doe", mobile="+352621000501")
    child = patients.create(given_name="Rita", family_name="Doe", birth="20160301", mobile="+352621000502")
    delegation.grant(child.account, parent.account, created_by=child.account)
    db.session.commit()
    seen = []
    for rp in (viewer_rp, app_rp):
        own = oidc.tokens(rp, parent, scope="openid profile assisted_patients")
        (assisted,) = oidc.userinfo(own["access_token"]).get_json()["assisted_patients"]
        exchanged = oidc.token_request(rp, {"grant_type": clients.TOKEN_EXCHANGE, "subject_token": own["access_token"],
                                            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                                            "requested_subject": assisted["sub"]})
        assert exchanged.status_code == 200, exchanged.get_json()
        claims = claims_of(oidc, exchanged.get_json()["access_token"])
        seen.append((claims["sub"], claims["act"]["sub"]))
        introspected = oidc.introspect(api_server, exchanged.get_json()["access_token"]).get_json()
        assert (introspected["sub"], introspected["act"]) == (claims["sub"], claims["act"]), "introspection says what the JWT says"
        assert claims["act"]["sub"] == claims_of(oidc, own["access_token"])["sub"], "the assistant, as the API knows them"
    assert seen[0] == seen[1]
    child_own = oidc.tokens(app_rp, child, scope="openid profile", prompt="login")
    child_claims = claims_of(oidc, child_own["access_token"])
    assert child_claims["sub"] == seen[0][0]
    assert child_claims["may_act"] == {"sub": seen[0][1]}, "may_act names the assistant as the API knows them"


# --- introspection (RFC 7662) -------------------------------------------------------------------


def test_the_resource_server_of_the_tokens_audience_introspects_it(oidc, patients, viewer_rp, api_server):
    tokens = oidc.tokens(viewer_rp, patients.create(), scope="openid profile offline_access")
    body = oidc.introspect(api_server, tokens["access_token"]).get_json()
    claims = claims_of(oidc, tokens["access_token"])
    assert body["active"] is True and body["sub"] == claims["sub"] and body["aud"] == API and API in claims["aud"]
    assert oidc.introspect(api_server, tokens["refresh_token"]).get_json()["active"] is True


def test_any_other_confidential_client_learns_nothing(oidc, patients, viewer_rp, api_server, rp_client):
    tokens = oidc.tokens(viewer_rp, patients.create(), scope="openid profile offline_access")
    other_api = register(name="Labo API", grant_types=["client_credentials"], scope="openid", resource_audience=OTHER_API)
    plain_client = register(name="Machine", grant_types=["client_credentials"], scope="openid")
    for stranger in (rp_client, other_api, plain_client, viewer_rp):
        for token in (tokens["access_token"], tokens["refresh_token"]):
            response = oidc.introspect(stranger, token)
            assert response.status_code == 200 and response.get_json() == {"active": False}, stranger.name


def test_a_token_for_no_resource_server_is_introspected_by_nobody(oidc, patients, rp_client, api_server):
    tokens = oidc.tokens(rp_client, patients.create())
    assert oidc.introspect(api_server, tokens["access_token"]).get_json() == {"active": False}


def test_a_disabled_resource_server_learns_nothing(oidc, patients, viewer_rp, api_server):
    token = oidc.tokens(viewer_rp, patients.create())["access_token"]
    clients.disable(api_server)
    db.session.commit()
    assert oidc.introspect(api_server, token).status_code == 401


def test_a_client_may_address_one_resource_server_only():
    with pytest.raises(clients.InvalidClientMetadata, match="at most one resource server"):
        clients.create(name="Deux API", redirect_uris=["https://two.example.lu/cb"],
                       extra_metadata={"access_token_audiences": [API, OTHER_API]})


def test_the_token_exchange_audience_chooses_the_sub(oidc, patients, viewer_rp, client):
    """RFC 8693 §2.1 ``audience``: narrowed to the issuer alone, the token is for no resource server."""
    patient = patients.create()
    own = oidc.tokens(viewer_rp, patient, scope="openid profile")
    parent = patients.create(given_name="Hector", family_name="Doe", mobile="+352621000503")
    delegation.grant(patient.account, parent.account, created_by=patient.account)
    db.session.commit()
    parent_own = oidc.tokens(viewer_rp, parent, scope="openid profile assisted_patients", prompt="login")
    (assisted,) = oidc.userinfo(parent_own["access_token"]).get_json()["assisted_patients"]
    exchanged = oidc.token_request(viewer_rp, {"grant_type": clients.TOKEN_EXCHANGE, "subject_token": parent_own["access_token"],
                                               "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                                               "requested_subject": assisted["sub"], "audience": "http://127.0.0.1:5000"})
    assert exchanged.status_code == 200, exchanged.get_json()
    claims = claims_of(oidc, exchanged.get_json()["access_token"])
    assert claims["aud"] == "http://127.0.0.1:5000"
    assert claims["sub"] == claims_of(oidc, own["id_token"])["sub"], "for the provider itself: the client's sub"
