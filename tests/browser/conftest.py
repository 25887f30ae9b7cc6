"""A real browser for the report page: Debian's Chromium driven by Playwright for Python.

Only the Python package comes from the package index; the browser is the
system's (`apt-get install chromium`), never a Playwright download.  Without
either the tests are skipped with the reason.  Screenshots go to
$TRACELOG_SCREENSHOTS, or a new temporary folder; its path is printed at the end.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

CHROMIUM = Path(os.environ.get("TRACELOG_CHROMIUM", "/usr/bin/chromium"))
_SCREENSHOT_FOLDERS: list[Path] = []
# the buttons' own clicks, as a keyboard user's Enter: scrolling to one may already draw more
_SHOW_MORE = """() => {
    const opener = document.querySelector(".expand button");
    if (opener) { opener.click(); return true; }
    if (document.getElementById("more").hidden) { return false; }
    document.getElementById("more-button").click();
    return true;
}"""


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install playwright; the browser is the system's chromium)"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set TRACELOG_CHROMIUM)"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Chromium's sandbox refuses to run as root (CI runs as root)
    arguments = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=arguments)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The folder screenshots are written to, printed at the end of the run."""
    chosen = os.environ.get("TRACELOG_SCREENSHOTS")
    folder = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="tracelog-report-screenshots-"))
    folder.mkdir(parents=True, exist_ok=True)
    _SCREENSHOT_FOLDERS.append(folder)
    return folder


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for folder in _SCREENSHOT_FOLDERS:
        terminalreporter.write_line(f"report page screenshots: {folder}")


@dataclass
class OpenedPage:
    """A report page open in the browser, with every request it made and every error it logged."""

    page: Page
    url: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def show_all(self) -> None:
        """Draw every packet, as scrolling to the end and opening every long flow would."""
        while self.page.evaluate(_SHOW_MORE):
            pass

    def assert_self_contained(self) -> None:
        """Nothing was asked of the network or the disk but the page itself (and `data:` URLs), and nothing failed."""
        assert [url for url in self.requests if url != self.url and not url.startswith("data:")] == []
        assert self.errors == []


OpenPage = Callable[..., OpenedPage]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """Open a page file; any request for something other than a file or data URL is refused and recorded."""
    contexts = []

    def refuse_the_network(route: Route) -> None:
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            route.abort()

    def open_one(path: Path, fragment: str = "", *, report: bool = True, width: int = 1400) -> OpenedPage:
        context = browser.new_context(viewport={"width": width, "height": 1000})
        contexts.append(context)
        context.route("**/*", refuse_the_network)
        page = context.new_page()
        opened = OpenedPage(page, path.as_uri())
        page.on("request", lambda request: opened.requests.append(request.url))
        page.on("console", lambda message: opened.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: opened.errors.append(str(error)))
        page.goto(opened.url + fragment)
        if report:  # the page's script has drawn the first packets
            page.wait_for_selector("html[data-ready]", state="attached")
        return opened

    yield open_one
    for context in contexts:
        context.close()
