"""Races on PostgreSQL: the same activation, refresh token or code submitted several times at once.

Exactly one wins; the others get the documented answer (the activation's confirmation page,
``invalid_grant``), and nothing is lost or duplicated. A reused refresh token or code counts
as a replay even when the duplicates were simultaneous (RFC 9700 §4.14.2, RFC 6749 §4.1.2):
the tokens the winner received are revoked too. Each request runs in its own thread, with its
own application context and database connection, released together by a barrier.
"""

import threading

import pytest
from sqlalchemy import func, select

from idp import account as accounts, activation_letter, audit, cgu_acceptance, token as tokens
from idp.extensions import db
from tests.conftest import csrf_token
from tests.flows.test_activation import Wizard
from tests.oauth.conftest import OidcDriver
from tests.oauth.test_fapi2_profile import FapiFlow, register_fapi
from tests.support import services

pytestmark = pytest.mark.postgres
RACERS = 4


@pytest.fixture(autouse=True)
def on_postgresql(app):
    """Fails, never skips, without PostgreSQL: SQLite serializes writers and would prove nothing."""
    services.database_url(required=True)
    assert db.engine.dialect.name == "postgresql"


def race(app, requests) -> list:
    """Run each zero-argument callable in its own thread at the same moment; their results, in order."""
    barrier = threading.Barrier(len(requests))
    results: list = [None] * len(requests)

    def run(index, send):
        with app.app_context():
            barrier.wait()
            try:
                results[index] = send()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(index, send)) for index, send in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(result is not None for result in results), "a racer did not finish"
    return results


def count(model, *conditions) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*conditions))


def events(name: audit.Event) -> int:
    return count(audit.AuditEvent, audit.AuditEvent.name == name.value)


def test_a_double_submitted_activation_activates_once(app, client, patients, pending):
    account, code = pending
    wizard = Wizard(client, patients)
    wizard.to_last_step(account, code)
    token = csrf_token(client.get("/activation/other-means").get_data(as_text=True))
    flow_cookie = client.get_cookie("esante_flow").value
    browsers = []
    for _ in range(RACERS):  # the same browser's cookie, as from a double click or two tabs
        browser = app.test_client()
        browser.set_cookie("esante_flow", flow_cookie)
        browsers.append(browser)

    responses = race(app, [lambda browser=browser: browser.post("/activation/other-means", data={"csrf_token": token}) for browser in browsers])

    assert [response.status_code for response in responses] == [303] * RACERS
    assert all(response.headers["Location"].endswith("/activation/done") for response in responses)
    db.session.refresh(account)
    assert account.status == accounts.AccountStatus.ACTIVE.value
    assert events(audit.Event.ACCOUNT_ACTIVATED) == 1
    assert count(cgu_acceptance.CguAcceptance, cgu_acceptance.CguAcceptance.account_id == account.id) == 1
    assert activation_letter.current_letter(account) is None, "the letter was consumed, once"


def test_concurrent_refreshes_of_one_refresh_token_let_exactly_one_win(app, client, patients, rp_client):
    oidc = OidcDriver(client, patients)
    issued = oidc.tokens(rp_client, patients.create(), scope="openid offline_access")
    credentials = (rp_client.client_id, rp_client.plain_secret)
    data = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}

    responses = race(app, [lambda: app.test_client().post("/token", data=data, auth=credentials) for _ in range(RACERS)])

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [400] * (RACERS - 1)
    assert {response.get_json()["error"] for response in responses if response.status_code == 400} == {"invalid_grant"}
    original = db.session.scalar(select(tokens.Token).where(tokens.Token.refresh_token_hash == tokens.digest(issued["refresh_token"])))
    family = list(db.session.scalars(select(tokens.Token).where(tokens.Token.family_id == original.family_id)))
    assert len(family) == 2, "one rotation, not one per racer"
    assert events(audit.Event.TOKEN_REFRESHED) == 1
    assert events(audit.Event.REFRESH_TOKEN_REUSED) >= 1
    assert all(row.revoked_at is not None for row in family), "a replayed refresh token revokes its family"


def test_concurrent_refreshes_of_a_kept_fapi2_refresh_token_all_succeed(app, client, patients):
    """FAPI 2.0 §5.3.2.1 item 9 and its note 1: no rotation, so simultaneous refreshes (a retry
    racing the lost first attempt) all get an access token and the refresh token stays live."""
    oidc = OidcDriver(client, patients)
    fapi = register_fapi()
    refresh_token = FapiFlow(client, oidc, patients).tokens(fapi)["refresh_token"]

    responses = race(app, [lambda: FapiFlow(app.test_client(), oidc, patients).refresh(fapi, refresh_token) for _ in range(RACERS)])

    assert [response.status_code for response in responses] == [200] * RACERS, [r.get_json() for r in responses]
    assert len({response.get_json()["access_token"] for response in responses}) == RACERS
    kept = tokens.find_refresh_token(refresh_token)
    assert kept.rotated_at is None and kept.revoked_at is None
    assert count(tokens.Token, tokens.Token.family_id == kept.family_id) == 1 + RACERS
    assert events(audit.Event.TOKEN_REFRESHED) == RACERS and events(audit.Event.REFRESH_TOKEN_REUSED) == 0


def test_concurrent_redemptions_of_one_code_let_exactly_one_win(app, client, patients, rp_client):
    oidc = OidcDriver(client, patients)
    issued = oidc.code(rp_client, patients.create(), scope="openid offline_access")
    credentials = (rp_client.client_id, rp_client.plain_secret)
    data = {"grant_type": "authorization_code", "code": issued.code, "redirect_uri": issued.redirect_uri, "code_verifier": issued.verifier}

    responses = race(app, [lambda: app.test_client().post("/token", data=data, auth=credentials) for _ in range(RACERS)])

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [400] * (RACERS - 1)
    assert {response.get_json()["error"] for response in responses if response.status_code == 400} == {"invalid_grant"}
    code_hash = tokens.digest(issued.code)
    assert count(tokens.Token, tokens.Token.code_hash == code_hash) == 1, "one grant, not one per racer"
    assert events(audit.Event.TOKEN_ISSUED) == 1
    assert events(audit.Event.AUTHORIZATION_CODE_REUSED) >= 1
    assert count(tokens.Token, tokens.Token.code_hash == code_hash, tokens.Token.revoked_at.is_(None)) == 0, \
        "a replayed code revokes what it gave"
