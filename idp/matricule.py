"""The Luxembourg national identification number (matricule).

13 digits (règlement grand-ducal du 28 novembre 2013): ``YYYYMMDD`` + a 3-digit sequence + a
Luhn check digit over digits 1–11 + a Verhoeff check digit over digits 1–11.
11 digits, legacy (règlement grand-ducal du 21 décembre 1987): ``YYYYMMDD`` + a 2-digit order
number + one check digit: weights 5,4,3,2,7,6,5,4,3,2 over digits 1–10, check = 11 − (sum mod 11).
An unknown month or day is written ``00``.
"""

import calendar
import re
from datetime import date

from . import clock

# Verhoeff's scheme (Verhoeff 1969; Gumm 1985): _VERHOEFF_D is the multiplication table of the
# dihedral group D5, _VERHOEFF_P[k] is the permutation (1 5 7 6 2 8 3 0 9 4) applied k times.
_VERHOEFF_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_VERHOEFF_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]
_VERHOEFF_INV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]
_LEGACY_WEIGHTS = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]


class InvalidMatricule(ValueError):
    """The text is not a valid matricule; ``reason`` says why, for import reports."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def luhn_check_digit(digits: str) -> int:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def verhoeff_check_digit(digits: str) -> int:
    check = 0
    for position, char in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[(position + 1) % 8][int(char)]]
    return _VERHOEFF_INV[check]


def legacy_check_digit(digits: str) -> int | None:
    """The 11-digit form's check digit, or None where no digit fits (remainder 1)."""
    remainder = sum(int(char) * weight for char, weight in zip(digits, _LEGACY_WEIGHTS)) % 11
    check = (11 - remainder) % 11
    return None if check == 10 else check


def normalize(text: str) -> str:
    """Drop the spaces, dots and dashes people type inside a matricule."""
    return re.sub(r"[\s.\-]", "", text or "")


def validate(text: str) -> str:
    """Return the normalized matricule or raise :class:`InvalidMatricule`."""
    value = normalize(text)
    if not value.isdigit() or not value.isascii():
        raise InvalidMatricule("not_digits")
    if len(value) == 13:
        _check_birth_date(value[:8])
        if int(value[11]) != luhn_check_digit(value[:11]):
            raise InvalidMatricule("luhn_check_failed")
        if int(value[12]) != verhoeff_check_digit(value[:11]):
            raise InvalidMatricule("verhoeff_check_failed")
        return value
    if len(value) == 11:
        _check_birth_date(value[:8])
        if legacy_check_digit(value[:10]) != int(value[10]):
            raise InvalidMatricule("check_digit_failed")
        return value
    raise InvalidMatricule("wrong_length")


def is_valid(text: str) -> bool:
    try:
        validate(text)
    except InvalidMatricule:
        return False
    return True


def _check_birth_date(yyyymmdd: str) -> None:
    """A real date, or one with ``00`` for an unknown month or day, and not after today."""
    year, month, day = int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8])
    today = clock.today()
    if year < 1850 or year > today.year:
        raise InvalidMatricule("bad_birth_year")
    if month > 12:
        raise InvalidMatricule("bad_birth_month")
    last_day = calendar.monthrange(year, month)[1] if month else 31
    if day > last_day:
        raise InvalidMatricule("bad_birth_day")
    if date(year, month or 1, day or 1) > today:
        raise InvalidMatricule("birth_date_in_future")


def mask(value: str) -> str:
    """A form safe for logs and audit: the birth year and the last two digits only."""
    value = normalize(value)
    if len(value) < 6:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 6) + value[-2:]


def with_check_digits(first_eleven: str) -> str:
    """Complete 11 digits (date + sequence) into a valid 13-digit matricule (seed data, tests)."""
    return first_eleven + str(luhn_check_digit(first_eleven)) + str(verhoeff_check_digit(first_eleven))
