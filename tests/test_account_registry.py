"""``idp patients import``: the insured-person registry, all rows or none, idempotent."""

import json

from sqlalchemy import func, select, update

from idp import account as accounts, audit, matricule
from idp.extensions import db

HEADER = "matricule,family_name,given_name,birth_date,email,mobile,address"
ANNA = "1893120105732,Muller,Anna,1893-12-01,anna@example.lu,+352 621 000 222,\"1, rue de la Gare, Luxembourg\""
PAUL = matricule.with_check_digits("19850412" + "007") + ",Weber,Paul,1985-04-12,,00352621000333,"


def write(tmp_path, *lines: str, name: str = "registry.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def run_import(runner, path: str):
    result = runner.invoke(args=["patients", "import", path, "--json"])
    return result, json.loads(result.output)


def account_count() -> int:
    return db.session.scalar(select(func.count()).select_from(accounts.Account))


def test_import_creates_pending_accounts_with_registry_fields(runner, tmp_path):
    result, report = run_import(runner, write(tmp_path, HEADER, ANNA, PAUL))
    assert result.exit_code == 0, result.output
    assert report == {"imported": True, "created": 2, "updated": 0, "unchanged": 0}
    anna = accounts.find_by_matricule("1893120105732")
    assert (anna.family_name, anna.given_name, anna.birth_date.isoformat()) == ("Muller", "Anna", "1893-12-01")
    assert anna.email == "anna@example.lu" and anna.mobile == "+352621000222"
    assert anna.address == "1, rue de la Gare, Luxembourg"
    assert anna.status == "pending" and not anna.is_active
    assert anna.subject and anna.subject != anna.matricule, "sub is opaque, never the matricule"
    paul = accounts.find_by_matricule(PAUL.split(",")[0])
    assert paul.email is None and paul.mobile == "+352621000333"


def test_reimporting_the_same_file_changes_nothing(runner, tmp_path):
    path = write(tmp_path, HEADER, ANNA, PAUL)
    run_import(runner, path)
    anna = accounts.find_by_matricule("1893120105732")
    subject, updated_at = anna.subject, anna.updated_at
    result, report = run_import(runner, path)
    assert result.exit_code == 0
    assert report == {"imported": True, "created": 0, "updated": 0, "unchanged": 2}
    assert account_count() == 2
    db.session.expire_all()
    anna = accounts.find_by_matricule("1893120105732")
    assert (anna.subject, anna.updated_at) == (subject, updated_at)


def test_a_changed_row_updates_the_account_and_keeps_its_state(runner, tmp_path, patients):
    patient = patients.create(email=None, mobile="+352621000111")
    row = f"{patient.matricule},Schmit-Weber,Marie,1985-04-12,marie@example.lu,+352621000999,2 rue Neuve"
    result, report = run_import(runner, write(tmp_path, HEADER, row))
    assert report["updated"] == 1, result.output
    db.session.expire_all()
    account = accounts.find_by_matricule(patient.matricule)
    assert account.family_name == "Schmit-Weber" and account.address == "2 rue Neuve"
    assert account.email == "marie@example.lu" and account.mobile == "+352621000999"
    assert account.status == "active" and account.subject == patient.account.subject


def test_contact_details_confirmed_by_the_patient_win_over_the_registry(runner, tmp_path, patients):
    patient = patients.create(email="mine@example.lu", mobile="+352621000111")
    patient.account.mobile_verified = True
    db.session.commit()
    row = f"{patient.matricule},Schmit,Marie,1985-04-12,registry@example.lu,+352621000999,"
    run_import(runner, write(tmp_path, HEADER, row))
    db.session.expire_all()
    account = accounts.find_by_matricule(patient.matricule)
    assert account.mobile == "+352621000111", "a confirmed mobile is where the codes go"
    assert account.email == "registry@example.lu", "an unconfirmed e-mail follows the registry"


def test_optional_columns_may_be_left_out(runner, tmp_path):
    result, report = run_import(runner, write(tmp_path, "matricule,family_name,given_name,birth_date", "1893120105732,Muller,Anna,1893-12-01"))
    assert result.exit_code == 0 and report["created"] == 1
    anna = accounts.find_by_matricule("1893120105732")
    assert anna.email is None and anna.mobile is None and anna.address is None


def test_optional_columns_left_out_keep_known_values(runner, tmp_path):
    run_import(runner, write(tmp_path, HEADER, ANNA))
    result, report = run_import(runner, write(tmp_path, "matricule,given_name,family_name,birth_date,mobile", "1893120105732,Anna,Muller,1893-12-01,+352621000222", name="b.csv"))
    assert report == {"imported": True, "created": 0, "updated": 0, "unchanged": 1}, result.output
    assert accounts.find_by_matricule("1893120105732").email == "anna@example.lu"


def test_bad_rows_are_reported_by_line_and_nothing_is_imported(runner, tmp_path):
    good = matricule.with_check_digits("19900101" + "001") + ",Good,Row,1990-01-01,,,"
    path = write(
        tmp_path,
        HEADER,
        good,                                                   # line 2
        "1893120105733,Muller,Anna,1893-12-01,,,",              # line 3: Verhoeff digit wrong
        matricule.with_check_digits("19900101002") + ",,Anna,1990-01-01,,,",      # line 4
        matricule.with_check_digits("19900101003") + ",Muller,Anna,1990-13-01,,,",  # line 5
        matricule.with_check_digits("19900101004") + ",Muller,Anna,1990-01-02,,,",  # line 6
        matricule.with_check_digits("19900101005") + ",Muller,Anna,1990-01-01,not-an-email,,",  # line 7
        matricule.with_check_digits("19900101006") + ",Muller,Anna,1990-01-01,,12,",  # line 8
        good,                                                   # line 9
        matricule.with_check_digits("19900101007") + ",Muller,Anna,1990-01-01,,,,extra",  # line 10
    )
    result, report = run_import(runner, path)
    assert result.exit_code == 1
    assert report == {"imported": False, "problems": [
        {"line": 3, "reason": "invalid_matricule:verhoeff_check_failed"},
        {"line": 4, "reason": "missing_name"},
        {"line": 5, "reason": "invalid_birth_date"},
        {"line": 6, "reason": "birth_date_does_not_match_matricule"},
        {"line": 7, "reason": "invalid_email"},
        {"line": 8, "reason": "invalid_mobile"},
        {"line": 9, "reason": "duplicate_matricule"},
        {"line": 10, "reason": "too_many_fields"},
    ]}
    assert account_count() == 0, "all or nothing: the good row is not imported either"
    assert not db.session.scalars(select(audit.AuditEvent).where(audit.AuditEvent.name == audit.Event.PATIENTS_IMPORTED.value)).all()


def test_text_report_names_the_line_and_the_reason(runner, tmp_path):
    result = runner.invoke(args=["patients", "import", write(tmp_path, HEADER, ANNA, "1893120105742,X,Y,1893-12-01,,,")])
    assert result.exit_code == 1
    assert "line 3: invalid_matricule:luhn_check_failed" in result.output


def test_unknown_month_or_day_in_the_matricule_matches_any_birth_date(runner, tmp_path):
    value = matricule.with_check_digits("19850000" + "042")
    result, report = run_import(runner, write(tmp_path, HEADER, f"{value},Muller,Anna,1985-07-14,,,"))
    assert report["created"] == 1, result.output


def test_a_wrong_header_is_refused(runner, tmp_path):
    result, report = run_import(runner, write(tmp_path, "matricule,name,birth_date", "1893120105732,Anna Muller,1893-12-01"))
    assert result.exit_code == 1
    assert report["problems"] == [{"line": 1, "reason": "missing_columns:family_name,given_name"}]
    result, report = run_import(runner, write(tmp_path, HEADER + ",nationality", ANNA + ",LU", name="b.csv"))
    assert report["problems"] == [{"line": 1, "reason": "unknown_columns:nationality"}]
    assert account_count() == 0


def test_a_file_that_is_not_utf8_is_refused_with_the_line(runner, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "\n" + ANNA + "\n1893120105732,Müller,Anna,1893-12-01,,,\n").encode("latin-1"))
    result, report = run_import(runner, str(path))
    assert result.exit_code == 1
    assert report["problems"] == [{"line": 3, "reason": "not_utf8"}]


