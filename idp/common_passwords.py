"""The bundled list of common passwords (NIST SP 800-63B §5.1.1.2: refuse known-bad secrets).

``idp/data/common_passwords.txt``: the 30,000 most frequent passwords of the zxcvbn 4.5.0
list (MIT licence), plus French, German and Luxembourg favourites.
"""

from functools import lru_cache
from pathlib import Path

LIST_PATH = Path(__file__).parent / "data" / "common_passwords.txt"


@lru_cache(maxsize=1)
def _passwords() -> frozenset[str]:
    lines = LIST_PATH.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line and not line.startswith("#"))


def is_common(password: str) -> bool:
    return password.strip().lower() in _passwords()


def count() -> int:
    return len(_passwords())
