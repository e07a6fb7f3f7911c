"""Pytest plugin for browser tests: Debian's Chromium driven by Playwright, and a live server.

Load it from the top-level conftest with ``pytest_plugins = ["tests.support.browser"]``.

Fixtures
    chromium_browser  session-scoped Playwright ``Browser`` on /usr/bin/chromium (headless).
                      Fails the test (never skips) when Chromium is missing or won't start.
    browser_locale    the context locale, "fr-FR" by default; override it per test with
                      ``@pytest.mark.parametrize("browser_locale", ["de-DE"])`` or a fixture.
    browser_timezone  the context time zone, "Europe/Luxembourg" by default.
    page              function-scoped ``Page`` in a fresh context (own cookies/storage);
                      on a failing test a screenshot lands in test-artifacts/screenshots/failures/.

Helpers
    screenshot(page, name)  writes test-artifacts/screenshots/NAME.png and returns the path.
    LiveServer(app)         serves any WSGI app on http://127.0.0.1:<free port> in a daemon
                            thread; ``.url``, ``.stop()``, usable as a context manager.

Playwright's own browser downloads are never used (no ``playwright install``).

(PYTEST_DONT_REWRITE: no asserts here; lets test modules import helpers before the plugin loads.)
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

CHROMIUM_PATH = os.environ.get("IDP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DEFAULT_TIMEOUT_MS = 15_000

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = Path(os.environ.get("IDP_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
SCREENSHOT_DIR = ARTIFACTS_DIR / "screenshots"

_call_failed_key = pytest.StashKey[bool]()


# --------------------------------------------------------------------------- live server


class _QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request access log (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class LiveServer:
    """Serve a WSGI app on 127.0.0.1 (a free port) from a daemon thread.

    >>> server = LiveServer(app)
    >>> page.goto(server.url + "/login")
    >>> server.stop()
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._server = make_server(
            host, port, app, threaded=True, request_handler=_QuietRequestHandler
        )
        self.host = host
        self.port: int = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._stopped = False
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"LiveServer:{self.port}",
            daemon=True,
        )
        self._thread.start()

    def url_for(self, path: str = "/") -> str:
        """Absolute URL for a path on this server."""
        return self.url + (path if path.startswith("/") else "/" + path)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> "LiveServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<LiveServer {self.url}{' stopped' if self._stopped else ''}>"


# --------------------------------------------------------------------------- screenshots


def _safe_name(name: str) -> Path:
    parts = [re.sub(r"[^A-Za-z0-9._-]+", "_", p).strip("._") for p in re.split(r"[/\\]+", name)]
    parts = [p for p in parts if p]
    return Path(*parts) if parts else Path("screenshot")


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of ``page`` as test-artifacts/screenshots/NAME.png; return its path.

    ``name`` may contain "/" to group screenshots in sub-folders; other odd characters
    are replaced by "_".
    """
    safe = _safe_name(name)
    filename = safe.name if safe.name.lower().endswith(".png") else safe.name + ".png"
    path = SCREENSHOT_DIR / safe.parent / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    return path


DOCS_SCREENSHOT_DIR = REPO_ROOT / "docs" / "screenshots"


def publish_to_docs(path: Path, name: str) -> None:
    """Copy a test screenshot to docs/screenshots/NAME.png, only when asked (``make screenshots``).

    A test run must not rewrite tracked files: PNGs differ byte for byte from run to run.
    """
    if os.environ.get("IDP_PUBLISH_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOT_DIR / f"{name}.png")


# --------------------------------------------------------------------------- fixtures


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if report.when == "call":
        item.stash[_call_failed_key] = report.failed
    return report


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    """Headless Debian Chromium through Playwright, shared by the whole session."""
    if not (os.path.isfile(CHROMIUM_PATH) and os.access(CHROMIUM_PATH, os.X_OK)):
        pytest.fail(
            f"Chromium not found at {CHROMIUM_PATH}: browser tests need Debian's chromium "
            "package (run `make system-deps`). Playwright's own browsers are not used.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH,
            headless=True,
            args=CHROMIUM_ARGS,
            timeout=60_000,
        )
    except Exception as exc:  # noqa: BLE001 - report whatever went wrong, loudly
        playwright.stop()
        pytest.fail(f"could not launch {CHROMIUM_PATH} with Playwright: {exc}", pytrace=False)
    try:
        yield browser
    finally:
        try:
            browser.close()
        finally:
            playwright.stop()


@pytest.fixture
def browser_locale() -> str:
    return "fr-FR"


@pytest.fixture
def browser_timezone() -> str:
    return "Europe/Luxembourg"


@pytest.fixture
def page(
    request: pytest.FixtureRequest,
    chromium_browser: Any,
    browser_locale: str,
    browser_timezone: str,
) -> Iterator[Any]:
    """A page in a fresh browser context (locale ``browser_locale``), closed afterwards."""
    context = chromium_browser.new_context(locale=browser_locale, timezone_id=browser_timezone)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        try:
            if request.node.stash.get(_call_failed_key, False) and not page.is_closed():
                screenshot(page, "failures/" + request.node.nodeid.replace("/", ".").replace("::", "__"))
        except Exception:  # noqa: BLE001 - a failed debug screenshot must not mask the test
            pass
        context.close()
