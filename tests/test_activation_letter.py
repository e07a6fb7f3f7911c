"""``idp letters issue``: activation codes, stored hashed, expiring, one valid letter at a time."""

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from idp import activation_letter, clock
from idp.extensions import db


def issue(runner, *matricules: str):
    result = runner.invoke(args=["letters", "issue", *matricules, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def letters_of(account) -> list[activation_letter.ActivationLetter]:
    return list(db.session.scalars(select(activation_letter.ActivationLetter).where(activation_letter.ActivationLetter.account_id == account.id)))


def test_issue_prints_one_code_per_patient(runner, patients):
    first, second = patients.create(status="pending"), patients.create(status="pending")
    rows = issue(runner, first.matricule, second.matricule)
    assert [row["matricule"] for row in rows] == [first.matricule, second.matricule]
    assert all(set(row) == {"matricule", "activation_code", "expires_at"} for row in rows)
    assert rows[0]["activation_code"] != rows[1]["activation_code"]
    assert len(rows[0]["activation_code"].replace("-", "")) == 12


def test_code_is_stored_hashed_never_in_clear(runner, patients, app):
    patient = patients.create(status="pending")
    code = issue(runner, patient.matricule)[0]["activation_code"]
    dump = "\n".join(db.session.connection().connection.driver_connection.iterdump()) if app.config["DATABASE_URL"].startswith("sqlite") else ""
    stored = letters_of(patient.account)[0].code_hash
    assert code not in stored and code.replace("-", "") not in stored
    assert len(stored) == 64
    if dump:
        assert code not in dump and code.replace("-", "") not in dump


def test_default_expiry_is_ninety_days(runner, patients, app):
    assert app.config["ACTIVATION_CODE_TTL_DAYS"] == 90
    patient = patients.create(status="pending")
    before = clock.now()
    expires_at = datetime.fromisoformat(issue(runner, patient.matricule)[0]["expires_at"].rstrip("Z"))
    assert before + timedelta(days=90) - timedelta(seconds=5) <= expires_at <= clock.now() + timedelta(days=90)


@pytest.mark.settings(ACTIVATION_CODE_TTL_DAYS=14)
def test_expiry_is_configurable(runner, patients):
    patient = patients.create(status="pending")
    expires_at = datetime.fromisoformat(issue(runner, patient.matricule)[0]["expires_at"].rstrip("Z"))
    assert timedelta(days=13, hours=23) < expires_at - clock.now() <= timedelta(days=14)


def test_check_accepts_the_code_as_printed_or_typed_loosely(runner, patients):
    patient = patients.create(status="pending")
    code = issue(runner, patient.matricule)[0]["activation_code"]
    account, letter = activation_letter.check(patient.matricule, code)
    assert account.id == patient.account.id
    account, _ = activation_letter.check(patient.matricule, code.replace("-", " ").lower())
    assert account.id == patient.account.id


def test_a_new_letter_voids_the_previous_code(runner, patients):
    patient = patients.create(status="pending")
    old = issue(runner, patient.matricule)[0]["activation_code"]
    new = issue(runner, patient.matricule)[0]["activation_code"]
    db.session.expire_all()
    with pytest.raises(activation_letter.ActivationCodeInvalid):
        activation_letter.check(patient.matricule, old)
    assert activation_letter.check(patient.matricule, new)[0].id == patient.account.id
    assert sum(letter.voided_at is None for letter in letters_of(patient.account)) == 1


def test_wrong_codes_are_refused_and_counted(runner, patients):
    patient = patients.create(status="pending")
    issue(runner, patient.matricule)
    for attempt in (1, 2):
        with pytest.raises(activation_letter.ActivationCodeInvalid):
            activation_letter.check(patient.matricule, "AAAA-BBBB-CCCC")
        db.session.commit()
        assert letters_of(patient.account)[0].failed_attempts == attempt


def test_too_many_wrong_codes_void_the_letter(runner, patients):
    patient = patients.create(status="pending")
    code = issue(runner, patient.matricule)[0]["activation_code"]
    for _ in range(activation_letter.ACTIVATION_MAX_FAILURES):
        with pytest.raises(activation_letter.ActivationCodeInvalid):
            activation_letter.check(patient.matricule, "AAAA-BBBB-CCCC")
    db.session.commit()
    with pytest.raises(activation_letter.ActivationCodeInvalid):
        activation_letter.check(patient.matricule, code)


def test_an_expired_code_is_refused_as_expired(runner, patients):
    patient = patients.create(status="pending")
    code = issue(runner, patient.matricule)[0]["activation_code"]
    clock.advance(timedelta(days=90, seconds=1))
    with pytest.raises(activation_letter.ActivationCodeExpired):
        activation_letter.check(patient.matricule, code)


def test_unknown_matricule_and_wrong_code_look_the_same(runner, patients):
    with pytest.raises(activation_letter.ActivationCodeInvalid):
        activation_letter.check("1893120105732", "AAAA-BBBB-CCCC")
    with pytest.raises(activation_letter.ActivationCodeInvalid):
        activation_letter.check("not a matricule", "AAAA-BBBB-CCCC")


def test_no_letter_for_an_active_account_or_an_unknown_matricule(runner, patients):
    active = patients.create()
    result = runner.invoke(args=["letters", "issue", active.matricule, "1893120105732", "--json"])
    assert result.exit_code == 1
    assert "account already active" in result.output and "unknown matricule" in result.output
    assert letters_of(active.account) == []
