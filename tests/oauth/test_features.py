"""The FEATURES table: each optional feature turned off loses its endpoint and its metadata,
and the settings refuse what they do not know (node-oidc-provider's ``features``)."""

import pytest

from idp import create_app
from idp.settings import InvalidSettings
from tests.conftest import TEST_SETTINGS
from tests.oauth.conftest import register


def metadata(client) -> dict:
    return client.get("/.well-known/openid-configuration").get_json()


def test_every_feature_is_on_by_default(client):
    document = metadata(client)
    assert {"pushed_authorization_request_endpoint", "dpop_signing_alg_values_supported", "registration_endpoint",
            "introspection_endpoint", "backchannel_logout_supported"} <= set(document)
    assert {"client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"} <= set(document["grant_types_supported"])


@pytest.mark.settings(FEATURES={"par": {"enabled": False}})
def test_par_off_removes_the_endpoint_and_its_metadata(client, rp_client):
    document = metadata(client)
    assert "pushed_authorization_request_endpoint" not in document and "require_pushed_authorization_requests" not in document
    assert client.post("/par", data={"client_id": rp_client.client_id}, auth=(rp_client.client_id, rp_client.plain_secret)).status_code == 404


@pytest.mark.settings(FEATURES={"dpop": {"enabled": False}})
def test_dpop_off_removes_its_metadata_and_issues_bearer_tokens(oidc, patients, client):
    from tests.oauth.test_rfc9449_dpop_proofs import Holder

    assert "dpop_signing_alg_values_supported" not in metadata(client)
    native = register(name="MyDSP", redirect_uris=["http://127.0.0.1/callback"], auth_method="none", first_party=True, scope="openid profile")
    issued = oidc.code(native, patients.create())
    data = {"grant_type": "authorization_code", "code": issued.code, "redirect_uri": issued.redirect_uri, "code_verifier": issued.verifier,
            "client_id": native.client_id}
    response = client.post("/token", data=data, headers={"DPoP": Holder().proof(url="http://127.0.0.1:5000/token")})
    assert response.status_code == 200 and response.get_json()["token_type"] == "Bearer"
    assert "cnf" not in oidc.verify(response.get_json()["access_token"]).claims


@pytest.mark.settings(FEATURES={"token_exchange": {"enabled": False}})
def test_token_exchange_off_removes_the_grant_and_its_metadata(oidc, client):
    assert "urn:ietf:params:oauth:grant-type:token-exchange" not in metadata(client)["grant_types_supported"]
    exchanger = register(name="DSP viewer", redirect_uris=["https://dsp.example.lu/callback"], first_party=True,
                         grant_types=["authorization_code", "urn:ietf:params:oauth:grant-type:token-exchange"])
    response = oidc.token_request(exchanger, {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "x",
                                              "subject_token_type": "urn:ietf:params:oauth:token-type:access_token", "requested_subject": "y"})
    assert response.status_code == 400 and response.get_json()["error"] == "unsupported_grant_type"


@pytest.mark.settings(FEATURES={"client_credentials": {"enabled": False}})
def test_client_credentials_off_removes_the_grant_and_its_metadata(oidc, client):
    assert "client_credentials" not in metadata(client)["grant_types_supported"]
    machine = register(name="DSP API batch", grant_types=["client_credentials"], scope="openid")
    response = oidc.token_request(machine, {"grant_type": "client_credentials"})
    assert response.status_code == 400 and response.get_json()["error"] == "unsupported_grant_type"


@pytest.mark.settings(FEATURES={"introspection": {"enabled": False}})
def test_introspection_off_removes_the_endpoint_and_its_metadata(client, rp_client):
    document = metadata(client)
    assert "introspection_endpoint" not in document and "introspection_endpoint_auth_methods_supported" not in document
    assert client.post("/introspect", data={"token": "x"}, auth=(rp_client.client_id, rp_client.plain_secret)).status_code == 404


@pytest.mark.settings(FEATURES={"dynamic_registration": {"enabled": False}})
def test_dynamic_registration_off_removes_the_endpoints_and_their_metadata(client):
    assert "registration_endpoint" not in metadata(client)
    assert client.post("/register", json={"redirect_uris": ["https://rp.example.org/cb"]}).status_code == 404
    assert client.get("/register/some-client").status_code == 404


@pytest.mark.settings(FEATURES={"backchannel_logout": {"enabled": False}})
def test_backchannel_logout_off_removes_its_metadata_and_queues_nothing(app, client, oidc, patients):
    from sqlalchemy import func, select

    from idp import sso_session
    from idp.backchannel_logout import LogoutDelivery
    from idp.extensions import db

    document = metadata(client)
    assert "backchannel_logout_supported" not in document and "backchannel_logout_session_supported" not in document
    listening = register(name="DSP viewer", redirect_uris=["https://dsp.example.lu/callback"], first_party=True,
                         extra_metadata={"backchannel_logout_uri": "https://dsp.example.lu/backchannel-logout"})
    patient = patients.create()
    oidc.tokens(listening, patient)
    assert sso_session.end_all(patient.account.id) == 1
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(LogoutDelivery)) == 0


@pytest.mark.parametrize("features, refused", [
    ({"webauthn": {"enabled": True}}, "no feature webauthn"),
    ({"dpop": {"nonce_requird": True}}, "takes enabled"),
    ({"par": {"enabled": "yes"}}, "must be true or false"),
])
def test_unknown_or_malformed_features_stop_the_start(tmp_path, features, refused):
    with pytest.raises(InvalidSettings, match=refused):
        create_app({**TEST_SETTINGS, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}", "INSTANCE_PATH": str(tmp_path), "FEATURES": features})
