"""docs/security.md stays true: the tests it cites exist, every table row is backed, its figures are the defaults.

A renamed or deleted test, a row that claims a control without showing it, or a changed default
that the document still quotes breaks the build here rather than going stale unnoticed.
"""

import ast
import re
import runpy
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "security.md"
# ``tests/x/test_y.py::test_name``, optionally ``::TestClass::test_name`` and a ``[parameter]`` id.
TEST_REFERENCE = re.compile(r"(tests/[\w/]+\.py)::((?:[A-Za-z_]\w*::)?[A-Za-z_]\w*)(?:\[[^\]]*\])?")
MODULE_REFERENCE = re.compile(r"(?<![\w/])((?:idp|config|rp_demo)/[\w/]+\.py)\b")
# A setting quoted as ```NAME = value``` in the prose.
QUOTED_SETTING = re.compile(r"`([A-Z][A-Z0-9_]+) = (\"[^\"`]*\"|\d+)`")
SEPARATOR_ROW = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")


def _text() -> str:
    return DOCUMENT.read_text(encoding="utf-8")


@cache
def _tests_defined_in(path: Path) -> frozenset[str]:
    """``name`` of every test function and ``Class::name`` of every test method in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(f"{node.name}::{item.name}" for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return frozenset(name for name in names if name.split("::")[-1].startswith("test"))


def _table_rows() -> list[tuple[int, str]]:
    """Body rows of every Markdown table: a header row (followed by its separator) is not a row."""
    lines = _text().splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith("|") or SEPARATOR_ROW.match(line):
            continue
        is_header = number < len(lines) and SEPARATOR_ROW.match(lines[number])
        if not is_header:
            rows.append((number, line))
    return rows


def test_every_cited_test_exists():
    references = TEST_REFERENCE.findall(_text())
    missing = []
    for path, name in sorted(set(references)):
        file = ROOT / path
        if not file.is_file():
            missing.append(f"{path} (no such file)")
        elif name not in _tests_defined_in(file):
            missing.append(f"{path}::{name}")
    assert not missing, "docs/security.md cites tests that do not exist:\n" + "\n".join(missing)


def test_the_document_cites_enough_tests_to_be_a_mapping():
    """Guards the parser itself: a broken pattern must not make the check above pass vacuously."""
    assert len(set(TEST_REFERENCE.findall(_text()))) >= 150


def test_every_cited_module_exists():
    missing = sorted({path for path in MODULE_REFERENCE.findall(_text()) if not (ROOT / path).is_file()})
    assert not missing, f"docs/security.md names modules that do not exist: {missing}"


def test_every_table_row_has_a_test_or_says_why_not():
    unbacked = [
        f"line {number}: {line[:100]}"
        for number, line in _table_rows()
        if not TEST_REFERENCE.search(line) and "n/a:" not in line and "gap:" not in line
    ]
    assert not unbacked, "table rows without a test, 'n/a:' or 'gap:':\n" + "\n".join(unbacked)


def test_the_documented_settings_are_the_defaults():
    """The figures of §1.5–1.6 (ASVS 6.1.1, 7.1.1) are those ``config/default.py`` ships."""
    defaults = runpy.run_path(str(ROOT / "config" / "default.py"))
    quoted = QUOTED_SETTING.findall(_text())
    assert len(quoted) >= 10
    wrong = []
    for name, value in quoted:
        expected = value[1:-1] if value.startswith('"') else int(value)
        if defaults.get(name) != expected:
            wrong.append(f"{name}: the document says {value}, config/default.py has {defaults.get(name)!r}")
    assert not wrong, "\n".join(wrong)


def test_the_documentation_requirements_have_their_sections():
    """ASVS 6.1.1–6.1.3 and 7.1.1–7.1.3 ask for documentation: these sections are it."""
    headings = {line.lstrip("#").strip() for line in _text().splitlines() if line.startswith("#")}
    for required in (
        "1.4 Main flows and authentication pathways",
        "1.5 Defences against guessing and malicious lockout (ASVS 6.1.1, 6.1.2)",
        "1.6 Sessions (ASVS 7.1.1–7.1.3)",
        "4. Gaps found",
    ):
        assert required in headings, required
    text = _text()
    for topic in ("Concurrent sessions", "Context-specific words", "backoff, not a hard lock", "back-channel logout"):
        assert topic in text, topic


# ``idp/x.py` `name``: a module followed by something it defines.
NAMED_DEFINITION = re.compile(r"`((?:idp|config|rp_demo)/[\w/]+\.py)` `([A-Za-z_]\w*)`")


def _names_defined_in(path: Path) -> frozenset[str]:
    """Functions, classes, methods and assigned names anywhere in ``path``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return frozenset(names)


def test_every_named_function_is_in_the_module_named():
    """Issue 16 moved ``safe_next`` and ``acr_rank``; the document kept their old modules."""
    references = NAMED_DEFINITION.findall(_text())
    assert references
    misplaced = [f"{path} `{name}`" for path, name in sorted(set(references))
                 if not (ROOT / path).is_file() or name not in _names_defined_in(ROOT / path)]
    assert misplaced == []
