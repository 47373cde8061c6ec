"""Directory & SSO in Chromium: the settings page and the log-in page's "Sign in with …" button pass
axe-core; single sign-on end to end in a real browser, across sites (the app on 127.0.0.1, the
provider on localhost): the provider's redirect back is a cross-site navigation, so the round-trip
cookie must be SameSite=Lax, and the SameSite=Strict session cookie must still reach the console."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import expect

from confide.auth.providers import oidc
from confide.core.runtime import Runtime
from confide.identity import service as identity
from confide.identity.schemas import OidcProviderIn
from tests.browser.conftest import People
from tests.browser.helpers import axe, log_in, t
from tests.conftest import Live, World
from tests.helpers_api import actor
from tests.oidc_server import Provider, run_provider


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with run_provider() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_discovery() -> Iterator[None]:
    oidc.forget_cache()
    yield
    oidc.forget_cache()


async def add_provider(rt: Runtime, world: World, provider: Provider) -> str:
    admin = await actor(rt, world.admin_id)
    data = {"name": "Corp SSO", "issuer": provider.base, "client_id": "confide", "client_secret": "s3cret-value",
            "group_roles": [{"group": "confide-admins", "role": "administrator"}], "auto_create": True}
    async with rt.db.unit_of_work() as uow:
        row = await identity.save_oidc_provider(rt, uow, admin, OidcProviderIn.model_validate(data))
    return row.id


async def test_directory_settings_page_has_no_violation(
    rt: Runtime, world: World, live: Live, people: People, provider: Provider
) -> None:
    page = await log_in(await people.new(), live, world.admin_email, "/app/settings/security/directory")
    await axe(page, "directory settings, empty")
    await page.fill("#l-urls", "ldap://127.0.0.1:1")
    await page.fill("#l-bind-dn", "cn=svc,dc=example,dc=test")
    await page.fill("#l-base", "ou=people,dc=example,dc=test")
    await page.fill("#l-filter", "(uid=no-placeholder)")
    await page.click(t("ldap-save"))
    await expect(page.locator(t("form-errors"))).to_contain_text("{login}")
    await axe(page, "directory settings, errors")
    await page.fill("#l-filter", "(uid={login})")
    await page.fill("#l-bind-pw", "whatever-password")
    await page.fill("#l-timeout", "1")
    await page.click(t("ldap-save"))
    await expect(page.locator(t("flash"))).to_have_text("Directory settings saved.")
    await page.click(t("ldap-test"))
    await expect(page.locator(t("flash"))).to_contain_text("No directory server answered")
    await axe(page, "directory settings, test connection failed")
    await add_provider(rt, world, provider)
    await page.reload()
    await page.click("summary:has-text('Corp SSO')")
    await axe(page, "directory settings, a provider open")


async def test_single_sign_on_in_chromium(
    rt: Runtime, world: World, live: Live, people: People, provider: Provider
) -> None:
    provider_id = await add_provider(rt, world, provider)
    provider.set_user("sub-zoe", email="zoe@corp.example", email_verified=True, name="Zoe Park",
                      groups=["confide-admins"])
    page = await (await people.new()).new_page()
    await page.goto(f"{live.base}/login?next=/app/chats")
    await axe(page, "login page with a sign-in provider")
    await page.click(t(f"sso-{provider_id}"))
    await page.wait_for_url(f"{provider.base}/oauth2/authorize**")
    await page.fill("input[name=sub]", "sub-zoe")
    await page.click("button:has-text('Authorize')")
    # Back at Confide: the callback page moves on by itself, and the console opens with the session.
    await page.wait_for_url(f"{live.base}/app/chats")
    await expect(page.locator("h1")).to_have_text("Stored Chats")
    cookies = {c["name"]: c for c in await page.context.cookies(live.base)}
    assert cookies["confide_session"]["sameSite"] == "Strict"
    assert "confide_sso" not in cookies  # the round trip's cookie is gone
