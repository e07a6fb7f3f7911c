"""RP-Initiated Logout 1.0 §2: ``id_token_hint`` is an ID token; anything else the provider signed
(an access token, a logout token) is a clean ``invalid_request`` page, never an error of ours."""

import html

import pytest

from idp import sso_session
from tests.oauth.test_resource_servers import API, api_server, viewer_rp  # noqa: F401  (fixtures)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_access_token_as_id_token_hint_is_a_clean_400(oidc, patients, viewer_rp, client, method):
    patient = patients.create()
    tokens = oidc.tokens(viewer_rp, patient)
    send = client.get if method == "GET" else client.post
    arguments = {"query_string" if method == "GET" else "data": {"id_token_hint": tokens["access_token"]}}
    response = send("/logout", **arguments)
    assert response.status_code == 400
    assert "id_token_hint" in html.unescape(response.get_data(as_text=True))
    assert sso_session.live_sessions(patient.account.id), "nothing ended"


def test_an_access_token_of_a_client_without_resource_server_is_refused_too(oidc, patients, rp_client, client):
    tokens = oidc.tokens(rp_client, patients.create())
    assert client.get("/logout", query_string={"id_token_hint": tokens["access_token"]}).status_code == 400


def test_the_id_token_itself_still_works(oidc, patients, viewer_rp, client):
    tokens = oidc.tokens(viewer_rp, patients.create())
    assert client.get("/logout", query_string={"id_token_hint": tokens["id_token"]}).status_code == 200
