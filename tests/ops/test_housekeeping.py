"""``idp housekeeping purge``: short-lived rows past use are deleted, everything still usable stays.

Each table gets rows on both sides of its rule. Under ``scripts/run-tests.sh`` the whole file runs
on PostgreSQL (the suite's database), otherwise on SQLite; one test insists on PostgreSQL.
"""

import json
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select

from idp import admin_account, audit, clock, create_app, housekeeping, settings as idp_settings, token as tokens
from idp.activation import ActivationWizard
from idp.admin_session import AdminSession
from idp.backchannel_logout import LogoutDelivery
from idp.credential import UnknownLoginThrottle
from idp.extensions import db
from idp.federated_identity import FederatedLogin, PendingArrival
from idp.known_device import COOKIE_MAX_AGE, KnownDevice
from idp.one_time_code import OneTimeCode
from idp.pushed_request import PushedRequest
from idp.replay_cache import SeenValue
from idp.sso_session import SsoSession
from idp.usage_budget import UsageBudget
from tests.support import services

DAY = timedelta(days=1)


def _ids(column) -> set:
    db.session.expire_all()
    return set(db.session.scalars(select(column)))


def _add(*rows) -> None:
    db.session.add_all(rows)
    db.session.commit()


def _pushed(name: str, expires_in: timedelta, **extra) -> PushedRequest:
    now = clock.now()
    return PushedRequest(reference_hash=name, client_id="rp", parameters={"scope": "openid"},
                         created_at=now + expires_in - timedelta(seconds=90), expires_at=now + expires_in, **extra)


def _delivery(name: str, created_ago: timedelta, **extra) -> LogoutDelivery:
    created = clock.now() - created_ago
    return LogoutDelivery(client_id=name, sso_session_id="s", account_id=1, created_at=created, next_attempt_at=created,
                          attempts=1, **extra)


def _token(name: str, access_expired_ago: timedelta, family_expires_in: timedelta | None = None, **extra) -> tokens.Token:
    now = clock.now()
    row = tokens.Token(jti=name, family_id=extra.pop("family_id", name), client_id="rp", account_id=extra.pop("account_id", None),
                       subject="sub", scope="openid", grant_type="authorization_code",
                       issued_at=now - access_expired_ago - timedelta(minutes=5), access_expires_at=now - access_expired_ago, **extra)
    if family_expires_in is not None:
        row.refresh_token_hash = tokens.digest(name)
        row.family_expires_at = now + family_expires_in
        row.refresh_expires_at = min(row.family_expires_at, now - access_expired_ago + timedelta(days=14))
    return row


def _session(name: str, account_id: int, created_ago: timedelta, ended_ago: timedelta | None = None) -> SsoSession:
    now = clock.now()
    return SsoSession(id=name, account_id=account_id, created_at=now - created_ago, last_seen_at=now - created_ago,
                      auth_time=now - created_ago, amr=["pwd", "otp"], acr="substantial",
                      ended_at=now - ended_ago if ended_ago is not None else None)


def test_expired_pushed_requests_are_deleted_and_usable_ones_kept(app):
    flow = timedelta(seconds=app.config["FEATURES"]["par"]["flow_ttl"])
    now = clock.now()
    _add(
        _pushed("waiting", timedelta(seconds=60)),
        _pushed("in-a-browser-flow", -timedelta(seconds=30), first_used_at=now - timedelta(seconds=60), binding="b"),
        _pushed("expired", -flow - timedelta(seconds=1)),
        _pushed("spent", timedelta(seconds=60), first_used_at=now, binding="b", spent_at=now),
    )
    counts = housekeeping.purge_expired()
    db.session.commit()
    assert counts["pushed_request"] == 2
    assert _ids(PushedRequest.reference_hash) == {"waiting", "in-a-browser-flow"}


def test_finished_logout_deliveries_go_after_the_window_and_pending_ones_stay(app):
    window = timedelta(seconds=app.config["HOUSEKEEPING_LOGOUT_DELIVERY_RETENTION"])
    now = clock.now()
    _add(
        _delivery("delivered-long-ago", window + 2 * DAY, delivered_at=now - window - DAY),
        _delivery("abandoned-long-ago", window + 2 * DAY, abandoned_at=now - window - DAY, last_error="HTTP 500"),
        _delivery("delivered-recently", 2 * DAY, delivered_at=now - DAY),
        _delivery("pending-for-long", window + 30 * DAY, last_error="HTTP 503"),
        _delivery("pending", timedelta(0)),
    )
    counts = housekeeping.purge_expired()
    db.session.commit()
    assert counts["logout_delivery"] == 2
    assert _ids(LogoutDelivery.client_id) == {"delivered-recently", "pending-for-long", "pending"}


