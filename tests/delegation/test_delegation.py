"""The delegation domain: who may add assistants, the end at majority, revocation of tokens."""

from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from idp import audit, clock, delegation as delegations, messaging, token as tokens
from idp.extensions import db
from idp.subject import subject_for
from tests.delegation.conftest import access_token, assist, days_until, majority_of


def test_masked_name_is_the_initial_and_the_family_name(parent):
    assert delegations.masked_name(parent.account) == "H. Doe"


def test_majority_is_the_18th_birthday_and_29_february_becomes_1_march():
    assert delegations.majority_date(date(2010, 3, 15)) == date(2028, 3, 15)
    assert delegations.majority_date(date(2008, 2, 29)) == date(2026, 3, 1)


def test_a_minors_delegation_ends_the_day_before_the_18th_birthday(child, parent):
    found = assist(child, parent)
    assert found.valid_until == majority_of(child) - timedelta(days=1)
    assert found.is_in_force(found.valid_until) and not found.is_in_force(majority_of(child))


def test_an_end_date_before_majority_is_kept_and_one_after_it_is_cut(child, parent, patients):
    other = patients.create(given_name="Anna", family_name="Muller", birth="19790101", email="anna@example.lu", mobile="+352621000003")
    soon = clock.today() + timedelta(days=30)
    assert assist(child, parent, valid_until=soon).valid_until == soon
    far = majority_of(child) + timedelta(days=400)
    assert assist(child, other, valid_until=far).valid_until == majority_of(child) - timedelta(days=1)


def test_an_adults_delegation_has_no_end_unless_given(parent, patients):
    friend = patients.create(given_name="Jean", family_name="Weber", birth="19750202", email="jean@example.lu", mobile="+352621000004")
    assert assist(parent, friend).valid_until is None


@pytest.mark.parametrize("options, message", [
    ({"type": "guardian"}, "unknown delegation type"),
    ({"valid_until": date(2000, 1, 1)}, "past"),
    ({"role": "x" * 101}, "at most"),
])
def test_invalid_delegations_are_refused(child, parent, options, message):
    with pytest.raises(delegations.InvalidDelegation, match=message):
        delegations.grant(child.account, parent.account, created_by=child.account, **options)


def test_nobody_is_their_own_assistant_and_nobody_is_added_twice(child, parent):
    with pytest.raises(delegations.InvalidDelegation):
        delegations.grant(child.account, child.account, created_by=child.account)
    assist(child, parent)
    with pytest.raises(delegations.DelegationExists):
        delegations.grant(child.account, parent.account, created_by=child.account)


def test_an_assistant_manages_a_minors_assistants_but_not_an_adults(child, parent, patients):
    other = patients.create(given_name="Anna", family_name="Muller", birth="19790101", email="anna@example.lu", mobile="+352621000003")
    assist(child, parent)
    assert delegations.may_manage(child.account, parent.account)
    delegations.grant(child.account, other.account, created_by=parent.account)  # the parent adds the other parent
    friend = patients.create(given_name="Jean", family_name="Weber", birth="19750202", email="jean@example.lu", mobile="+352621000004")
    assist(parent, other)
    assert not delegations.may_manage(parent.account, other.account)
    with pytest.raises(delegations.NotAllowed):
        delegations.grant(parent.account, friend.account, created_by=other.account)
    assert not delegations.may_manage(child.account, friend.account)


def test_the_lookup_is_exact_audited_and_refuses_partial_input(child, parent):
    assert delegations.lookup(parent.matricule, requested_by=child.account).id == parent.account.id
    assert delegations.lookup(parent.matricule[:4] + " " + parent.matricule[4:], requested_by=child.account).id == parent.account.id
    with pytest.raises(delegations.InvalidDelegation):
        delegations.lookup(parent.matricule[:8], requested_by=child.account)
    wrong_check = parent.matricule[:-1] + str((int(parent.matricule[-1]) + 1) % 10)
    with pytest.raises(delegations.InvalidDelegation):
        delegations.lookup(wrong_check, requested_by=child.account)
    db.session.commit()
    lookups = audit.trail(child.account.id)
    assert [e.name for e in lookups] == ["delegation:lookup"] * 2
    assert lookups[0].details["found"] is True and parent.matricule not in str(lookups[0].details)


def test_revoking_revokes_every_token_and_refresh_token_issued_under_it(child, parent, viewer):
    found = assist(child, parent)
    response, _ = tokens.issue(viewer, child.account, "openid offline_access", grant_type="urn:ietf:params:oauth:grant-type:token-exchange",
                               delegation=found, include_refresh_token=True)
    own = access_token(viewer, parent)
    db.session.commit()
    assert tokens.find_access_token(response["access_token"]) is not None
    delegations.revoke(found, by=child.account)
    db.session.commit()
    assert tokens.find_access_token(response["access_token"]) is None
    assert tokens.find_refresh_token(response["refresh_token"]).revoked_at is not None
    assert tokens.find_access_token(own) is not None  # the parent's own token is not touched
    ended = audit.trail(child.account.id)[0]
    assert (ended.name, ended.details["revoked_tokens"]) == ("delegation:revoked", 1)


