"""Passwords: argon2id at OWASP's parameters or stronger, rehashed on login when they change."""

import runpy
from datetime import timedelta

import pytest

from idp import clock, credential
from idp.extensions import db
from idp.settings import resource_path


def stored_hash(account) -> str:
    db.session.expire_all()
    return db.session.get(credential.PasswordCredential, account.id).password_hash


def test_production_defaults_are_at_least_owasp_minimum():
    """OWASP Password Storage Cheat Sheet: argon2id, m=19456 KiB (19 MiB), t=2, p=1."""
    defaults = runpy.run_path(str(resource_path("config") / "default.py"))
    assert defaults["ARGON2_MEMORY_COST"] >= 19456
    assert defaults["ARGON2_TIME_COST"] >= 2
    assert defaults["ARGON2_PARALLELISM"] >= 1


def test_passwords_are_stored_as_argon2id(patients):
    patient = patients.create()
    value = stored_hash(patient.account)
    assert value.startswith("$argon2id$")
    assert "m=1024,t=1,p=1" in value
    assert patient.password not in value


def test_the_right_password_verifies_and_a_wrong_one_does_not(patients):
    patient = patients.create()
    credential.verify_password(patient.account, patient.password)
    with pytest.raises(credential.WrongPassword):
        credential.verify_password(patient.account, "Wrong2026pass")


@pytest.mark.settings(ARGON2_MEMORY_COST=19456, ARGON2_TIME_COST=2, ARGON2_PARALLELISM=1)
def test_production_parameters_are_used_when_configured(patients):
    patient = patients.create()
    assert "$argon2id$v=19$m=19456,t=2,p=1$" in stored_hash(patient.account)


def test_login_rehashes_a_password_stored_with_other_parameters(app, patients):
    patient = patients.create()
    old = stored_hash(patient.account)
    assert "m=1024,t=1" in old
    app.config.update(ARGON2_MEMORY_COST=2048, ARGON2_TIME_COST=2)
    response = patients.submit_password(patient)
    assert response.status_code == 303
    new = stored_hash(patient.account)
    assert new != old and new.startswith("$argon2id$") and "m=2048,t=2,p=1" in new
    credential.verify_password(patient.account, patient.password)


def test_a_failed_login_does_not_rehash(app, patients):
    patient = patients.create()
    old = stored_hash(patient.account)
    app.config.update(ARGON2_MEMORY_COST=2048)
    patients.submit_password(patient, password="Wrong2026pass")
    assert stored_hash(patient.account) == old


@pytest.mark.settings(PASSWORD_MAX_FAILURES=3, PASSWORD_LOCKOUT_SECONDS=60)
def test_lockout_after_max_failures_doubles_each_time(patients):
    patient = patients.create()
    for _ in range(2):
        with pytest.raises(credential.WrongPassword):
            credential.verify_password(patient.account, "Wrong2026pass")
    with pytest.raises(credential.AccountLocked) as first:
        credential.verify_password(patient.account, "Wrong2026pass")
    assert first.value.until == pytest.approx(clock.now() + timedelta(seconds=60), abs=timedelta(seconds=2))
    with pytest.raises(credential.AccountLocked):
        credential.verify_password(patient.account, patient.password)  # even the right password waits
    clock.advance(timedelta(seconds=61))
    for _ in range(2):
        with pytest.raises(credential.WrongPassword):
            credential.verify_password(patient.account, "Wrong2026pass")
    with pytest.raises(credential.AccountLocked) as second:
        credential.verify_password(patient.account, "Wrong2026pass")
    assert second.value.until == pytest.approx(clock.now() + timedelta(seconds=120), abs=timedelta(seconds=2))
    clock.advance(timedelta(seconds=121))
    credential.verify_password(patient.account, patient.password)
    row = db.session.get(credential.PasswordCredential, patient.account.id)
    assert (row.failed_attempts, row.lockouts, row.locked_until) == (0, 0, None)


@pytest.mark.parametrize("password, failures", [
    ("Sante2026ok", []),
    ("short1", ["too_short"]),
    ("12345678901", ["no_letter"]),
    ("onlyletters", ["no_digit"]),
    ("a1" * 65, ["too_long"]),
])
def test_the_guide_password_rule(password, failures):
    assert credential.password_rule_failures(password) == failures


def test_a_password_may_not_contain_the_matricule_or_name(patients):
    patient = patients.create()
    with pytest.raises(credential.PasswordTooWeak) as error:
        credential.set_password(patient.account, "Schmit2026!")
    assert error.value.rules == ["contains_personal_data"]
