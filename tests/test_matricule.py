"""The matricule rules: 13 digits (Luhn + Verhoeff, 2013) and the legacy 11-digit form (1987)."""

from datetime import date, timedelta

import pytest
from hypothesis import given, strategies as st

from idp import matricule

OFFICIAL_EXAMPLE = "1893120105732"  # OECD TIN sheet for Luxembourg
LEGACY_WEIGHTS = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]


def legacy_remainder(first_ten: str) -> int:
    return sum(int(digit) * weight for digit, weight in zip(first_ten, LEGACY_WEIGHTS)) % 11


def legacy(first_ten: str) -> str:
    """Complete 10 digits by the 1987 rule, written out here independently of the code under test."""
    remainder = legacy_remainder(first_ten)
    assert remainder not in (0, 1), "pick a prefix whose check digit is a single digit"
    return first_ten + str(11 - remainder)


# --- Verhoeff, built here from its definition (Verhoeff 1969), not from the module's tables -------

VERHOEFF_ROW_ONE = [1, 5, 7, 6, 2, 8, 3, 0, 9, 4]  # the permutation p; row k of the table is p applied k times


def verhoeff_permutations() -> list[list[int]]:
    rows = [list(range(10))]
    for _ in range(7):
        rows.append([VERHOEFF_ROW_ONE[digit] for digit in rows[-1]])
    return rows


def dihedral_product(j: int, k: int) -> int:
    """Multiplication in D5: 0-4 are the rotations r^i, 5-9 the reflections s·r^i."""
    if j < 5 and k < 5:
        return (j + k) % 5
    if j < 5:
        return 5 + (j + k) % 5
    if k < 5:
        return 5 + (j - k) % 5
    return (j - k) % 5


def dihedral_inverse(j: int) -> int:
    return next(k for k in range(10) if dihedral_product(j, k) == 0)


def independent_verhoeff(digits: str) -> int:
    permutations = verhoeff_permutations()
    check = 0
    for position, char in enumerate(reversed(digits)):
        check = dihedral_product(check, permutations[(position + 1) % 8][int(char)])
    return dihedral_inverse(check)


def independent_luhn(digits: str) -> int:
    doubled = [int(char) * (2 if position % 2 == 0 else 1) for position, char in enumerate(reversed(digits))]
    return -sum(value - 9 if value > 9 else value for value in doubled) % 10


def independent_matricule(first_eleven: str) -> str:
    return first_eleven + str(independent_luhn(first_eleven)) + str(independent_verhoeff(first_eleven))


def test_the_permutation_rows_derived_from_row_one_are_the_published_ones():
    """Rows 4 and 5 were once mistyped in the module; the derivation must give the published rows."""
    rows = verhoeff_permutations()
    assert rows[4] == [9, 4, 5, 3, 1, 2, 6, 8, 7, 0]
    assert rows[5] == [4, 2, 8, 6, 5, 7, 3, 9, 0, 1]
    assert [rows[7][digit] for digit in VERHOEFF_ROW_ONE] == list(range(10))  # p has order 8


@pytest.mark.parametrize("digits, check", [("236", 3), ("12345", 1), ("142857", 0)])
def test_verhoeff_check_digit_of_the_published_examples(digits, check):
    assert independent_verhoeff(digits) == check
    assert matricule.verhoeff_check_digit(digits) == check


def test_verhoeff_check_digit_agrees_with_the_definition_for_every_position_and_digit():
    """Every digit at each of the 11 positions: every row of the permutation table is exercised."""
    for position in range(11):
        for digit in "0123456789":
            digits = "0" * position + digit + "0" * (10 - position)
            assert matricule.verhoeff_check_digit(digits) == independent_verhoeff(digits), digits


def test_matricules_built_independently_over_many_birth_dates_and_sequences_are_all_valid():
    """Each day of 1980-2019 with a handful of sequences: about 30 % failed with the mistyped rows."""
    day, refused = date(1980, 1, 1), []
    while day < date(2020, 1, 1):
        for sequence in ("001", "123", "457", "998"):
            value = independent_matricule(day.strftime("%Y%m%d") + sequence)
            if not matricule.is_valid(value):
                refused.append(value)
        day += timedelta(days=1)
    assert refused == []


def test_the_guide_example_of_a_parent_number_is_valid():
    assert matricule.is_valid("1918090138700")  # « Numéro assuré » in the guide, p. 20


def test_a_matricule_the_mistyped_table_refused_is_valid():
    # Born on 17 April 1985: the day's second digit (7) meets row 4 of the table, where it was wrong.
    value = independent_matricule("19850417001")
    assert value == "1985041700125"
    assert matricule.validate(value) == value


def test_official_example_is_valid():
    assert matricule.validate(OFFICIAL_EXAMPLE) == OFFICIAL_EXAMPLE
    assert matricule.is_valid(OFFICIAL_EXAMPLE)


def test_spaces_dots_and_dashes_typed_inside_are_ignored():
    assert matricule.validate("1893 1201 057-32") == OFFICIAL_EXAMPLE
    assert matricule.validate(" 1893.12.01.057.32 ") == OFFICIAL_EXAMPLE


