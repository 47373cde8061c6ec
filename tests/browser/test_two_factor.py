"""Two-factor in Chromium against the real server: TOTP enrolment on the account page and log-in with
the code (computed with pyotp, on Confide's clock), passkey enrolment and log-in with a virtual
authenticator (DevTools protocol, at http://localhost:PORT so that the page is a secure context and
the RP id is ``localhost``), enrolment forced at log-in by the workspace's policy, and axe-core on
every new page."""

from __future__ import annotations

from datetime import timedelta

import pyotp
from playwright.async_api import BrowserContext, Page, expect
from sqlalchemy import text

from confide.core import clock
from confide.core.runtime import Runtime
from confide.two_factor import service as two_factor
from tests.browser.conftest import People
from tests.browser.helpers import PASSWORD, axe, log_in, t
from tests.conftest import Live, World
from tests.helpers_api import actor


def localhost(live: Live) -> str:
    return live.base.replace("127.0.0.1", "localhost")


async def password_step(
    context: BrowserContext, base: str, email: str, next_path: str = "/app", *, page: Page | None = None
) -> Page:
    """The password form (in a new tab, or in ``page``: a virtual authenticator belongs to its tab)."""
    page = page or await context.new_page()
    await page.goto(f"{base}/login?next={next_path}")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click(t("login-submit"))
    return page


async def log_out(page: Page) -> None:
    await page.click(t("logout"))
    await expect(page.locator("#email")).to_be_visible()


def code(secret: str) -> str:
    return pyotp.TOTP(secret).at(clock.now())


async def test_totp_enrolment_and_login(rt: Runtime, world: World, live: Live, people: People) -> None:
    context = await people.new()
    page = await log_in(context, live, world.operator_email, "/app/chats")
    await page.click(t("account-link"))  # the account area, then its two-step section
    await page.click(t("account-two-factor"))
    await expect(page).to_have_url(f"{live.base}/app/account/two-factor")
    await axe(page, "account two-factor page, nothing set up")
    await page.click(t("totp-start"))
    secret = await page.locator(t("totp-secret")).get_attribute("data-secret")
    assert secret
    await expect(page.locator(t("totp-qr"))).to_be_visible()
    await axe(page, "account two-factor page, TOTP set-up")
    await page.fill("#totp-code", "000000")
    await page.click(t("totp-confirm"))
    await expect(page.locator(t("flash"))).to_contain_text("does not match")
    await page.fill("#totp-code", code(secret))
    await page.click(t("totp-confirm"))
    await expect(page.locator(t("recovery-code"))).to_have_count(10)
    await axe(page, "recovery codes")
    await page.click(t("codes-continue"))
    await expect(page.locator(t("totp-on"))).to_be_visible()
    await expect(page.locator(t("recovery-left"))).to_contain_text("10 of 10")
    await log_out(page)

    clock.advance(timedelta(seconds=30))  # the enrolment used this step's code
    page = await password_step(context, live.base, world.operator_email, "/app/chats")
    await expect(page).to_have_url(f"{live.base}/login/two-factor?next=%2Fapp%2Fchats")
    await axe(page, "second step")
    await page.fill("#code", "111111")
    await page.click(t("two-factor-submit"))
    await expect(page.locator(t("two-factor-error"))).to_contain_text("Wrong or already used code")
    await axe(page, "second step with an error")
    await page.fill("#code", code(secret))
    await page.click(t("two-factor-submit"))
    await expect(page).to_have_url(f"{live.base}/app/chats")
    # The ticket cookie is gone; the session cookie is HttpOnly and strict.
    cookies = {c["name"]: c for c in await context.cookies()}
    assert "confide_2fa" not in cookies
    assert cookies["confide_session"]["httpOnly"]


async def _virtual_authenticator(page: Page) -> None:
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})


