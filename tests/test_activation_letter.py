"""``idp letters issue``: activation codes, stored hashed, expiring, one valid letter at a time."""

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from idp import account as accounts, activation_letter, clock, matricule
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


def test_too_many_wrong_codes_lock_the_matricule_and_keep_the_letter(app, runner, patients):
    """Ten wrong codes lock the matricule's activation for a while; the letter stays the patient's
    (issue 13: a stranger who knows a matricule must not destroy its only credential)."""
    patient = patients.create(status="pending")
    code = issue(runner, patient.matricule)[0]["activation_code"]
    for _ in range(activation_letter.ACTIVATION_MAX_FAILURES - 1):
        with pytest.raises(activation_letter.ActivationCodeInvalid):
            activation_letter.check(patient.matricule, "AAAA-BBBB-CCCC")
    with pytest.raises(activation_letter.ActivationLocked) as locked:
        activation_letter.check(patient.matricule, "AAAA-BBBB-CCCC")
    assert abs(locked.value.until - clock.now() - timedelta(seconds=app.config["ACTIVATION_LOCKOUT_SECONDS"])) < timedelta(seconds=1)
    with pytest.raises(activation_letter.ActivationLocked):
        activation_letter.check(patient.matricule, code)
    db.session.commit()
    assert [letter.voided_at for letter in letters_of(patient.account)] == [None], "the letter is not voided"
    clock.advance(timedelta(seconds=app.config["ACTIVATION_LOCKOUT_SECONDS"]))
    assert activation_letter.check(patient.matricule, code)[0].id == patient.account.id


def test_each_further_lockout_lasts_twice_as_long(app, runner, patients):
    patient = patients.create(status="pending")
    issue(runner, patient.matricule)
    base = app.config["ACTIVATION_LOCKOUT_SECONDS"]
    for lockout in range(3):
        for _ in range(activation_letter.ACTIVATION_MAX_FAILURES - 1):
            with pytest.raises(activation_letter.ActivationCodeInvalid):
                activation_letter.check(patient.matricule, "AAAA-BBBB-CCCC")
        with pytest.raises(activation_letter.ActivationLocked) as locked:
            activation_letter.check(patient.matricule, "AAAA-BBBB-CCCC")
        assert abs(locked.value.until - clock.now() - timedelta(seconds=base * 2**lockout)) < timedelta(seconds=1)
        clock.advance(locked.value.until - clock.now())


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


def answers_to_wrong_codes(matricule: str) -> list[str]:
    answers = []
    for _ in range(activation_letter.ACTIVATION_MAX_FAILURES + 1):
        with pytest.raises(activation_letter.ActivationError) as refused:
            activation_letter.check(matricule, "AAAA-BBBB-CCCC")
        answers.append(type(refused.value).__name__)
    return answers


def test_unknown_pending_and_active_matricules_answer_wrong_codes_alike(runner, patients):
    """Until a right code is shown nothing tells the three apart, the lockout included (issue 13, medium 5)."""
    pending = patients.create(status="pending", mobile="+352621000201")
    issue(runner, pending.matricule)
    active = patients.create(mobile="+352621000202")
    unknown = matricule.with_check_digits("19700101" + "999")
    expected = ["ActivationCodeInvalid"] * (activation_letter.ACTIVATION_MAX_FAILURES - 1) + ["ActivationLocked"] * 2
    assert answers_to_wrong_codes(unknown) == expected
    assert answers_to_wrong_codes(pending.matricule) == expected
    assert answers_to_wrong_codes(active.matricule) == expected


def test_only_the_holder_of_its_code_learns_that_an_account_is_already_active(runner, patients):
    patient = patients.create(status="pending")
    code = issue(runner, patient.matricule)[0]["activation_code"]
    account, letter = activation_letter.check(patient.matricule, code)
    activation_letter.redeem(letter.id)
    accounts.activate(account)
    db.session.commit()
    with pytest.raises(activation_letter.ActivationCodeInvalid):
        activation_letter.check(patient.matricule, "AAAA-BBBB-CCCC")
    with pytest.raises(activation_letter.AccountAlreadyActive):
        activation_letter.check(patient.matricule, code)


def test_no_letter_for_an_active_account_or_an_unknown_matricule(runner, patients):
    active = patients.create()
    result = runner.invoke(args=["letters", "issue", active.matricule, "1893120105732", "--json"])
    assert result.exit_code == 1
    assert "account already active" in result.output and "unknown matricule" in result.output
    assert letters_of(active.account) == []