def test_a_delegated_refresh_token_stops_working_at_majority_even_before_the_sweep(parent, patients, viewer):
    eighteen_in_five_days = clock.today().replace(year=clock.today().year - 18) + timedelta(days=5)
    teenager = patients.create(given_name="Tom", family_name="Doe", birth=eighteen_in_five_days.strftime("%Y%m%d"), mobile="+352621000009")
    found = assist(teenager, parent)
    response, _ = tokens.issue(viewer, teenager.account, "openid offline_access", grant_type="urn:ietf:params:oauth:grant-type:token-exchange",
                               delegation=found, include_refresh_token=True)
    db.session.commit()
    clock.advance(timedelta(days=4))
    assert delegations.in_force(found.id)
    assert tokens.introspect(response["refresh_token"])["active"] is True
    clock.advance(timedelta(days=1))
    assert not delegations.in_force(found.id)
    assert tokens.introspect(response["refresh_token"]) == {"active": False}
    assert delegations.for_assistant(parent.account) == []


def test_at_majority_the_sweep_ends_the_delegation_revokes_its_tokens_and_tells_the_new_adult(child, parent, viewer, runner):
    found = assist(child, parent)
    _, jti = tokens.issue(viewer, child.account, "openid offline_access", grant_type="urn:ietf:params:oauth:grant-type:token-exchange",
                          delegation=found, include_refresh_token=True)
    db.session.commit()
    clock.advance(days_until(majority_of(child)))
    result = runner.invoke(args=["delegations", "end-expired", "--json"])
    assert result.exit_code == 0, result.output
    assert '"ended": 1' in result.output
    db.session.expire_all()
    revoked_at = db.session.scalar(select(tokens.Token.revoked_at).where(tokens.Token.jti == jti))
    assert (found.revoked_by, revoked_at is not None) == ("majority", True)
    message = messaging.outbox_messages(child.account.mobile)[-1]
    assert "18 ans" in message.body and "Assistants" in message.body
    assert audit.trail(child.account.id)[0].name == "delegation:ended"
    assist(child, parent)  # the new adult may choose assistants again, with no end this time
    assert delegations.for_owner(child.account)[0].valid_until is None


def test_an_adults_delegation_past_its_end_date_ends_without_a_majority_message(parent, patients):
    friend = patients.create(given_name="Jean", family_name="Weber", birth="19750202", email="jean@example.lu", mobile="+352621000004")
    found = assist(parent, friend, valid_until=clock.today())
    told_of_the_assistant = messaging.outbox_messages(parent.account.mobile)
    clock.advance(timedelta(days=1))
    assert delegations.end_expired() == 1
    db.session.commit()
    assert found.revoked_by == "expiry"
    assert messaging.outbox_messages(parent.account.mobile) == told_of_the_assistant, "nothing more at the end"


def test_assisted_patients_and_may_act_name_subjects_as_each_client_sees_them(child, parent, viewer, pharmacy):
    assist(child, parent)
    assert delegations.assisted_patients(parent.account, viewer) == [{"sub": child.account.subject, "name": "Rita Doe"}]
    pairwise = delegations.assisted_patients(parent.account, pharmacy)[0]["sub"]
    assert pairwise == subject_for(child.account, pharmacy) != child.account.subject
    assert delegations.may_act(child.account, viewer) == {"sub": parent.account.subject}
    assert delegations.may_act(parent.account, viewer) is None


def test_may_act_lists_every_assistant_when_there_are_several(child, parent, patients, viewer):
    mother = patients.create(given_name="Anna", family_name="Doe", birth="19820303", email="anna@example.lu", mobile="+352621000003")
    assist(child, parent)
    assist(child, mother)
    assert delegations.may_act(child.account, viewer) == [{"sub": parent.account.subject}, {"sub": mother.account.subject}]


def moment(utc: datetime) -> None:
    """Move the clock to ``utc`` (naive UTC, as stored)."""
    clock.advance(utc - clock.now())


@pytest.mark.parametrize("summer", [True, False])
def test_a_minors_delegation_ends_at_midnight_in_luxembourg_not_utc(parent, patients, viewer, summer):
    """Luxembourg is UTC+2 in summer, UTC+1 in winter: at 22:30 UTC (summer) or 23:30 UTC (winter) on
    the eve of the 18th birthday it is already the birthday in Luxembourg, and the parent's access is over.
    Before: the UTC date still said the eve."""
    birthday = date(2031, 7, 14) if summer else date(2031, 1, 14)
    teenager = patients.create(given_name="Tom", family_name="Doe", birth=birthday.replace(year=2013).strftime("%Y%m%d"),
                               mobile="+352621000009")
    eve = datetime.combine(birthday - timedelta(days=1), time(20, 0))
    moment(eve)
    found = assist(teenager, parent)
    assert found.valid_until == birthday - timedelta(days=1)
    response, _ = tokens.issue(viewer, teenager.account, "openid offline_access", grant_type="urn:ietf:params:oauth:grant-type:token-exchange",
                               delegation=found, include_refresh_token=True)
    db.session.commit()
    moment(eve.replace(hour=21, minute=30) if summer else eve.replace(hour=22, minute=30))  # 23:30 in Luxembourg
    assert delegations.in_force(found.id) and delegations.is_minor(teenager.account)
    moment(eve.replace(hour=22, minute=30) if summer else eve.replace(hour=23, minute=30))  # 00:30 in Luxembourg
    assert not delegations.in_force(found.id), "the birthday has begun in Luxembourg"
    assert not delegations.is_minor(teenager.account)
    assert tokens.introspect(response["refresh_token"]) == {"active": False}
