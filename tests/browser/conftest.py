"""Headless Chromium (Debian's, driven by Playwright) against the app on a real uvicorn."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

from tests.browser.helpers import Watch

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        instance = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield instance
        await instance.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    yield ctx
    await ctx.close()


class People:
    """Browser contexts, one per person (visitor, operator, …), each with its own storage and cookies."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.opened: list[BrowserContext] = []
        self.watch = Watch()

    async def new(self, **options: Any) -> BrowserContext:
        ctx = await self.browser.new_context(**{"viewport": {"width": 1280, "height": 800}, **options})
        ctx.set_default_timeout(5000)
        self.watch.attach(ctx)
        self.opened.append(ctx)
        return ctx

    async def close(self) -> None:
        for ctx in self.opened:
            await ctx.close()
        self.opened.clear()


@pytest.fixture
async def people(browser: Browser) -> AsyncIterator[People]:
    """A factory of contexts, closed after the test; no page of theirs may throw an uncaught error or
    open a dialog."""
    crowd = People(browser)
    yield crowd
    await crowd.close()
    assert not crowd.watch.errors, crowd.watch.errors
    assert not crowd.watch.dialogs, crowd.watch.dialogs


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