@pytest.mark.parametrize("value, reason", [
    ("1893120105742", "luhn_check_failed"),       # Luhn digit wrong, Verhoeff digit right
    ("1893120105733", "verhoeff_check_failed"),   # Luhn digit right, Verhoeff digit wrong
    ("1893120105832", "luhn_check_failed"),       # one payload digit changed
    ("1893120150732", "luhn_check_failed"),       # two adjacent payload digits swapped
])
def test_thirteen_digits_with_a_wrong_check_digit_are_rejected(value, reason):
    with pytest.raises(matricule.InvalidMatricule) as error:
        matricule.validate(value)
    assert error.value.reason == reason


@pytest.mark.parametrize("value, reason", [
    ("", "not_digits"),
    ("18931201057a2", "not_digits"),
    ("１８９３１２０１０５７３２", "not_digits"),  # full-width digits are not ASCII
    ("189312010573", "wrong_length"),
    ("18931201057321", "wrong_length"),
])
def test_other_shapes_are_rejected(value, reason):
    with pytest.raises(matricule.InvalidMatricule) as error:
        matricule.validate(value)
    assert error.value.reason == reason


@pytest.mark.parametrize("first_ten", ["1985041201", "1960123104", "1975000012", "2001070315"])
def test_legacy_eleven_digits_with_the_1987_check_digit_are_valid(first_ten):
    value = legacy(first_ten)
    assert matricule.validate(value) == value


def test_legacy_eleven_digits_with_any_other_check_digit_are_rejected():
    value = legacy("1985041201")
    for wrong in set("0123456789") - {value[-1]}:
        with pytest.raises(matricule.InvalidMatricule) as error:
            matricule.validate(value[:-1] + wrong)
        assert error.value.reason == "check_digit_failed"


def test_legacy_prefix_whose_check_would_be_ten_has_no_valid_completion():
    first_ten = next(f"198504120{n}" for n in range(10) if legacy_remainder(f"198504120{n}") == 1)
    assert not any(matricule.is_valid(first_ten + digit) for digit in "0123456789")


@pytest.mark.parametrize("date_part", ["19850000", "19850400", "19850012", "20000229"])
def test_unknown_month_or_day_written_00_and_real_dates_are_accepted(date_part):
    assert matricule.is_valid(matricule.with_check_digits(date_part + "123"))


@pytest.mark.parametrize("date_part, reason", [
    ("19851301", "bad_birth_month"),
    ("19859901", "bad_birth_month"),
    ("19850230", "bad_birth_day"),
    ("19850431", "bad_birth_day"),
    ("19010229", "bad_birth_day"),   # 1901 is not a leap year
    ("19000229", "bad_birth_day"),   # nor is 1900
    ("19850132", "bad_birth_day"),
    ("19850032", "bad_birth_day"),   # month unknown, but no month has 32 days
    ("17990101", "bad_birth_year"),
])
def test_impossible_birth_dates_are_rejected(date_part, reason):
    for value in (matricule.with_check_digits(date_part + "123"),):
        with pytest.raises(matricule.InvalidMatricule) as error:
            matricule.validate(value)
        assert error.value.reason == reason


def test_legacy_form_with_an_impossible_date_is_rejected():
    with pytest.raises(matricule.InvalidMatricule) as error:
        matricule.validate(legacy("1985023101"))
    assert error.value.reason == "bad_birth_day"


def test_birth_dates_in_the_future_are_rejected():
    tomorrow = date.today() + timedelta(days=1)
    with pytest.raises(matricule.InvalidMatricule) as error:
        matricule.validate(matricule.with_check_digits(tomorrow.strftime("%Y%m%d") + "001"))
    assert error.value.reason == "birth_date_in_future"
    next_year = date.today().year + 1
    assert not matricule.is_valid(matricule.with_check_digits(f"{next_year}0000001"))


def test_mask_keeps_only_the_birth_year_and_the_last_two_digits():
    assert matricule.mask(OFFICIAL_EXAMPLE) == "1893*******32"


# --- properties ------------------------------------------------------------------------------

known_dates = st.dates(min_value=date(1850, 1, 1), max_value=date.today()).map(lambda day: day.strftime("%Y%m%d"))
unknown_parts = st.tuples(st.integers(1850, date.today().year - 1), st.integers(0, 12)).map(
    lambda year_month: f"{year_month[0]:04d}{year_month[1]:02d}00"
)
date_parts = st.one_of(known_dates, unknown_parts)
prefixes = st.tuples(date_parts, st.integers(0, 999)).map(lambda parts: f"{parts[0]}{parts[1]:03d}")


@given(prefixes)
def test_any_valid_prefix_completed_with_its_check_digits_is_valid(prefix):
    value = matricule.with_check_digits(prefix)
    assert value == independent_matricule(prefix)
    assert matricule.validate(value) == value


@given(prefixes, st.integers(0, 12), st.integers(1, 9))
def test_any_single_digit_change_of_a_valid_matricule_is_rejected(prefix, position, shift):
    value = matricule.with_check_digits(prefix)
    changed = value[:position] + str((int(value[position]) + shift) % 10) + value[position + 1:]
    assert changed != value
    assert not matricule.is_valid(changed)
