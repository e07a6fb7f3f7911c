"""``idp demo seed`` registers the demo apps for the delegation features and the DSP API."""

import pytest

from idp import client as clients, demo
from idp.extensions import db

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def test_both_demo_apps_may_manage_assistants_and_exchange_tokens_for_the_dsp_api(app):
    demo.seed()
    for client_id in ("dsp-viewer", "mydsp"):
        registered = clients.get(client_id)
        assert {"delegations", "assisted_patients"} <= set(registered.scope.split())
        assert registered.grant_types == ["authorization_code", "refresh_token", TOKEN_EXCHANGE]
        assert registered.extra_metadata["access_token_audiences"] == ["http://127.0.0.1:5002"]
    assert clients.get("mydsp").is_public


def test_both_demo_apps_get_sender_constrained_tokens_and_the_viewer_is_a_fapi2_client(app):
    """Issue 8: the public client's tokens are sender-constrained (RFC 9449 §5.2). Issue 16: the
    confidential viewer, which shows health records, is held to the FAPI 2.0 Security Profile
    (its key made by the seed); MyDSP cannot be, the profile being for confidential clients only."""
    demo.seed()
    assert clients.get("mydsp").extra_metadata["dpop_bound_access_tokens"] is True and clients.get("mydsp").security_profile is None
    viewer = clients.get("dsp-viewer")
    assert viewer.security_profile == "fapi2" and viewer.token_endpoint_auth_method == "private_key_jwt"
    assert viewer.extra_metadata["dpop_bound_access_tokens"] is True and viewer.client_secret_hash is None


@pytest.mark.settings(DEMO_DSP_VIEWER_URL="http://127.0.0.1:6001", DEMO_DSP_API_AUDIENCE="http://127.0.0.1:6002")
def test_the_demo_apps_follow_the_ports_they_run_on(app):
    demo.seed()
    viewer = clients.get("dsp-viewer")
    assert viewer.redirect_uris == ["http://127.0.0.1:6001/callback"]
    assert viewer.post_logout_redirect_uris == ["http://127.0.0.1:6001/"]
    assert clients.get("mydsp").extra_metadata["access_token_audiences"] == ["http://127.0.0.1:6002"]


def test_a_registration_from_an_earlier_seed_is_brought_up_to_date(app):
    """A checkout seeded before the delegation features gets them at the next ``make run``."""
    clients.create(client_id="mydsp", name="MyDSP (demo)", redirect_uris=["http://127.0.0.1/callback"],
                   scope="openid profile offline_access", auth_method="none", extra_metadata={"note": "kept"})
    db.session.commit()
    report = demo.seed()
    mydsp = clients.get("mydsp")
    assert not report["clients"][1]["created"]
    assert "assisted_patients" in mydsp.scope and TOKEN_EXCHANGE in mydsp.grant_types
    assert mydsp.extra_metadata == {"note": "kept", "access_token_audiences": ["http://127.0.0.1:5002"],
                                    "dpop_bound_access_tokens": True}


def test_the_dsp_api_is_registered_as_the_resource_server_of_its_audience(app):
    """How the provider knows a resource server: an admin registers a client for its audience
    (here the demo seed does); it may introspect the tokens for it, and nobody else may."""
    first = demo.seed()
    (server,) = first["resource_servers"]
    assert server["client_id"] == "dsp-api" and server["resource_audience"] == "http://127.0.0.1:5002" and server["client_secret"]
    assert clients.resource_server_for("http://127.0.0.1:5002").client_id == "dsp-api"
    again = demo.seed()
    assert "client_secret" not in again["resource_servers"][0] and not again["resource_servers"][0]["created"]
