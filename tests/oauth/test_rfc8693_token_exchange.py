"""RFC 8693 token exchange: an assistant's access token becomes one for the patient, with ``act``."""

from datetime import timedelta

import pytest
from joserfc import jwt

from idp import audit, clock, client as clients, delegation as delegations, token as tokens
from idp.extensions import db
from idp.subject import subject_for
from tests.delegation.conftest import (EXCHANGE_SCOPE, access_token, assist, child, days_until, majority_of, parent,  # noqa: F401  (fixtures)
                                      pharmacy, viewer)
from tests.oauth.conftest import RESOURCE_AUDIENCE, register

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def exchange(oidc, rp, subject_token: str, requested_subject: str, **extra):
    return oidc.token_request(rp, {"grant_type": clients.TOKEN_EXCHANGE, "subject_token": subject_token,
                                   "subject_token_type": ACCESS_TOKEN_TYPE, "requested_subject": requested_subject, **extra})


def assert_error(response, status: int, error: str):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"] == error
    assert response.headers["Cache-Control"] == "no-store"


def test_the_assistant_gets_a_token_for_the_patient_with_act(oidc, viewer, child, parent):
    assist(child, parent)
    response = exchange(oidc, viewer, access_token(viewer, parent), child.account.subject)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE and body["token_type"] == "Bearer"
    assert body["scope"] == EXCHANGE_SCOPE and body["expires_in"] == 300 and "refresh_token" not in body
    token = oidc.verify(body["access_token"])
    assert token.header["typ"] == "at+jwt"
    assert token.claims["sub"] == child.account.subject
    assert token.claims["act"] == {"sub": parent.account.subject}
    assert "may_act" not in token.claims
    assert oidc.userinfo(body["access_token"]).get_json()["name"] == "Rita Doe"


def test_subjects_are_those_the_client_sees_pairwise_included(oidc, pharmacy, child, parent):
    assist(child, parent)
    child_sub = subject_for(child.account, pharmacy)
    response = exchange(oidc, pharmacy, access_token(pharmacy, parent), child_sub)
    claims = jwt.decode(response.get_json()["access_token"], oidc.jwks()).claims
    assert claims["sub"] == child_sub
    assert claims["act"] == {"sub": subject_for(parent.account, pharmacy)}
    assert_error(exchange(oidc, pharmacy, access_token(pharmacy, parent), child.account.subject), 400, "invalid_grant")


def test_every_token_issued_under_a_delegation_lands_in_the_patients_trail(oidc, viewer, child, parent):
    found = assist(child, parent)
    exchange(oidc, viewer, access_token(viewer, parent), child.account.subject, scope="openid")
    entry = audit.trail(child.account.id)[0]
    assert (entry.name, entry.client_id, entry.details["assistant_id"], entry.details["delegation_id"], entry.details["scope"]) == (
        "delegation:token_issued", viewer.client_id, parent.account.id, found.id, "openid")


def test_no_delegation_is_invalid_grant(oidc, viewer, child, parent):
    assist(parent, child)  # the other way round: the child assists the parent, which lets the parent do nothing
    assert_error(exchange(oidc, viewer, access_token(viewer, parent), child.account.subject), 400, "invalid_grant")


def test_a_revoked_delegation_is_invalid_grant_and_its_tokens_stop_at_once(oidc, viewer, child, parent):
    clients.update(viewer, extra_metadata={**viewer.extra_metadata, "access_token_audiences": [RESOURCE_AUDIENCE]})
    api = register(name="DSP API", grant_types=["client_credentials"], scope="openid", resource_audience=RESOURCE_AUDIENCE)
    found = assist(child, parent)
    issued = exchange(oidc, viewer, access_token(viewer, parent), child.account.subject).get_json()["access_token"]
    assert oidc.userinfo(issued).status_code == 200
    delegations.revoke(found, by=child.account)
    db.session.commit()
    assert oidc.userinfo(issued).status_code == 401
    assert oidc.introspect(api, issued).get_json() == {"active": False}
    assert_error(exchange(oidc, viewer, access_token(viewer, parent), child.account.subject), 400, "invalid_grant")


def test_the_delegation_of_a_minor_ends_at_majority(oidc, viewer, child, parent):
    assist(child, parent)
    clock.advance(days_until(majority_of(child)) - timedelta(days=1))
    assert exchange(oidc, viewer, access_token(viewer, parent), child.account.subject).status_code == 200
    clock.advance(timedelta(days=1))
    assert_error(exchange(oidc, viewer, access_token(viewer, parent), child.account.subject), 400, "invalid_grant")