async def test_passkey_enrolment_and_login(rt: Runtime, world: World, live: Live, people: People) -> None:
    base = localhost(live)
    context = await people.new()
    page = await password_step(context, base, world.operator_email, "/app/account/two-factor")
    await expect(page).to_have_url(f"{base}/app/account/two-factor")
    await _virtual_authenticator(page)
    await page.click(t("passkey-add"))  # no name yet: the form does not go
    await expect(page.locator("#passkey-label:invalid")).to_have_count(1)
    await expect(page.locator(t("passkey-row"))).to_have_count(0)
    await page.fill("#passkey-label", "Work laptop")
    await page.click(t("passkey-add"))
    await expect(page.locator(t("recovery-code"))).to_have_count(10)  # the first factor: codes, shown once
    await axe(page, "passkey added, recovery codes shown")
    await page.click("[data-codes-continue]")
    await expect(page.locator(t("passkey-row"))).to_have_count(1)
    await expect(page.locator(t("passkey-row"))).to_contain_text("Work laptop")
    await expect(page.locator(t("flash"))).to_contain_text("Passkey added")
    await axe(page, "account page with a passkey")
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await two_factor.two_factor_state(uow, world.operator_id) == "passkey"
    await log_out(page)

    page = await password_step(context, base, world.operator_email, "/app/chats", page=page)
    await expect(page).to_have_url(f"{base}/login/two-factor?next=%2Fapp%2Fchats")
    await expect(page.locator(t("passkey-login"))).to_be_visible()
    await axe(page, "second step with a passkey")
    await page.click(t("passkey-login"))
    await expect(page).to_have_url(f"{base}/app/chats")
    async with rt.db.unit_of_work(readonly=True) as uow:
        row = await uow.session.execute(text("select sign_count, last_used_at from passkey_credentials"))
        count, used = row.one()
    assert count >= 1
    assert used is not None
    # Removing it (two clicks) ends the other sessions and leaves no factor.
    await page.goto(f"{base}/app/account/two-factor")
    await page.click(t("passkey-remove"))
    await page.click(t("passkey-remove"))
    await expect(page.locator(t("flash"))).to_contain_text("Passkey removed")
    await expect(page.locator(t("passkey-row"))).to_have_count(0)


async def test_enrolment_is_forced_at_login(rt: Runtime, world: World, live: Live, people: People) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await two_factor.set_policy(rt, uow, admin, require_all=True, roles=[])
    context = await people.new()
    page = await password_step(context, live.base, world.operator_email, "/app/chats")
    await expect(page).to_have_url(f"{live.base}/login/two-factor/enrol?next=%2Fapp%2Fchats")
    await axe(page, "enrolment at log-in")
    # The console is not open yet.
    other = await context.new_page()
    await other.goto(f"{live.base}/app")
    await expect(other).to_have_url(f"{live.base}/login?next=%2Fapp")
    await other.close()
    secret = await page.locator(t("totp-secret")).get_attribute("data-secret")
    assert secret
    await page.fill("#totp-code", code(secret))
    await page.click(t("totp-confirm"))
    await expect(page.locator(t("recovery-code"))).to_have_count(10)
    await axe(page, "recovery codes at log-in")
    await page.click(t("codes-continue"))
    await expect(page).to_have_url(f"{live.base}/app/chats")


async def test_passkey_enrolment_forced_at_login(rt: Runtime, world: World, live: Live, people: People) -> None:
    base = localhost(live)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await two_factor.set_policy(rt, uow, admin, require_all=False, roles=["operator"])
    context = await people.new()
    page = await password_step(context, base, world.operator_email, "/app/chats")
    await expect(page).to_have_url(f"{base}/login/two-factor/enrol?next=%2Fapp%2Fchats")
    await _virtual_authenticator(page)
    await page.fill("#passkey-label", "Security key")
    await page.click(t("passkey-add"))
    await expect(page.locator(t("recovery-code"))).to_have_count(10)
    await page.click("[data-codes-continue]")
    await expect(page).to_have_url(f"{base}/app/chats")


async def test_settings_two_factor_page(rt: Runtime, world: World, live: Live, people: People) -> None:
    page = await log_in(await people.new(), live, world.admin_email, "/app/settings/security/two-factor")
    await axe(page, "settings: two-factor")
    await page.check(t("mode-roles"))
    await page.check(t("role-supervisor"))
    await page.click(t("two-factor-policy-save"))
    await expect(page.locator(t("flash"))).to_contain_text("Two-factor requirement saved.")
    await expect(page.locator(t("role-supervisor"))).to_be_checked()
    await axe(page, "settings: two-factor saved")
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await two_factor.get_policy(uow, world.workspace_id) == two_factor.PolicyView(False, ["supervisor"])
