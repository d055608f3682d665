"""Open an HTML file in headless Chromium as a user's browser would, with no network: a full-page screenshot, the
console errors, and every URL the page asked for.

The browser is the system's Chromium (Debian: ``apt-get install chromium``; ``.ci/run`` installs it), driven by
playwright's Python package, which brings no browser of its own.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser")
LOCAL_SCHEMES = ("file:", "data:", "about:")


@dataclass
class Rendered:
    screenshot: Path
    console_errors: list[str] = field(default_factory=list)
    """Console messages of type error, uncaught page errors, and failed loads."""
    requests: list[str] = field(default_factory=list)
    """Every URL the page asked for (remote ones are refused: the page must not need them)."""
    text: str = ""
    """The page's visible text."""

    @property
    def remote_requests(self) -> list[str]:
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("Chromium is not installed: apt-get install -y chromium (.ci/run does this)")


def render(page_file: Path, screenshot: Path, width: int = 1000) -> Rendered:
    """Load ``page_file`` in headless Chromium with the network cut off; screenshot the whole page."""
    from playwright.sync_api import Route, sync_playwright

    rendered = Rendered(screenshot)

    def refuse_remote(route: Route) -> None:
        if route.request.url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.on("console", lambda m: rendered.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: rendered.console_errors.append(f"page error: {e}"))
            page.on("request", lambda r: rendered.requests.append(r.url))
            page.route("**/*", refuse_remote)
            page.goto(page_file.resolve().as_uri(), wait_until="load")
            page.screenshot(path=str(screenshot), full_page=True)
            rendered.text = page.inner_text("body")
        finally:
            browser.close()
    return rendered
