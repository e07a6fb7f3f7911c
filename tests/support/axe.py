"""axe-core accessibility checks for Playwright pages.

axe-core is installed from npm by ``scripts/install-axe.sh`` (``make test-tools``) into the
gitignored ``.test-tools/`` folder. Without it the check fails loudly; it never skips.

The pages send ``Content-Security-Policy: script-src 'self'``: inject axe into a page whose
browser context was created with ``bypass_csp=True`` (see the ``a11y_page`` fixture of
tests/browser/test_accessibility.py).

(PYTEST_DONT_REWRITE: no asserts here.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
AXE_PATH = REPO_ROOT / ".test-tools" / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page: Any, impacts: Iterable[str] = ("serious", "critical"), *, options: dict | None = None) -> list[dict]:
    """Run axe-core on ``page``; return its violations whose impact is in ``impacts``."""
    if not AXE_PATH.is_file():
        pytest.fail(
            f"axe-core not found at {AXE_PATH}: run `bash scripts/install-axe.sh` (or `make test-tools`).",
            pytrace=False,
        )
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_PATH))
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        pytest.fail("axe-core could not be injected into the page (Content-Security-Policy not bypassed?)", pytrace=False)
    result = page.evaluate("options => window.axe.run(document, options)", options or {})
    wanted = set(impacts)
    return [violation for violation in result["violations"] if violation.get("impact") in wanted]


def format_violations(violations: list[dict]) -> str:
    """A readable summary for assertion messages: rule, impact, help and the offending nodes."""
    lines = []
    for violation in violations:
        lines.append(f"[{violation['impact']}] {violation['id']}: {violation['help']} ({violation['helpUrl']})")
        for node in violation["nodes"]:
            lines.append(f"    {', '.join(map(str, node['target']))}: {node.get('failureSummary', '').replace(chr(10), ' ')}")
    return "\n".join(lines)