def test_unknown_login_throttles_go_once_their_lockout_ended_long_ago(app):
    window = timedelta(seconds=app.config["HOUSEKEEPING_UNKNOWN_LOGIN_RETENTION"])
    now = clock.now()
    _add(
        UnknownLoginThrottle(key="lock-ended-long-ago", failed_attempts=0, lockouts=2, locked_until=now - window - DAY),
        UnknownLoginThrottle(key="lock-ended-recently", failed_attempts=0, lockouts=1, locked_until=now - DAY),
        UnknownLoginThrottle(key="locked-now", failed_attempts=0, lockouts=1, locked_until=now + timedelta(minutes=5)),
        UnknownLoginThrottle(key="counting", failed_attempts=3, lockouts=0, locked_until=None),
    )
    counts = housekeeping.purge_expired()
    db.session.commit()
    assert counts["unknown_login_throttle"] == 1
    assert _ids(UnknownLoginThrottle.key) == {"lock-ended-recently", "locked-now", "counting"}


def test_expired_replay_cache_values_and_federated_arrivals_are_deleted(app):
    now = clock.now()
    _add(
        SeenValue(key="expired", expires_at=now - timedelta(seconds=1)),
        SeenValue(key="live", expires_at=now + timedelta(minutes=1)),
        PendingArrival(id="expired", upstream="myguichet", details={}, created_at=now - timedelta(minutes=20),
                       expires_at=now - timedelta(minutes=5)),
        PendingArrival(id="live", upstream="myguichet", details={}, created_at=now, expires_at=now + timedelta(minutes=15)),
    )
    counts = housekeeping.purge_expired()
    db.session.commit()
    assert (counts["seen_value"], counts["federated_arrival"]) == (1, 1)
    assert _ids(SeenValue.key) == {"live"}
    assert _ids(PendingArrival.id) == {"live"}


def test_one_time_codes_go_two_days_after_they_were_sent_once_expired(app, patients):
    account_id = patients.create().account.id
    now = clock.now()

    def challenge(name, created_ago, expires_at):
        return OneTimeCode(id=name, account_id=account_id, subject_key=f"account:{account_id}", purpose="login", channel="sms",
                           destination="+352621000111", created_at=now - created_ago, expires_at=expires_at, sends=1, failed_attempts=3)

    _add(
        challenge("expired-days-ago", 3 * DAY, now - 3 * DAY + timedelta(minutes=5)),
        challenge("never-sent-days-ago", 3 * DAY, None),
        challenge("expired-today", timedelta(hours=1), now - timedelta(minutes=55)),
        challenge("live", timedelta(minutes=1), now + timedelta(minutes=4)),
    )
    counts = housekeeping.purge_expired()
    db.session.commit()
    assert counts["one_time_code"] == 2
    assert _ids(OneTimeCode.id) == {"expired-today", "live"}


def test_usage_budgets_go_once_their_window_opened_two_days_ago(app):
    """No budget window is longer than a day: a row opened two days ago counts nothing any more."""
    now = clock.now()
    _add(
        UsageBudget(key="opened-three-days-ago", window_started_at=now - 3 * DAY, used=20),
        UsageBudget(key="opened-yesterday", window_started_at=now - DAY, used=20),
        UsageBudget(key="opened-now", window_started_at=now, used=1),
    )
    counts = housekeeping.purge_expired()
    db.session.commit()
    assert counts["usage_budget"] == 1
    assert _ids(UsageBudget.key) == {"opened-yesterday", "opened-now"}


def test_admin_sessions_go_a_retention_window_after_they_ended(app):
    admin = admin_account.create("alice", "Correct-Horse-42-battery")
    db.session.flush()
    window = timedelta(seconds=app.config["HOUSEKEEPING_SSO_SESSION_RETENTION"])
    now = clock.now()

    def admin_session(name, created_ago, ended_ago=None):
        return AdminSession(id=name, admin_id=admin.id, created_at=now - created_ago, last_seen_at=now - created_ago,
                            ended_at=now - ended_ago if ended_ago is not None else None)

    _add(
        admin_session("ended-long-ago", window + 2 * DAY, ended_ago=window + DAY),
        admin_session("ended-recently", 2 * DAY, ended_ago=DAY),
        admin_session("timed-out-long-ago", window + 2 * DAY),
        admin_session("live", timedelta(minutes=5)),
    )
    counts = housekeeping.purge_expired()
    db.session.commit()
    assert counts["admin_session"] == 2
    assert _ids(AdminSession.id) == {"ended-recently", "live"}


def test_activation_wizards_go_a_day_after_they_expired(app):
    now = clock.now()

    def wizard(name, expires_in):
        return ActivationWizard(id=name, cgu_version="2024-1", step=2, channel_verified=False, password_hash="argon2-hash",
                                created_at=now + expires_in - timedelta(minutes=30), expires_at=now + expires_in)

    _add(wizard("expired-days-ago", -2 * DAY), wizard("expired-an-hour-ago", -timedelta(hours=1)),
         wizard("running", timedelta(minutes=20)))
    counts = housekeeping.purge_expired()
    db.session.commit()
    assert counts["activation_wizard"] == 1
    assert _ids(ActivationWizard.id) == {"expired-an-hour-ago", "running"}


