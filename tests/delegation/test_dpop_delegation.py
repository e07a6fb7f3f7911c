"""DPoP (RFC 9449) with delegations: a bound token is neither exchanged nor used on the API without its key."""

from idp import client as clients
from idp.oauth import rfc9449_dpop as dpop
from tests.delegation.conftest import EXCHANGE_SCOPE, assist
from tests.oauth.test_rfc9449_dpop_proofs import Holder

ISSUER = "http://127.0.0.1:5000"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def bound_access_token(oidc, rp, patient, holder) -> str:
    issued = oidc.code(rp, patient, scope=EXCHANGE_SCOPE)
    response = oidc.client.post("/token", data={"grant_type": "authorization_code", "code": issued.code, "redirect_uri": issued.redirect_uri,
                                                "code_verifier": issued.verifier},
                                headers={"DPoP": holder.proof(url=ISSUER + "/token")}, auth=(rp.client_id, rp.plain_secret))
    assert response.get_json()["token_type"] == "DPoP", response.get_data(as_text=True)
    return response.get_json()["access_token"]


def exchange(oidc, rp, subject_token: str, requested_subject: str, proof: str | None):
    return oidc.client.post("/token", data={"grant_type": clients.TOKEN_EXCHANGE, "subject_token": subject_token,
                                            "subject_token_type": ACCESS_TOKEN_TYPE, "requested_subject": requested_subject},
                            headers={"DPoP": proof} if proof else {}, auth=(rp.client_id, rp.plain_secret))


def test_a_dpop_bound_subject_token_is_exchanged_only_with_a_proof_by_its_key(oidc, viewer, child, parent):
    holder = Holder()
    assist(child, parent)
    subject_token = bound_access_token(oidc, viewer, parent, holder)
    refused = exchange(oidc, viewer, subject_token, child.account.subject, None)
    assert (refused.status_code, refused.get_json()["error"]) == (400, "invalid_grant")
    thief = exchange(oidc, viewer, subject_token, child.account.subject, Holder().proof(url=ISSUER + "/token"))
    assert (thief.status_code, thief.get_json()["error"]) == (400, "invalid_grant")
    granted = exchange(oidc, viewer, subject_token, child.account.subject, holder.proof(url=ISSUER + "/token"))
    assert granted.status_code == 200, granted.get_data(as_text=True)
    assert granted.get_json()["token_type"] == "DPoP"
    assert oidc.verify(granted.get_json()["access_token"]).claims["cnf"] == {"jkt": holder.key.thumbprint()}


def test_the_delegation_api_wants_a_bound_token_under_the_dpop_scheme(oidc, viewer, child):
    holder = Holder()
    token = bound_access_token(oidc, viewer, child, holder)
    as_bearer = oidc.client.get("/api/v1/delegations", headers={"Authorization": "Bearer " + token})
    assert as_bearer.status_code == 401 and as_bearer.headers["WWW-Authenticate"].startswith("DPoP ")
    assert as_bearer.get_json()["error"] == "invalid_dpop_proof"
    proof = holder.proof("GET", ISSUER + "/api/v1/delegations", ath=dpop.access_token_hash(token))
    good = oidc.client.get("/api/v1/delegations", headers={"Authorization": "DPoP " + token, "DPoP": proof})
    assert good.status_code == 200, good.get_data(as_text=True)