def test_a_byte_order_mark_and_spaces_in_the_header_are_accepted(runner, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + HEADER.replace(",", ", ") + "\r\n" + ANNA + "\r\n").encode("utf-8"))
    result, report = run_import(runner, str(path))
    assert report["created"] == 1, result.output


def test_check_matricules_lists_stored_numbers_only_the_mistyped_verhoeff_table_accepted(runner, tmp_path):
    born_17_april = matricule.with_check_digits("19850417" + "001") + ",Alt,Stored,1985-04-17,,,"
    run_import(runner, write(tmp_path, HEADER, ANNA, born_17_april))
    # Stored before the table was fixed: the same number with the Verhoeff digit the mistyped rows gave.
    db.session.execute(update(accounts.Account).where(accounts.Account.family_name == "Alt").values(matricule="1985041700127"))
    db.session.commit()
    result = runner.invoke(args=["patients", "check-matricules", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output) == {"checked": 2, "refused": [{"matricule": "1985041700127", "reason": "verhoeff_check_failed"}]}


def test_check_matricules_passes_when_every_stored_number_is_valid(runner, tmp_path):
    run_import(runner, write(tmp_path, HEADER, ANNA, PAUL))
    result = runner.invoke(args=["patients", "check-matricules"])
    assert result.exit_code == 0, result.output
    assert "checked 2, refused 0" in result.output