def test_tokens_go_only_when_their_access_token_and_refresh_family_are_long_over(app):
    window = timedelta(seconds=app.config["HOUSEKEEPING_TOKEN_RETENTION"])
    now = clock.now()
    _add(
        _token("access-only-long-expired", window + DAY),
        _token("access-only-recently-expired", DAY),
        _token("live-access", -timedelta(minutes=4)),
        _token("family-long-over", window + 100 * DAY, family_expires_in=-window - DAY),
        _token("revoked-family-long-over", window + 100 * DAY, family_expires_in=-window - DAY, revoked_at=now - 50 * DAY),
        _token("rotated-in-live-family", window + 30 * DAY, family_expires_in=40 * DAY, rotated_at=now - 30 * DAY),
        _token("revoked-in-live-family", window + 30 * DAY, family_expires_in=40 * DAY, revoked_at=now - 29 * DAY),
        _token("family-recently-over", window + 100 * DAY, family_expires_in=-DAY),
    )
    counts = housekeeping.purge_expired()
    db.session.commit()
    assert counts["token"] == 3
    assert _ids(tokens.Token.jti) == {
        "access-only-recently-expired", "live-access", "rotated-in-live-family", "revoked-in-live-family", "family-recently-over",
    }


def test_a_rotated_refresh_token_kept_by_the_purge_still_revokes_its_family_when_reused(app):
    """RFC 9700 §4.14.2: reuse detection needs the rotated row as long as the family lives."""
    window = timedelta(seconds=app.config["HOUSEKEEPING_TOKEN_RETENTION"])
    _add(
        _token("stolen-and-rotated", window + 30 * DAY, family_expires_in=40 * DAY, family_id="family",
               rotated_at=clock.now() - 30 * DAY),
        _token("current", -timedelta(minutes=4), family_expires_in=40 * DAY, family_id="family"),
    )
    housekeeping.purge_expired()
    db.session.commit()
    assert tokens.claim_refresh_token("stolen-and-rotated") is None
    db.session.expire_all()
    assert db.session.scalar(select(tokens.Token.revoked_at).where(tokens.Token.jti == "current")) is not None
    assert audit.recent(name=audit.Event.REFRESH_TOKEN_REUSED.value)


def test_authorization_codes_stay_as_long_as_tokens_from_them_may_live(app):
    config = app.config
    token_window = max(config["HOUSEKEEPING_TOKEN_RETENTION"], config["SSO_ABSOLUTE_TIMEOUT"])
    kept_for = timedelta(seconds=config["REFRESH_TOKEN_ABSOLUTE_TTL"] + token_window)
    now = clock.now()

    def code(name, expired_ago):
        return tokens.AuthorizationCode(code_hash=name, client_id="rp", account_id=1, redirect_uri="https://rp.example.lu/cb",
                                        scope="openid", nonce=f"nonce-{name}", amr=[],
                                        created_at=now - expired_ago - timedelta(minutes=1),
                                        expires_at=now - expired_ago, used_at=now - expired_ago)

    _add(code("past-every-token", kept_for + DAY), code("tokens-may-live", 30 * DAY), code("fresh", -timedelta(seconds=30)))
    counts = housekeeping.purge_expired()
    db.session.commit()
    assert counts["authorization_code"] == 1
    assert _ids(tokens.AuthorizationCode.code_hash) == {"tokens-may-live", "fresh"}
    assert tokens.nonce_was_used("rp", "nonce-tokens-may-live")


def test_sso_sessions_go_long_after_they_ended_once_no_token_names_them(app, patients):
    account_id = patients.create().account.id
    window = timedelta(seconds=app.config["HOUSEKEEPING_SSO_SESSION_RETENTION"])
    _add(
        _session("ended-long-ago", account_id, window + 2 * DAY, ended_ago=window + DAY),
        _session("timed-out-long-ago", account_id, window + 3 * DAY),
        _session("ended-long-ago-with-tokens", account_id, window + 2 * DAY, ended_ago=window + DAY),
        _session("ended-recently", account_id, 2 * DAY, ended_ago=DAY),
        _session("live", account_id, timedelta(minutes=10)),
    )
    _add(
        FederatedLogin(sso_session_id="ended-long-ago", upstream="myguichet", name_id="n1"),
        FederatedLogin(sso_session_id="ended-recently", upstream="myguichet", name_id="n2"),
        _token("refresh-from-old-session", window, family_expires_in=10 * DAY, sso_session_id="ended-long-ago-with-tokens",
               account_id=account_id),
    )
    counts = housekeeping.purge_expired()
    db.session.commit()
    assert (counts["sso_session"], counts["federated_login"]) == (2, 1)
    assert _ids(SsoSession.id) == {"ended-long-ago-with-tokens", "ended-recently", "live"}
    assert _ids(FederatedLogin.sso_session_id) == {"ended-recently"}


