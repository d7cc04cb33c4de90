"""Headless Chromium for the page tests, driven by Playwright's Python API through the
system's Chromium (never a browser Playwright downloads: the tests stay offline).

``scripts/test.sh`` installs Debian's ``chromium`` where it can (as root); where it
cannot, the browser tests fail with :data:`MISSING`'s message instead of skipping, so a
suite that did not test the pages never looks green.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM_ENV = "ROTOSCOPE_CHROMIUM"  # a Chromium binary other than the system's
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MISSING = (
    "headless Chromium is needed for the report page tests and was not found: install "
    "Debian's package (apt-get install -y chromium; scripts/test.sh does it when run as "
    f"root) or set {CHROMIUM_ENV} to a Chromium binary"
)


def chromium_path() -> str | None:
    """The Chromium to drive: ``$ROTOSCOPE_CHROMIUM``, else the first one on PATH."""
    wanted = os.environ.get(CHROMIUM_ENV)
    if wanted:
        return wanted if os.access(wanted, os.X_OK) else None
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium; the test fails (never skips) when there is none."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright's Python package is missing from the environment: " + MISSING)
    path = chromium_path()
    if path is None:
        pytest.fail(MISSING)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True)
        try:
            yield browser
        finally:
            browser.close()
