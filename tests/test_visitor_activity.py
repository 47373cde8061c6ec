"""Visitor Activity (issue 7 point 5, ADR 0019): nothing stored without a basis (raw scans), the
stored forms of addresses and browsers, hostile reports, the per-visitor rate limit, the back
office's filters and scope, and the console's trail. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from confide.core.runtime import Runtime
from confide.visitor_activity import service as activity
from confide.visitor_activity.schemas import ActivitySettingsIn
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import SitePatch
from tests import factories
from tests.conftest import World
from tests.helpers_api import SELF, actor, count, counts, logged_in, set_status, start_chat

TABLES = ("activity_pages", "activity_page_terms")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
PURPOSES = [
    {"key": "marketing", "label": "News by e-mail", "version": "v1"},
    {"key": "activity_tracking", "label": "Remember the pages I visit while I chat", "version": "v1"},
]


async def _with_tracking_purpose(rt: Runtime, world: World) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await workspaces.update_site(uow, admin, world.site_id, SitePatch(purposes=PURPOSES))


async def _settings(rt: Runtime, world: World, **values: Any) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await activity.save_settings(rt, uow, admin, world.site_id, ActivitySettingsIn(**values))


async def _chat(client: httpx.AsyncClient, rt: Runtime, world: World, *, tracking: bool | None) -> dict[str, Any]:
    await _with_tracking_purpose(rt, world)
    await set_status(rt, world.operator_id)
    consents = {"marketing": False} if tracking is None else {"activity_tracking": tracking}
    return await start_chat(client, world, consents=consents)


async def report(client: httpx.AsyncClient, world: World, token: object, *, raw: str | None = None,
                 origin: str | None = None, site_key: str | None = None, **body: Any) -> httpx.Response:
    payload = {"type": "view", "token": token, "url": "https://shop.example/products/blue-shoes", **body}
    return await client.post(
        f"/api/v1/widget/{site_key or world.site_key}/activity",
        content=raw if raw is not None else json.dumps(payload),
        headers={"Origin": origin or world.origin, "content-type": "text/plain;charset=UTF-8", "user-agent": FIREFOX},
    )


async def _raw_rows(rt: Runtime) -> list[tuple[Any, ...]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return [tuple(r) for r in (await uow.session.execute(text("select * from activity_pages"))).all()]


# ---------------------------------------------------------------- the basis
async def test_no_consent_no_activity_row(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    for tracking in (None, False):
        chat = await _chat(client, rt, world, tracking=tracking)
        for path in ("pricing", "checkout"):
            response = await report(client, world, chat["token"], url=f"https://shop.example/{path}", title="Shop")
            assert response.status_code == 200, response.text
            assert response.json() == {"stored": False, "view_id": None}
        left = await report(client, world, chat["token"], type="left", url=None,
                            previous={"view_id": "x" * 32, "seconds": 5})
        assert left.status_code == 422  # "left" carries no url: extra keys are refused
        left = await client.post(f"/api/v1/widget/{world.site_key}/activity", headers={"Origin": world.origin},
                                 content=json.dumps({"type": "left", "token": chat["token"],
                                                     "previous": {"view_id": "x" * 32, "seconds": 5}}))
        assert left.json() == {"stored": False, "view_id": None}
    assert await counts(rt, *TABLES) == {"activity_pages": 0, "activity_page_terms": 0}
    assert await count(rt, "activity_settings") == 0


async def test_consent_stores_encrypted_rows_and_time_on_page(client: httpx.AsyncClient, rt: Runtime,
                                                              world: World) -> None:
    chat = await _chat(client, rt, world, tracking=True)
    first = await report(client, world, chat["token"], title="Blue shoes", referrer="https://search.example/?q=shoes")
    assert first.status_code == 200, first.text
    view_id = first.json()["view_id"]
    assert first.json()["stored"] is True
    assert view_id
    second = await report(client, world, chat["token"], url="https://shop.example/checkout", title="Checkout",
                          referrer="https://shop.example/products/blue-shoes",
                          previous={"view_id": view_id, "seconds": 42})
    assert second.json()["stored"] is True
    beacon = await report(client, world, chat["token"], raw=json.dumps(
        {"type": "left", "token": chat["token"], "previous": {"view_id": second.json()["view_id"], "seconds": 7}}))
    assert beacon.json() == {"stored": True, "view_id": None}
    rows = await _raw_rows(rt)
    assert len(rows) == 2
    dump = repr(rows)
    for plain in ("blue-shoes", "Blue shoes", "checkout", "search.example", "Firefox", "127.0.0"):
        assert plain not in dump  # encrypted at rest
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        trail = await activity.visitor_trail(rt, uow, admin, chat["visitor_id"])
    pages = {p["url"]: p for p in trail["pages"]}
    assert pages["https://shop.example/products/blue-shoes"]["seconds_on_page"] == 42
    assert pages["https://shop.example/products/blue-shoes"]["title"] == "Blue shoes"
    assert pages["https://shop.example/products/blue-shoes"]["referrer"] == "https://search.example/?q=shoes"
    assert pages["https://shop.example/checkout"]["seconds_on_page"] == 7
    assert pages["https://shop.example/checkout"]["user_agent"] == "Firefox on Linux"  # the default


async def test_legitimate_interest_needs_a_justification(app: Any, client: httpx.AsyncClient, rt: Runtime,
                                                         world: World) -> None:
    path = f"/app/settings/sites/{world.site_id}/activity"
    async with logged_in(app, world.admin_email) as admin:
        refused = await admin.post(path, headers=SELF, data={"basis": "legitimate_interest", "justification": " ",
                                                              "ip_mode": "truncated", "ua_mode": "family"})
        assert refused.status_code == 422
        assert "justification" in refused.text
        assert await count(rt, "activity_settings") == 0
        bad = await admin.post(path, headers=SELF, data={"basis": "maybe", "ip_mode": "truncated", "ua_mode": "x"})
        assert bad.status_code == 422
        assert await count(rt, "activity_settings") == 0
        ok = await admin.post(path, headers=SELF, data={
            "basis": "legitimate_interest", "justification": "Support needs to see the page a question is about.",
            "ip_mode": "none", "ua_mode": "none"})
        assert ok.status_code == 303, ok.text
        page = await admin.get(path)
        assert page.status_code == 200
        assert "Support needs to see the page" in page.text
    async with logged_in(app, world.operator_email) as operator:  # an operator may not change it
        assert (await operator.post(path, headers=SELF, data={"basis": "consent"})).status_code == 403
    # Documented legitimate interest: stored without the visitor's consent (the widget offers no
    # activity box, the visitor has not objected)...
    await set_status(rt, world.operator_id)
    chat = await start_chat(client, world, consents={"marketing": False})
    assert (await report(client, world, chat["token"])).json()["stored"] is True
    [_row] = await _raw_rows(rt)
    assert await count(rt, "activity_pages") == 1
    # ...but a visitor shown the activity box who leaves it unticked has said no (Art. 21): not stored.
    objecting = await _chat(client, rt, world, tracking=False)
    assert (await report(client, world, objecting["token"])).json()["stored"] is False
    assert await count(rt, "activity_pages") == 1
    async with rt.db.unit_of_work(readonly=True) as uow:
        ip, ua = (await uow.session.execute(text("select ip_enc, ua_enc from activity_pages"))).one()
    assert ip is None
    assert ua is None


# ---------------------------------------------------------------- stored forms
IP_CASES = [
    ("none", "203.0.113.77", None),
    ("truncated", "203.0.113.77", "203.0.113.0/24"),
    ("full", "203.0.113.77", "203.0.113.77"),
    ("none", "2001:db8:abcd:12:1:2:3:4", None),
    ("truncated", "2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::/48"),
    ("full", "2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd:12:1:2:3:4"),
]
UA_CASES = [("none", None), ("family", "Firefox on Linux"), ("full", FIREFOX)]


async def test_each_ip_and_user_agent_mode_stores_exactly_its_form(app: Any, client: httpx.AsyncClient,
                                                                   rt: Runtime, world: World) -> None:
    chat = await _chat(client, rt, world, tracking=True)
    for n, ((ip_mode, address, ip_expected), (ua_mode, ua_expected)) in enumerate(
        zip(IP_CASES, UA_CASES * 2, strict=True)
    ):
        await _settings(rt, world, ip_mode=ip_mode, ua_mode=ua_mode)
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as peer:
            response = await report(peer, world, chat["token"], url=f"https://shop.example/case/{n}")
        assert response.json()["stored"] is True, response.text
        admin = await actor(rt, world.admin_id)
        async with rt.db.unit_of_work() as uow:
            pages = (await activity.visitor_trail(rt, uow, admin, chat["visitor_id"]))["pages"]
        [page] = [p for p in pages if p["url"].endswith(f"/case/{n}")]
        assert (page["ip"], page["user_agent"]) == (ip_expected, ua_expected), (ip_mode, address, ua_mode)
    assert activity.stored_address("::ffff:198.51.100.9", "truncated") == "198.51.100.0/24"
    assert activity.stored_address("testclient", "full") is None


# ---------------------------------------------------------------- hostile input
async def test_hostile_reports_are_refused_and_write_nothing(client: httpx.AsyncClient, rt: Runtime,
                                                             world: World) -> None:
    chat = await _chat(client, rt, world, tracking=True)
    other = await start_chat(client, world, consents={"activity_tracking": True}, fields={
        "name": "Bo Other", "email": "bo@example.com"})
    theirs = (await report(client, world, other["token"])).json()["view_id"]
    before = await counts(rt, *TABLES)
    token = chat["token"]
    cases: list[tuple[int, httpx.Response]] = [
        (422, await report(client, world, token, url="https://shop.example/" + "a" * 2100)),
        (422, await report(client, world, token, title="t" * 301)),
        (422, await report(client, world, token, url=123)),
        (422, await report(client, world, token, url=["https://shop.example/"])),
        (422, await report(client, world, token, url="javascript:alert(1)")),
        (422, await report(client, world, token, url="https://shop.example/\x00x")),
        (422, await report(client, world, token, referrer="data:text/html,hi")),
        (422, await report(client, world, token, unknown="key")),
        (422, await report(client, world, token, raw="{not json")),
        (422, await report(client, world, token, raw=json.dumps({"type": "view", "token": token,
                                                                 "url": "https://shop.example/", "pad": "x" * 9000}))),
        (422, await report(client, world, token, previous={"view_id": theirs, "seconds": -1})),
        (404, await report(client, world, token, previous={"view_id": theirs, "seconds": 5})),  # another visitor's page
        (401, await report(client, world, "forged.token")),
        (422, await report(client, world, 12345)),  # not a string
        (403, await report(client, world, token, origin="https://evil.example")),
    ]
    for expected, response in cases:
        assert response.status_code == expected, (expected, response.status_code, response.text[:200])
    assert await counts(rt, *TABLES) == before
    async with rt.db.unit_of_work(readonly=True) as uow:
        seconds = (await uow.session.execute(text("select seconds_on_page from activity_pages"))).scalars().all()
    assert seconds == [None]  # the other visitor's page was not touched


async def test_a_token_of_another_site_is_refused(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    chat = await _chat(client, rt, world, tracking=True)
    async with rt.db.unit_of_work() as uow:
        blog = await factories.site(uow, workspace_id=world.workspace_id, name="Blog",
                                    allowed_origins=["https://blog.example"])
    response = await report(client, world, chat["token"], site_key=blog.site_key, origin="https://blog.example")
    assert response.status_code == 401
    assert await count(rt, "activity_pages") == 0


async def test_reports_are_rate_limited_per_visitor(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    chat = await _chat(client, rt, world, tracking=True)
    burst = int(rt.settings.visitor_activity_burst)
    for n in range(burst):
        assert (await report(client, world, chat["token"], url=f"https://shop.example/p/{n}")).status_code == 200
    refused = await report(client, world, chat["token"], url="https://shop.example/one-more")
    assert refused.status_code == 429
    assert await count(rt, "activity_pages") == burst


# ---------------------------------------------------------------- the back office and the console
async def test_back_office_filters_scope_and_audit(app: Any, client: httpx.AsyncClient, rt: Runtime,
                                                   world: World) -> None:
    chat = await _chat(client, rt, world, tracking=True)
    await report(client, world, chat["token"], url="https://shop.example/pricing/enterprise", title="Pricing")
    await report(client, world, chat["token"], url="https://shop.example/blog/shoes", title="Blog")
    async with rt.db.unit_of_work() as uow:
        blog = await factories.site(uow, workspace_id=world.workspace_id, name="Blog",
                                    allowed_origins=["https://blog.example"])
        dept = await factories.department(uow, workspace_id=world.workspace_id, site_id=blog.id, name="Writers")
        await factories.operator(rt, uow, workspace_id=world.workspace_id, email="wes@shop.example",
                                 name="Wes", department_ids=[dept.id])
    async with logged_in(app, world.operator_email) as mia:
        listed = await mia.get("/app/activity")
        assert listed.status_code == 200
        assert listed.text.count('data-testid="activity-row"') == 2
        search = await mia.post("/app/activity", headers=SELF, data={"url": "pricing", "visitor": "Ana"})
        assert search.status_code == 303
        location = search.headers["location"]
        assert "pricing" not in location
        assert "Ana" not in location
        found = await mia.get(location)
        assert found.text.count('data-testid="activity-row"') == 1
        assert "/pricing/enterprise" in found.text
        none = await mia.get(
            (await mia.post("/app/activity", headers=SELF, data={"url": "checkout"})).headers["location"])
        assert 'data-testid="activity-row"' not in none.text
        by_site = await mia.get(f"/app/activity?site_id={blog.id}")
        assert 'data-testid="activity-row"' not in by_site.text
        by_date = await mia.get("/app/activity?date_to=2000-01-01")
        assert 'data-testid="activity-row"' not in by_date.text
        trail = await mia.get(f"/app/activity/visitors/{chat['visitor_id']}")
        assert trail.status_code == 200
        assert trail.text.count('data-testid="trail-row"') == 2
        console = await mia.get(f"/api/v1/conversations/{chat['conversation_id']}/activity")
        assert console.status_code == 200
        assert [p["url"] for p in console.json()["pages"]] == [
            "https://shop.example/blog/shoes", "https://shop.example/pricing/enterprise"]
    async with logged_in(app, "wes@shop.example") as wes:  # another department, another site
        listed = await wes.get("/app/activity")
        assert listed.status_code == 200
        assert 'data-testid="activity-row"' not in listed.text
        assert (await wes.get(f"/app/activity/visitors/{chat['visitor_id']}")).status_code == 404
        assert (await wes.get(f"/api/v1/conversations/{chat['conversation_id']}/activity")).status_code == 404
    async with rt.db.unit_of_work(readonly=True) as uow:
        audited = (await uow.session.execute(text(
            "select target_id from audit_events where action = 'visitor_activity.viewed'"))).scalars().all()
    assert audited
    assert set(audited) == {chat["visitor_id"]}


async def test_another_workspace_sees_nothing(app: Any, client: httpx.AsyncClient, rt: Runtime,
                                              world: World) -> None:
    from tests.helpers_api import other_workspace

    chat = await _chat(client, rt, world, tracking=True)
    await report(client, world, chat["token"])
    other = await other_workspace(rt)
    async with logged_in(app, other.admin_email) as otto:
        assert 'data-testid="activity-row"' not in (await otto.get("/app/activity")).text
        assert (await otto.get(f"/app/activity/visitors/{chat['visitor_id']}")).status_code == 404
        assert (await otto.get(f"/api/v1/conversations/{chat['conversation_id']}/activity")).status_code == 404
        refused = await otto.post(f"/app/settings/sites/{world.site_id}/activity", headers=SELF,
                                  data={"basis": "consent", "ip_mode": "full", "ua_mode": "full"})
        assert refused.status_code == 404
    assert await count(rt, "activity_settings") == 0


async def test_the_launcher_knows_nothing_of_activity(client: httpx.AsyncClient) -> None:
    launcher = (await client.get("/widget.js")).text
    assert "activity" not in launcher
    assert "sendBeacon" not in launcher
    assert "fetch(" not in launcher
    module = await client.get("/widget/activity.js")
    assert module.status_code == 200
    assert module.headers["content-type"].startswith("text/javascript")
    assert "sessionStorage" not in module.text
    assert "localStorage" not in module.text


@pytest.mark.parametrize("db_kind", ["postgresql"])  # two writers at once (SQLite serialises its writers)
async def test_racing_first_saves_of_a_site_keep_one_row(rt: Runtime, world: World, db_kind: str) -> None:
    admin = await actor(rt, world.admin_id)

    async def save(mode: str) -> None:
        async with rt.db.unit_of_work() as uow:
            await activity.save_settings(rt, uow, admin, world.site_id, ActivitySettingsIn(ip_mode=mode))  # type: ignore[arg-type]
            await asyncio.sleep(0.05)  # keep the transaction open: the other writer overlaps it

    await asyncio.gather(save("none"), save("full"))
    assert await count(rt, "activity_settings") == 1
    async with rt.db.unit_of_work(readonly=True) as uow:
        mode = (await uow.session.execute(text("select ip_mode from activity_settings"))).scalar_one()
    assert mode in ("none", "full")
