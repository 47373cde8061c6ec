"""A visitor socket refused for its Origin is recorded for the site's owner, like the widget's
HTTP calls (Settings -> Sites, recent refused origins): origin only, once per interval, never
for a site that does not exist, and the refusal itself is unchanged (HTTP 403 before the upgrade)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from websockets.exceptions import InvalidStatus

from confide.core.runtime import Runtime
from confide.web.middleware import RefusalRecorder
from confide.web.ws import visitor
from confide.workspaces.models import RefusedOrigin
from tests import wsclient as wc
from tests.conftest import Live, World


async def _rows(rt: Runtime) -> list[tuple[str, str, int]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = await uow.session.scalars(select(RefusedOrigin).order_by(RefusedOrigin.origin))
        return [(r.site_id, r.origin, r.count) for r in rows.all()]


async def _refused(live: Live, site_key: str, origin: str | None) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await wc.visitor_socket(live=live, site_key=site_key, origin=origin)
    assert refused.value.response.status_code == 403


async def test_a_refused_socket_origin_is_recorded_once_per_interval(rt: Runtime, world: World, live: Live,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(visitor, "_refusals", RefusalRecorder())
    for _ in range(5):  # a page reconnecting in a loop: one write, not five
        await _refused(live, world.site_key, "https://www.shop-typo.example")
    await _refused(live, world.site_key, "http://shop.example")  # the scheme counts: another origin
    await _refused(live, "no-such-site", "https://evil.example")  # no site: nobody to tell
    await _refused(live, world.site_key, None)  # no Origin: nothing to record
    await _refused(live, world.site_key, "null")  # not an origin
    assert await _rows(rt) == [(world.site_id, "http://shop.example", 1),
                               (world.site_id, "https://www.shop-typo.example", 1)]
    ws = await wc.visitor_socket(live=live, site_key=world.site_key, origin=world.origin)  # allowed: not recorded
    await ws.close()
    assert len(await _rows(rt)) == 2


async def test_a_path_or_query_in_the_origin_header_is_never_kept(rt: Runtime, world: World, live: Live,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(visitor, "_refusals", RefusalRecorder())
    await _refused(live, world.site_key, "https://shop.example/checkout?email=ana@example.com")
    assert [origin for _, origin, _ in await _rows(rt)] == ["https://shop.example"]  # scheme, host, port only
