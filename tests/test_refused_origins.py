"""A site owner sees the origins whose widget calls were refused (Settings -> Sites): only
scheme://host[:port] is kept, per site, the 20 most recent, written at a bounded rate."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from confide.core import clock
from confide.core.runtime import Runtime
from confide.workspaces import service as workspaces
from confide.workspaces.models import RefusedOrigin
from tests.conftest import World
from tests.helpers_api import actor, logged_in


async def _rows(rt: Runtime, site_id: str) -> list[RefusedOrigin]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = await uow.session.scalars(select(RefusedOrigin).where(RefusedOrigin.site_id == site_id)
                                         .order_by(RefusedOrigin.origin))
        return list(rows.all())


@pytest.mark.parametrize(("raw", "clean"), [
    ("https://Shop.Example", "https://shop.example"),
    ("https://shop.example:8443/", "https://shop.example:8443"),
    ("http://shop.example/checkout?email=ana@example.com#x", "http://shop.example"),
    ("https://user:secret@shop.example", None),
    ("null", None),
    ("file:///etc/passwd", None),
    ("https://[::1]:8000", "https://[::1]:8000"),
    ("https://shop.example:99999", None),
    ("https://" + "a" * 400, None),
    ("", None),
])
def test_only_an_origin_is_ever_kept(raw: str, clean: str | None) -> None:
    assert workspaces.origin_only(raw) == clean


async def test_refused_widget_calls_are_recorded_once_per_interval(
    rt: Runtime, world: World, client: httpx.AsyncClient
) -> None:
    foreign = {"Origin": "https://www.shop-typo.example"}
    for _ in range(30):  # a flood: one write, not thirty
        assert (await client.get(f"/api/v1/widget/{world.site_key}/config", headers=foreign)).status_code == 403
    assert (await client.post(f"/api/v1/widget/{world.site_key}/conversations", headers=foreign,
                              json={"fields": {}})).status_code == 403
    allowed = await client.get(f"/api/v1/widget/{world.site_key}/config", headers={"Origin": world.origin})
    assert allowed.status_code in (200, 409)
    assert (await client.get("/api/v1/widget/no-such-site/config", headers=foreign)).status_code == 404
    rows = await _rows(rt, world.site_id)
    assert [(r.origin, r.count) for r in rows] == [("https://www.shop-typo.example", 1)]


async def test_at_most_twenty_per_site_most_recent_first_and_racing_writes_add_up(rt: Runtime, world: World) -> None:
    for i in range(25):
        clock.advance(timedelta(seconds=1))
        async with rt.db.unit_of_work() as uow:
            assert await workspaces.record_refused_origin(uow, world.site_id, f"https://s{i:02d}.example")
    rows = await _rows(rt, world.site_id)
    assert len(rows) == workspaces.REFUSED_ORIGINS_KEPT
    assert "https://s24.example" in {r.origin for r in rows}

    async def one() -> None:
        async with rt.db.unit_of_work() as uow:
            await workspaces.record_refused_origin(uow, world.site_id, "https://s24.example")

    await asyncio.gather(*(one() for _ in range(8)))  # concurrent upserts on PostgreSQL: none lost
    [row] = [r for r in await _rows(rt, world.site_id) if r.origin == "https://s24.example"]
    assert row.count == 9
    async with rt.db.unit_of_work() as uow:
        assert not await workspaces.record_refused_origin(uow, world.site_id, "https://bad host.example")


async def test_settings_shows_them_to_administrators_only(rt: Runtime, world: World, client: httpx.AsyncClient) -> None:
    async with rt.db.unit_of_work() as uow:
        await workspaces.record_refused_origin(uow, world.site_id, "https://staging.shop.example")
    async with logged_in(client._transport.app, world.admin_email) as admin:  # type: ignore[attr-defined]
        page = await admin.get("/app/settings")
    assert page.status_code == 200
    assert "Recently refused origins" in page.text
    assert "https://staging.shop.example" in page.text
    async with logged_in(client._transport.app, world.operator_email) as operator:  # type: ignore[attr-defined]
        assert (await operator.get("/app/settings")).status_code == 403
    with pytest.raises(Exception, match="you do not have permission to do this"):
        async with rt.db.unit_of_work(readonly=True) as uow:
            await workspaces.refused_origins(uow, await actor(rt, world.operator_id))
