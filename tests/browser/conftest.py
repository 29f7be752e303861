"""Shared browser fixture: one real headless Chromium per test module, driven by Playwright.

Needs Debian's chromium (/usr/bin/chromium, or CHROMIUM_PATH) and the `playwright`
package (never `playwright install`: the system browser is used). Without them the
tests are skipped, unless CI is set: then they fail, so CI cannot skip silently.
Modules use it with `pytestmark = pytest.mark.asyncio(loop_scope="module")`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000
"""How long browser-side waits (expect, wait_for_function) may take before a test fails."""


def browser_unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when CI is set (CI must run the browser tests)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the browser tests must run, not skip", pytrace=False)
    pytest.skip(reason)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the module; give each simulated user its own context."""
    if not CHROMIUM.is_file():
        browser_unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError as exc:
        browser_unavailable(f"playwright is not installed ({exc})")
    expect.set_options(timeout=WAIT_MS)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()
