"""Federated identities and the MyGuichet consent, without HTTP."""

import pytest

from idp import clock, federated_identity, national_id_consent
from idp.extensions import db
from idp.assurance import acr_rank, minimum_acr
from tests.flows.conftest import audit_names


def test_identities_are_namespaced_by_upstream(patients):
    first, second = patients.create(), patients.create(mobile="+352621000222")
    federated_identity.link(first.account.id, "luxtrust", "same-subject")
    federated_identity.link(second.account.id, "myguichet", "same-subject")
    db.session.commit()
    assert federated_identity.find("luxtrust", "same-subject").account_id == first.account.id
    assert federated_identity.find("myguichet", "same-subject").account_id == second.account.id


def test_an_identity_belongs_to_one_account(patients):
    first, second = patients.create(), patients.create(mobile="+352621000222")
    federated_identity.link(first.account.id, "luxtrust", "lt-1")
    with pytest.raises(federated_identity.IdentityLinkedElsewhere):
        federated_identity.link(second.account.id, "luxtrust", "lt-1")


def test_a_new_product_replaces_the_accounts_earlier_one_at_that_upstream(patients):
    patient = patients.create()
    federated_identity.link(patient.account.id, "luxtrust", "lt-old")
    federated_identity.link(patient.account.id, "luxtrust", "lt-new")
    db.session.commit()
    assert [identity.subject for identity in federated_identity.of_account(patient.account.id)] == ["lt-new"]
    assert audit_names().count("federation:identity_unlinked") == 1


def test_the_consent_keeps_its_time_and_text_version_and_revoking_unlinks(patients):
    patient = patients.create()
    given = national_id_consent.give(patient.account.id)
    federated_identity.link(patient.account.id, "myguichet", "mg-1")
    federated_identity.link(patient.account.id, "luxtrust", "lt-1")
    db.session.commit()
    assert (given.text_version, given.given_at <= clock.now()) == (national_id_consent.TEXT_VERSION, True)
    assert national_id_consent.give(patient.account.id) is given  # giving it again changes nothing
    assert national_id_consent.revoke(patient.account.id) is True
    db.session.commit()
    assert national_id_consent.current(patient.account.id) is None and given.revoked_at is not None
    assert [identity.upstream for identity in federated_identity.of_account(patient.account.id)] == ["luxtrust"]
    assert national_id_consent.revoke(patient.account.id) is False


def test_pending_arrivals_are_taken_once_and_expire(app):
    token = federated_identity.keep_arrival("luxtrust", {"identity": {}})
    db.session.commit()
    assert federated_identity.take_arrival(token) is not None
    assert federated_identity.take_arrival(token) is None
    later = federated_identity.keep_arrival("luxtrust", {"identity": {}})
    db.session.commit()
    clock.advance(federated_identity.ARRIVAL_TTL)
    assert federated_identity.take_arrival(later) is None


def test_the_eidas_order_of_levels():
    low, substantial, high = (f"http://eidas.europa.eu/LoA/{name}" for name in ("low", "substantial", "high"))
    assert acr_rank(low) < acr_rank(substantial) < acr_rank(high) and acr_rank("urn:other") == -1
    assert minimum_acr(f"{high} {substantial}") == substantial
    assert minimum_acr("urn:unknown") is None and minimum_acr(None) is None
