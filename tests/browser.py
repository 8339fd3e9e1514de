"""Headless Chromium (Debian's `chromium` package) driven by Playwright, for tests of pages.

Never `playwright install`: it downloads a browser build, which fails without internet. The
machine's Chromium is launched by path instead; without it (or without the playwright package)
the tests that need it skip, saying how to enable them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
HAVE_BROWSER = os.path.exists(CHROMIUM) and importlib.util.find_spec("playwright") is not None
needs_browser = pytest.mark.skipif(
    not HAVE_BROWSER,
    reason="needs Chromium and Playwright: `apt-get install chromium` (Debian) and "
    "`pip install -e '.[dev]'`; set CHROMIUM_PATH for a browser elsewhere (.ci/run installs it)",
)
# As the machine's own probe starts it: without the background-networking flags Chromium
# reaches for Google's hosts at every start.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
]


@dataclass
class PageLog:
    """What a page did: every request URL, and every console error or uncaught exception
    (a CSP violation is a console error)."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def requests_leaving(self, base: str) -> list[str]:
        return [
            url
            for url in self.requests
            if not url.startswith((base + "/", "data:", "blob:")) and url != base
        ]


@contextmanager
def browser_page(width: int = 1280, height: int = 900) -> Iterator[tuple[Any, PageLog]]:
    from playwright.sync_api import sync_playwright

    log = PageLog()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("request", lambda request: log.requests.append(request.url))
            page.on(
                "console",
                lambda message: (
                    log.errors.append(message.text) if message.type == "error" else None
                ),
            )
            page.on("pageerror", lambda error: log.errors.append(str(error)))
            yield page, log
        finally:
            browser.close()