def test_devices_unseen_longer_than_their_cookie_lives_go_but_each_account_keeps_its_latest(app, patients):
    first, second = patients.create().account.id, patients.create().account.id
    now = clock.now()
    stale = now - timedelta(seconds=COOKIE_MAX_AGE) - DAY

    def device(name, account_id, last_seen):
        return KnownDevice(account_id=account_id, device_hash=name, first_seen_at=last_seen - DAY, last_seen_at=last_seen)

    _add(device("old-browser", first, stale), device("current-browser", first, now - DAY), device("only-browser", second, stale))
    counts = housekeeping.purge_expired()
    db.session.commit()
    assert counts["known_device"] == 1
    assert _ids(KnownDevice.device_hash) == {"current-browser", "only-browser"}


def test_the_purge_is_audited_with_its_counts(app):
    _add(SeenValue(key="expired", expires_at=clock.now() - timedelta(seconds=1)))
    counts = housekeeping.purge_expired()
    db.session.commit()
    [event] = audit.recent(name=audit.Event.HOUSEKEEPING_PURGED.value)
    assert event.actor == "housekeeping" and event.account_id is None
    assert event.details["deleted"] == counts and counts["seen_value"] == 1


def test_the_command_deletes_and_prints_the_counts(app, runner):
    _add(SeenValue(key="expired", expires_at=clock.now() - timedelta(seconds=1)),
         _delivery("delivered-long-ago", 30 * DAY, delivered_at=clock.now() - 20 * DAY))
    result = runner.invoke(args=["housekeeping", "purge"])
    assert result.exit_code == 0, result.output
    assert "seen_value: 1 deleted" in result.output
    assert "logout_delivery: 1 deleted" in result.output
    assert "total: 2 deleted" in result.output
    db.session.rollback()
    assert _ids(SeenValue.key) == set() and _ids(LogoutDelivery.id) == set()


def test_the_command_prints_one_json_document_with_json(app, runner):
    _add(UnknownLoginThrottle(key="old", failed_attempts=0, lockouts=1, locked_until=clock.now() - 200 * DAY))
    result = runner.invoke(args=["housekeeping", "purge", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["unknown_login_throttle"] == 1
    assert set(document) >= {"pushed_request", "logout_delivery", "unknown_login_throttle", "token", "authorization_code", "sso_session"}
    assert all(isinstance(value, int) for value in document.values())


@pytest.mark.parametrize("value", [-1, "7 days", 1.5])
def test_a_retention_window_that_would_purge_live_rows_is_refused_at_start(tmp_path, monkeypatch, value):
    monkeypatch.setenv("IDP_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(idp_settings.InvalidSettings, match="HOUSEKEEPING_TOKEN_RETENTION"):
        create_app({"SECRET_KEY": "k", "PAIRWISE_SALT": "s", "DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}",
                    "HOUSEKEEPING_TOKEN_RETENTION": value})


@pytest.mark.postgres
def test_the_purge_runs_on_postgresql_in_one_transaction(app, patients):
    """Fails, never skips, without PostgreSQL: ``scripts/run-tests.sh`` always provides one."""
    services.database_url(required=True)
    assert db.engine.dialect.name == "postgresql"
    account_id = patients.create().account.id
    window = timedelta(seconds=app.config["HOUSEKEEPING_SSO_SESSION_RETENTION"])
    now = clock.now()
    _add(_session("old", account_id, window + 2 * DAY, ended_ago=window + DAY), _session("live", account_id, timedelta(minutes=1)))
    _add(FederatedLogin(sso_session_id="old", upstream="luxtrust", name_id="n"),  # foreign key: must go first
         KnownDevice(account_id=account_id, device_hash="old", first_seen_at=now - 500 * DAY, last_seen_at=now - 500 * DAY),
         KnownDevice(account_id=account_id, device_hash="new", first_seen_at=now, last_seen_at=now),
         _token("old", 400 * DAY, family_expires_in=-300 * DAY), _token("live", -timedelta(minutes=1)),
         SeenValue(key=secrets.token_hex(8), expires_at=now - DAY))
    counts = housekeeping.purge_expired()
    db.session.commit()
    assert {k: counts[k] for k in ("sso_session", "federated_login", "known_device", "token", "seen_value")} == dict.fromkeys(
        ("sso_session", "federated_login", "known_device", "token", "seen_value"), 1)
    assert _ids(SsoSession.id) == {"live"} and _ids(tokens.Token.jti) == {"live"}
