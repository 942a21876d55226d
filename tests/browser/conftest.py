"""One Chromium per test module (Debian's, driven by Playwright), a fresh context per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from tests.support.server import RunningServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


# Console messages in which the browser reports a blocked script, style or request: Atoll's pages
# run under a Content-Security-Policy (issue 14), and one of them must never trip it.
CSP_VIOLATIONS: list[str] = []


def _watch_csp(msg: ConsoleMessage) -> None:
    if "Content Security Policy" in msg.text:
        CSP_VIOLATIONS.append(f"{msg.location.get('url', '?')}: {msg.text}")


@pytest.fixture(autouse=True)
def no_csp_violations() -> Iterator[None]:
    CSP_VIOLATIONS.clear()
    yield
    assert not CSP_VIOLATIONS, "Content-Security-Policy violations:\n" + "\n".join(CSP_VIOLATIONS)


def new_context(browser: Browser, server: RunningServer) -> BrowserContext:
    ctx = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(10_000)
    ctx.on("console", _watch_csp)
    return ctx


@pytest.fixture
def page(browser: Browser, server: RunningServer) -> Iterator[Page]:
    """A fresh browser context (no cookies) per test."""
    ctx = new_context(browser, server)
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
