"""Helpers of the browser tests: set-up through the services, the operator's console, the visitor's widget.

Selectors: the widget's hooks are ``data-confide="…"`` (inside an open shadow root, which Playwright's CSS
selectors pierce), the console's are ``data-testid="…"``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Dialog, Locator, Page, expect

from confide.core.runtime import Runtime
from confide.routing import service as routing
from confide.users import operators as user_operators
from confide.users import sessions as user_sessions
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import CannedReplyIn, SitePatch
from tests import factories
from tests.conftest import Live, World

PASSWORD = factories.PASSWORD


def w(hook: str) -> str:
    """A widget hook."""
    return f'[data-confide="{hook}"]'


def t(hook: str) -> str:
    """A console hook."""
    return f'[data-testid="{hook}"]'


# ---------------------------------------------------------------- what a page did that it should not have
@dataclass
class Watch:
    """Uncaught script errors and dialogs (alert/confirm/prompt) of every page of a context."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> None:
        context.on("page", self._page)
        for page in context.pages:
            self._page(page)

    def _page(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        page.on("dialog", self._dialog)

    async def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()


# ---------------------------------------------------------------- set-up through the services
async def serve_demo(rt: Runtime, world: World, live: Live) -> None:
    """Let the widget on the demo page (served by ``live``) talk to the world's site."""
    async with rt.db.unit_of_work() as uow:
        admin = await user_sessions.actor_for(uow, world.admin_id)
        await workspaces.update_site(uow, admin, world.site_id, SitePatch(allowed_origins=[world.origin, live.base]))


async def add_canned_reply(rt: Runtime, world: World, *, shortcut: str, title: str, text: str) -> None:
    async with rt.db.unit_of_work() as uow:
        admin = await user_sessions.actor_for(uow, world.admin_id)
        await workspaces.create_canned_reply(uow, admin, CannedReplyIn(shortcut=shortcut, title=title, text=text))


async def set_status(rt: Runtime, operator_id: str, status: str) -> None:
    async with rt.db.unit_of_work() as uow:
        if status == "online":
            await factories.present(uow, operator_id)  # a console of theirs is open (presence)
        await routing.set_status(rt, uow, await user_sessions.actor_for(uow, operator_id), status)


async def wait_status(rt: Runtime, operator_id: str, status: str, timeout: float = 5.0) -> None:
    """The operator's status as stored (the console changes it over its socket)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        async with rt.db.unit_of_work(readonly=True) as uow:
            op = await user_operators.get_operator(uow, operator_id)
            current = op.status if op else None
        if current == status:
            return
        assert loop.time() < deadline, f"operator status is {current!r}, expected {status!r}"
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- the operator
async def log_in(context: BrowserContext, live: Live, email: str, next_path: str = "/app") -> Page:
    """Log in through the real log-in page; returns the page, at ``next_path``."""
    page = await context.new_page()
    await page.goto(f"{live.base}/login?next={next_path}")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click(t("login-submit"))
    await expect(page).to_have_url(f"{live.base}{next_path}")
    return page


async def open_console(context: BrowserContext, live: Live, rt: Runtime, email: str, operator_id: str,
                       *, online: bool = True) -> Page:
    """Log in at /app, wait for the socket, and (by default) go online."""
    page = await log_in(context, live, email)
    await expect(page.locator(t("connection"))).to_have_attribute("data-state", "connected")
    if online:
        await page.select_option(t("status"), "online")
        await expect(page.locator("#status-wrap")).to_have_attribute("data-status", "online")
        await wait_status(rt, operator_id, "online")
    return page


def chat_item(console: Page, conversation_id: str) -> Locator:
    return console.locator(f'{t("chat-item")}[data-conversation-id="{conversation_id}"]')


async def accept_offer(console: Page, conversation_id: str) -> None:
    """Accept the chat routing offered to this operator; it becomes the focused chat."""
    offer = console.locator(f'{t("offer")}[data-conversation-id="{conversation_id}"]')
    await offer.locator(t("offer-accept")).click()
    await expect(offer).to_have_count(0)
    await expect(chat_item(console, conversation_id)).to_have_attribute("aria-current", "true")


async def operator_says(console: Page, text: str) -> None:
    await console.fill(t("composer"), text)
    await console.press(t("composer"), "Enter")
    # Committed (acknowledged), not merely pending.
    await expect(console.locator(f'{t("transcript")} {t("msg")}[data-sender="operator"]:not([data-pending])')
                 .filter(has_text=text)).to_have_count(1)


# ---------------------------------------------------------------- the visitor
async def open_widget(page: Page, live: Live, path: str = "/demo") -> None:
    await page.goto(live.base + path)
    await page.click(w("launcher"))
    await expect(page.locator(w("panel"))).to_be_visible()


async def fill_prechat(page: Page, *, name: str, email: str, phone: str = "", order: str = "",
                       marketing: bool = False) -> None:
    form = page.locator(w("prechat"))
    await expect(form).to_be_visible()
    await form.locator('[name="name"]').fill(name)
    await form.locator('[name="email"]').fill(email)
    if phone:
        await form.locator('[name="phone"]').fill(phone)
    if order:
        await form.locator('[name="order"]').fill(order)
    consent = form.locator('[name="consent:marketing"]')
    await (consent.check() if marketing else consent.uncheck())


async def start_chat(page: Page, **fields: Any) -> str:
    """Fill the pre-chat form, start the chat; returns the conversation id (from the tab's storage)."""
    await fill_prechat(page, **fields)
    await page.click(w("start"))
    await expect(page.locator(w("messages"))).to_be_visible()
    return str((await stored(page))["conversation_id"])


async def stored(page: Page) -> dict[str, Any]:
    """The widget's sessionStorage entry (``confide:SITE_KEY``), or {}."""
    raw = await page.evaluate(
        "() => { const k = Object.keys(sessionStorage).find((k) => k.startsWith('confide:'));"
        " return k ? sessionStorage.getItem(k) : null; }")
    return dict(json.loads(raw)) if raw else {}


async def visitor_says(page: Page, text: str) -> None:
    await page.fill(w("input"), text)
    await page.press(w("input"), "Enter")
    # Committed: the bubble carries its sequence number once acknowledged.
    await expect(page.locator(f'{w("msg")}[data-sender="visitor"][data-seq]').filter(has_text=text)).to_have_count(1)


def bubbles(page: Page, sender: str) -> Locator:
    """The texts of the widget's message bubbles from ``sender`` (visitor, operator, system)."""
    return page.locator(f'{w("msg")}[data-sender="{sender}"] .b')


# ---------------------------------------------------------------- accessibility (axe-core from npm, see the Makefile)
AXE_JS = Path(__file__).resolve().parents[2] / ".venv" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


@cache
def _axe_source() -> str:
    assert AXE_JS.is_file(), f"{AXE_JS} is missing: run `make axe` (npm install axe-core)"
    return AXE_JS.read_text(encoding="utf-8")


async def axe(page: Page, state: str) -> dict[str, Any]:
    """Run axe-core (WCAG 2.0/2.1/2.2 A and AA rules) on the whole page, open shadow roots included, and
    assert that it found no violation; returns axe's results."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(_axe_source())
    # Let entrance animations (fades) end: axe measures the colours on screen at that moment.
    await page.evaluate("() => Promise.all(document.getAnimations().filter((a) =>"
                        " a.effect && a.effect.getComputedTiming().iterations !== Infinity)"
                        ".map((a) => a.finished.catch(() => null)))")
    results: dict[str, Any] = await page.evaluate(
        "async (tags) => { const r = await axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations', 'passes']});"
        " return {violations: r.violations.map((v) => ({id: v.id, help: v.help, nodes: v.nodes.map((n) =>"
        " ({target: n.target, summary: n.failureSummary}))})), passes: r.passes.map((p) => ({id: p.id,"
        " targets: p.nodes.map((n) => n.target)}))}; }", AXE_TAGS)
    assert results["passes"], f"{state}: axe ran no check at all"
    assert results["violations"] == [], f"{state}: {json.dumps(results['violations'], indent=1)}"
    return results


def passes_inside_widget(results: dict[str, Any]) -> set[str]:
    """The axe rules that passed on nodes inside the widget's shadow root (a target of the form
    ``[["confide-widget", "<selector inside the shadow root>"]]``)."""
    return {p["id"] for p in results["passes"]
            for target in p["targets"]
            if target and isinstance(target[0], list) and str(target[0][0]).startswith("confide-widget")}
