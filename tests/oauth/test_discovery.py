"""OpenID Connect Discovery 1.0 metadata, the JWKS, and signing key rotation (``idp keys rotate``)."""

from datetime import timedelta

from joserfc import jwt
from joserfc.jwk import KeySet

from idp import clock

ISSUER = "http://127.0.0.1:5000"
EIDAS = ["http://eidas.europa.eu/LoA/low", "http://eidas.europa.eu/LoA/substantial", "http://eidas.europa.eu/LoA/high"]


def test_metadata_names_the_issuer_and_every_endpoint(client):
    metadata = client.get("/.well-known/openid-configuration").get_json()
    assert metadata["issuer"] == ISSUER
    assert metadata["authorization_endpoint"] == ISSUER + "/authorize"
    assert metadata["token_endpoint"] == ISSUER + "/token"
    assert metadata["userinfo_endpoint"] == ISSUER + "/userinfo"
    assert metadata["jwks_uri"] == ISSUER + "/jwks.json"
    assert metadata["revocation_endpoint"] == ISSUER + "/revoke"
    assert metadata["introspection_endpoint"] == ISSUER + "/introspect"
    assert metadata["end_session_endpoint"] == ISSUER + "/logout"
    for endpoint in ("authorize", "token", "userinfo", "jwks.json", "revoke", "introspect", "logout"):
        assert client.open("/" + endpoint, method="OPTIONS").status_code != 404


def test_metadata_describes_what_the_provider_supports(client):
    metadata = client.get("/.well-known/openid-configuration").get_json()
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["claims_parameter_supported"] is True
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert metadata["acr_values_supported"] == EIDAS
    assert set(metadata["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials",
                                                      "urn:ietf:params:oauth:grant-type:token-exchange"}
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
    assert set(metadata["subject_types_supported"]) == {"public", "pairwise"}
    assert set(metadata["id_token_signing_alg_values_supported"]) == {"RS256", "ES256"}
    assert {"sub", "name", "email", "matricule", "acr", "amr", "auth_time"} <= set(metadata["claims_supported"])
    assert {"openid", "offline_access", "matricule"} <= set(metadata["scopes_supported"])
    assert "none" not in metadata["introspection_endpoint_auth_methods_supported"]


def test_metadata_promises_only_plain_json_userinfo(client):
    """Userinfo answers JSON only: advertising ``none`` makes relying parties expect an unsigned JWT."""
    assert "userinfo_signing_alg_values_supported" not in client.get("/.well-known/openid-configuration").get_json()


def test_rfc8414_metadata_is_the_same_document(client):
    assert client.get("/.well-known/oauth-authorization-server").get_json() == client.get("/.well-known/openid-configuration").get_json()


def test_jwks_publishes_an_rs256_and_an_es256_signing_key(client):
    keys = client.get("/jwks.json").get_json()["keys"]
    assert {key["alg"] for key in keys} == {"RS256", "ES256"}
    for key in keys:
        assert key["use"] == "sig" and key["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "a private member is published"
    assert {key["kty"] for key in keys} == {"RSA", "EC"}


def test_jwks_answers_304_to_a_matching_if_none_match(client):
    first = client.get("/jwks.json")
    assert first.headers["ETag"]
    again = client.get("/jwks.json", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    metadata = client.get("/.well-known/openid-configuration")
    assert client.get("/.well-known/openid-configuration", headers={"If-None-Match": metadata.headers["ETag"]}).status_code == 304


def test_jwks_etag_changes_when_the_keys_change(client, runner):
    before = client.get("/jwks.json")
    assert runner.invoke(args=["keys", "rotate"]).exit_code == 0
    after = client.get("/jwks.json", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]


def test_key_rotation_publishes_new_keys_and_keeps_the_old_ones_until_their_tokens_expired(app, client, runner, oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create())
    old_kids = {key["kid"] for key in client.get("/jwks.json").get_json()["keys"]}

    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output

    published = {key["kid"] for key in client.get("/jwks.json").get_json()["keys"]}
    new_kids = published - old_kids
    assert len(new_kids) == 2 and old_kids <= published
    assert oidc.verify(tokens["id_token"]).claims["aud"] == rp_client.client_id
    assert oidc.verify(tokens["access_token"]).header["kid"] in old_kids
    assert oidc.userinfo(tokens["access_token"]).status_code == 200

    # Pre-publication: the new keys sign only once every worker's JWKS has them.
    overlap = app.config["SIGNING_KEY_CACHE_SECONDS"]
    during = oidc.tokens(rp_client, patients.create(email="autre@example.lu", mobile="+352621000222"))
    assert jwt.decode(during["access_token"], oidc.jwks()).header["kid"] in old_kids
    clock.advance(timedelta(seconds=overlap + 1))
    fresh = oidc.tokens(rp_client, patients.create(email="trois@example.lu", mobile="+352621000333"))
    assert jwt.decode(fresh["access_token"], oidc.jwks()).header["kid"] in new_kids

    longest = max(app.config["ACCESS_TOKEN_TTL"], app.config["ID_TOKEN_TTL"], app.config["SIGNING_KEY_RETENTION"])
    # Workers that read the keys before the rotation may sign with the old key while their cache
    # lasts: it stays published that much longer after its last token expired.
    assert {key["kid"] for key in client.get("/jwks.json").get_json()["keys"]} == published
    clock.advance(timedelta(seconds=longest + overlap))
    remaining = {key["kid"] for key in client.get("/jwks.json").get_json()["keys"]}
    assert remaining == new_kids


def test_retired_key_stays_published_while_a_token_it_signed_is_valid(app, client, runner, oidc, patients, rp_client):
    tokens = oidc.tokens(rp_client, patients.create())
    runner.invoke(args=["keys", "rotate"])
    clock.advance(timedelta(seconds=app.config["ACCESS_TOKEN_TTL"] - 5))
    jwks = KeySet.import_key_set(client.get("/jwks.json").get_json())
    decoded = jwt.decode(tokens["access_token"], jwks)
    assert decoded.claims["exp"] > clock.timestamp()