def test_a_client_not_registered_for_the_grant_is_unauthorized_client(oidc, child, parent):
    plain = register(name="Labo", redirect_uris=["https://lab.example.org/cb"], scope="openid profile")
    assist(child, parent)
    assert_error(exchange(oidc, plain, access_token(plain, parent, "openid"), child.account.subject), 400, "unauthorized_client")


def test_a_token_issued_to_another_client_is_invalid_grant(oidc, viewer, pharmacy, child, parent):
    assist(child, parent)
    assert_error(exchange(oidc, pharmacy, access_token(viewer, parent), subject_for(child.account, pharmacy)), 400, "invalid_grant")


def test_the_client_must_authenticate(client, viewer, child, parent):
    assist(child, parent)
    response = client.post("/token", data={"grant_type": clients.TOKEN_EXCHANGE, "subject_token": access_token(viewer, parent),
                                           "subject_token_type": ACCESS_TOKEN_TYPE, "requested_subject": child.account.subject},
                           auth=(viewer.client_id, "wrong"))
    assert_error(response, 401, "invalid_client")


def test_more_scope_than_the_subject_token_is_invalid_scope(oidc, viewer, child, parent):
    assist(child, parent)
    subject_token = access_token(viewer, parent, "openid profile")
    assert_error(exchange(oidc, viewer, subject_token, child.account.subject, scope="openid profile email"), 400, "invalid_scope")
    narrower = exchange(oidc, viewer, subject_token, child.account.subject, scope="openid")
    assert narrower.get_json()["scope"] == "openid"


def test_a_delegated_or_unknown_or_expired_subject_token_is_invalid_grant(oidc, viewer, child, parent, patients):
    sibling = patients.create(given_name="Lea", family_name="Doe", birth="20180607", mobile="+352621000007")
    assist(child, parent)
    assist(sibling, parent)
    delegated = exchange(oidc, viewer, access_token(viewer, parent), child.account.subject).get_json()["access_token"]
    assert_error(exchange(oidc, viewer, delegated, sibling.account.subject), 400, "invalid_grant")
    assert_error(exchange(oidc, viewer, "not-a-token", child.account.subject), 400, "invalid_grant")
    stale = access_token(viewer, parent)
    clock.advance(timedelta(seconds=301))
    assert_error(exchange(oidc, viewer, stale, child.account.subject), 400, "invalid_grant")


@pytest.mark.parametrize("change, error", [
    ({"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}, "invalid_request"),
    ({"requested_subject": ""}, "invalid_request"),
    ({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "invalid_request"),
    ({"actor_token": "x", "actor_token_type": ACCESS_TOKEN_TYPE}, "invalid_request"),
    ({"audience": "https://elsewhere.example"}, "invalid_target"),
    ({"resource": "https://dsp.example.lu/api"}, "invalid_target"),
])
def test_malformed_requests_get_the_rfc_error(oidc, viewer, child, parent, change, error):
    assist(child, parent)
    data = {"subject_token": access_token(viewer, parent), "requested_subject": child.account.subject, **change}
    assert_error(exchange(oidc, viewer, data.pop("subject_token"), data.pop("requested_subject"), **data), 400, error)


def test_an_audience_the_client_is_registered_for_becomes_the_tokens_aud(oidc, app, child, parent):
    rp = register(name="DSP viewer", redirect_uris=["https://dsp.example.lu/callback"], first_party=True, scope=EXCHANGE_SCOPE,
                  grant_types=["authorization_code", clients.TOKEN_EXCHANGE], extra_metadata={"access_token_audiences": ["https://dsp-api.example.lu"]})
    assist(child, parent)
    body = exchange(oidc, rp, access_token(rp, parent), child.account.subject, audience="https://dsp-api.example.lu").get_json()
    assert oidc.verify(body["access_token"]).claims["aud"] == "https://dsp-api.example.lu"


def test_discovery_lists_the_grant_and_the_claims(client):
    metadata = client.get("/.well-known/openid-configuration").get_json()
    assert clients.TOKEN_EXCHANGE in metadata["grant_types_supported"]
    assert {"act", "may_act", "assisted_patients"} <= set(metadata["claims_supported"])
    assert {"delegations", "assisted_patients"} <= set(metadata["scopes_supported"])
    assert "select_account" in metadata["prompt_values_supported"]
