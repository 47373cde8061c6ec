"""Retention (ADR 0030): rows past their period go, younger and held ones stay; batches; the dry
run counts the same and deletes nothing; overrides per workspace and site beat the default; the
sweep on two nodes at once deletes each row once; the scheduler's job; the CLI. SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from confide.audit import service as audit
from confide.core import clock, crypto
from confide.core.broker import MemoryBroker
from confide.core.runtime import Runtime, build_runtime
from confide.erasure import stats as erasure_stats
from confide.prospects import service as prospects
from confide.prospects.schemas import ProspectIn
from confide.retention import service as retention
from confide.retention import sweep
from confide.retention.schemas import HoldIn, LiftIn, PolicyIn
from confide.visitor_activity.models import PageView
from confide.worker import scheduler
from tests import factories
from tests.cli_helpers import run_cli
from tests.conftest import World
from tests.helpers_api import accept, actor, close, count, leave_message, say, set_status, start_chat

DAY = timedelta(days=1)


async def chat(client: httpx.AsyncClient, rt: Runtime, world: World, *, site_key: str | None = None) -> dict[str, Any]:
    """A chat through the widget, answered and closed now (at the clock's time)."""
    started = await start_chat(client, world, site_key=site_key)
    await accept(rt, world.operator_id, started["conversation_id"])
    await say(rt, started["conversation_id"], "hello, my order is late", sender_id=started["visitor_id"])
    await close(rt, world.operator_id, started["conversation_id"])
    return started


async def page_views(rt: Runtime, world: World, visitor_id: str, n: int) -> None:
    """``n`` page views of ``visitor_id`` stamped now (the widget's report path needs consent; the
    sweep only cares about the rows)."""
    async with rt.db.unit_of_work() as uow:
        uow.session.add_all([
            PageView(id=crypto.new_id(), workspace_id=world.workspace_id, site_id=world.site_id,
                     visitor_id=visitor_id, viewed_at=clock.now(), url_enc=b"x")
            for _ in range(n)
        ])


async def prospect(rt: Runtime, world: World) -> str:
    async with rt.db.unit_of_work() as uow:
        made = await prospects.create(rt, uow, await actor(rt, world.admin_id), ProspectIn(
            site_id=world.site_id, department_id=world.department_id, name="Lead", email="lead@example.com"))
    return str(made["id"])


async def rows(rt: Runtime, table: str, where: str = "", **params: Any) -> int:
    async with rt.db.unit_of_work(readonly=True) as uow:
        sql = f"select count(*) from {table}" + (f" where {where}" if where else "")  # noqa: S608
        return int((await uow.session.execute(text(sql), params)).scalar_one())


async def exists(rt: Runtime, table: str, row_id: str) -> bool:
    return await rows(rt, table, "id = :id", id=row_id) == 1


async def hold(rt: Runtime, world: World, target_type: str, target_id: str) -> dict[str, Any]:
    async with rt.db.unit_of_work() as uow:
        return await retention.place_hold(rt, uow, await actor(rt, world.admin_id), HoldIn(
            target_type=target_type, target_id=target_id, reason="case 2026-117"))  # type: ignore[arg-type]


@pytest.fixture
async def online(rt: Runtime, world: World) -> World:
    await set_status(rt, world.operator_id)
    return world


async def test_past_their_period_go_younger_and_held_stay(
    rt: Runtime, online: World, client: httpx.AsyncClient
) -> None:
    world = online
    clock.advance(-400 * DAY)  # chats and offline requests: 365 days by default
    old = await chat(client, rt, world)
    old_held_person = await chat(client, rt, world)
    old_held_chat = await chat(client, rt, world)
    old_offline = await leave_message(client, world)
    clock.reset()
    clock.advance(-100 * DAY)  # activity: 90 days
    await page_views(rt, world, old["visitor_id"], 3)
    await page_views(rt, world, old_held_person["visitor_id"], 2)
    clock.reset()
    young = await chat(client, rt, world)
    young_offline = await leave_message(client, world)
    await page_views(rt, world, young["visitor_id"], 1)
    await hold(rt, world, "visitor", old_held_person["visitor_id"])
    await hold(rt, world, "conversation", old_held_chat["conversation_id"])
    messages_before = await count(rt, "messages")

    report = await sweep.run(rt)

    totals = report.totals()
    assert totals["chats"] == 1
    assert totals["offline"] == 1
    assert totals["activity"] == 3
    assert not await exists(rt, "conversations", old["conversation_id"])
    assert await rows(rt, "messages", "conversation_id = :c", c=old["conversation_id"]) == 0
    assert await count(rt, "messages") < messages_before
    assert not await exists(rt, "offline_requests", old_offline["id"])
    for kept in (old_held_person, old_held_chat, young):
        assert await exists(rt, "conversations", kept["conversation_id"])
    assert await exists(rt, "offline_requests", young_offline["id"])
    assert await rows(rt, "activity_pages", "visitor_id = :v", v=old_held_person["visitor_id"]) == 2
    assert await rows(rt, "activity_pages", "visitor_id = :v", v=young["visitor_id"]) == 1
    assert await rows(rt, "audit_events", "action = 'retention.swept'") == 3  # one batch per category here
    async with rt.db.unit_of_work(readonly=True) as uow:  # the swept chat still counts in the statistics
        assert (await erasure_stats.totals(uow, world.workspace_id))["chats"] == 1

    # The erasure helper's questions.
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await retention.held_visitor_ids(
            uow, world.workspace_id, [old_held_person["visitor_id"], young["visitor_id"]]
        ) == {old_held_person["visitor_id"]}
        assert await retention.held_conversation_ids(
            uow, world.workspace_id, [old_held_chat["conversation_id"], young["conversation_id"]]
        ) == {old_held_chat["conversation_id"]}

    # Lifted: the next sweep takes them (the lifting audited); the young chat still stays.
    async with rt.db.unit_of_work() as uow:
        holds = await retention.holds_view(rt, uow, await actor(rt, world.admin_id))
        for h in holds:
            await retention.lift_hold(rt, uow, await actor(rt, world.admin_id), h["id"], LiftIn(reason="case closed"))
    assert await rows(rt, "audit_events", "action = 'retention.hold_lifted'") == 2
    again = await sweep.run(rt)
    assert again.totals()["chats"] == 2
    assert again.totals()["activity"] == 2
    assert await exists(rt, "conversations", young["conversation_id"])
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await audit.verify(rt, uow)).ok


async def test_more_rows_than_a_batch(rt: Runtime, world: World) -> None:
    async with rt.db.unit_of_work() as uow:
        visitor = await factories_visitor(rt, uow, world)
    clock.advance(-100 * DAY)
    await page_views(rt, world, visitor, 1203)
    clock.reset()
    await page_views(rt, world, visitor, 4)
    seen: list[int] = []
    report = await sweep.run(rt, batch_size=500, progress=lambda line: seen.append(line.removed))
    assert report.totals()["activity"] == 1203
    assert seen[:3] == [500, 1000, 1203]  # progress after each batch
    assert await rows(rt, "activity_pages") == 4
    assert await rows(rt, "audit_events", "action = 'retention.swept'") == 3


async def factories_visitor(rt: Runtime, uow: Any, world: World) -> str:
    from confide.visitors import service as visitors
    from confide.workspaces import service as workspaces

    site = await workspaces.get_site(uow, world.site_id)
    assert site is not None
    made = await visitors.create_visitor(rt, uow, site, {"name": "Vi"}, {})
    return str(made.id)


async def test_dry_run_counts_the_same_and_deletes_nothing(
    rt: Runtime, online: World, client: httpx.AsyncClient
) -> None:
    world = online
    clock.advance(-800 * DAY)
    first = await chat(client, rt, world)
    await prospect(rt, world)
    await leave_message(client, world)
    clock.reset()
    await page_views(rt, world, first["visitor_id"], 0)
    before = {t: await count(rt, t) for t in ("conversations", "messages", "offline_requests", "prospects")}

    dry = await sweep.run(rt, dry_run=True)
    assert dry.dry_run
    assert {t: await count(rt, t) for t in before} == before
    assert await rows(rt, "audit_events", "action = 'retention.swept'") == 0

    real = await sweep.run(rt)
    assert dry.totals() == real.totals()
    assert real.totals()["chats"] == 1
    assert real.totals()["prospects"] == 1
    assert real.totals()["offline"] == 1


async def test_site_override_beats_workspace_which_beats_default(
    rt: Runtime, online: World, client: httpx.AsyncClient
) -> None:
    world = online
    async with rt.db.unit_of_work() as uow:
        second = await factories.site(uow, workspace_id=world.workspace_id, name="Second",
                                      allowed_origins=[world.origin])
        dept = await factories.department(uow, workspace_id=world.workspace_id, site_id=second.id)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        from confide.users import accounts  # noqa: F401 - the operator joins the second site's department

        await uow.session.execute(text("insert into operator_departments (operator_id, department_id) "
                                       "values (:o, :d)"), {"o": world.operator_id, "d": dept.id})
    clock.advance(-60 * DAY)
    on_first = await chat(client, rt, world)
    on_second = await chat(client, rt, world, site_key=second.site_key)
    clock.reset()
    # The workspace keeps chats 400 days, the first site 30: the first site's 60-day-old chat goes,
    # the second site's stays (the workspace's period, not the default's 365 either).
    async with rt.db.unit_of_work() as uow:
        await retention.set_policy(rt, uow, admin, PolicyIn(scope="workspace", category="chats", days=400))
        await retention.set_policy(rt, uow, admin, PolicyIn(scope=world.site_id, category="chats", days=30))
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await retention.effective(rt, uow, world.workspace_id, world.site_id, retention.Category.CHATS) == 30
        assert await retention.effective(rt, uow, world.workspace_id, second.id, retention.Category.CHATS) == 400
    assert await rows(rt, "audit_events", "action = 'retention.policy_set'") == 2
    await sweep.run(rt)
    assert not await exists(rt, "conversations", on_first["conversation_id"])
    assert await exists(rt, "conversations", on_second["conversation_id"])
    # The workspace's override removed, a site override of 0 (forever) on the second site: still kept
    # 10 years on; removing that too falls back to the default 365 days.
    async with rt.db.unit_of_work() as uow:
        await retention.set_policy(rt, uow, admin, PolicyIn(scope="workspace", category="chats", days=None))
        await retention.set_policy(rt, uow, admin, PolicyIn(scope=second.id, category="chats", days=0))
    clock.advance(3650 * DAY)
    await sweep.run(rt)
    assert await exists(rt, "conversations", on_second["conversation_id"])
    async with rt.db.unit_of_work() as uow:
        await retention.set_policy(rt, uow, admin, PolicyIn(scope=second.id, category="chats", days=None))
    await sweep.run(rt)
    assert not await exists(rt, "conversations", on_second["conversation_id"])


async def test_consent_records_go_six_years_after_the_last_change(
    rt: Runtime, online: World, client: httpx.AsyncClient
) -> None:
    world = online
    clock.advance(-7 * 365 * DAY)
    gone = await start_chat(client, world)
    changed_later = await start_chat(client, world)
    clock.reset()
    clock.advance(-2 * 365 * DAY)
    async with rt.db.unit_of_work() as uow:
        from confide.consent import ledger as consent_ledger

        await consent_ledger.record(rt, uow, workspace_id=world.workspace_id, subject_id=changed_later["visitor_id"],
                                    purpose="marketing", granted=False, source="widget", site_id=world.site_id)
    clock.reset()
    assert await rows(rt, "consent_records", "subject_id = :s", s=gone["visitor_id"]) > 0
    old_total = await rows(rt, "consent_records", "subject_id = :s", s=changed_later["visitor_id"])
    report = await sweep.run(rt)
    assert await rows(rt, "consent_records", "subject_id = :s", s=gone["visitor_id"]) == 0
    assert await rows(rt, "consent_records", "subject_id = :s", s=changed_later["visitor_id"]) == old_total
    assert report.totals()["consent"] > 0


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_two_nodes_at_once_delete_each_row_once(rt: Runtime, world: World) -> None:
    async with rt.db.unit_of_work() as uow:
        visitor = await factories_visitor(rt, uow, world)
    clock.advance(-100 * DAY)
    await page_views(rt, world, visitor, 2100)
    clock.reset()
    other = build_runtime(rt.settings, broker=MemoryBroker())
    try:
        one, two = await asyncio.gather(sweep.run(rt, batch_size=300), sweep.run(other, batch_size=300))
    finally:
        await other.close()
    assert one.totals()["activity"] + two.totals()["activity"] == 2100
    assert await rows(rt, "activity_pages") == 0
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await audit.verify(rt, uow)).ok


async def test_the_scheduler_sweeps_one_batch_per_tick(rt: Runtime, world: World) -> None:
    rt.settings.retention_batch = 40
    async with rt.db.unit_of_work() as uow:
        visitor = await factories_visitor(rt, uow, world)
    clock.advance(-100 * DAY)
    await page_views(rt, world, visitor, 100)
    clock.reset()
    done = [await scheduler.tick(rt) for _ in range(4)]
    assert [d["retention_swept"] for d in done if d is not None] == [40, 40, 20, 0]
    # Nothing left: not due again before CONFIDE_RETENTION_EVERY_S.
    clock.advance(-100 * DAY)
    await page_views(rt, world, visitor, 5)
    clock.reset()
    tick = await scheduler.tick(rt)
    assert tick is not None
    assert tick["retention_swept"] == 0
    clock.advance(timedelta(seconds=rt.settings.retention_every_s + 1))
    tick = await scheduler.tick(rt)
    assert tick is not None
    assert tick["retention_swept"] == 5


async def test_audit_retention_keeps_the_chain_provable(rt: Runtime, world: World) -> None:
    rt.settings.audit_retention_days = 30
    async with rt.db.unit_of_work() as uow:
        await factories_visitor(rt, uow, world)
        await audit.record(rt, uow, "test.old", actor_type="system")
    before = await count(rt, "audit_events")
    clock.advance(40 * DAY)
    async with rt.db.unit_of_work() as uow:
        await audit.record(rt, uow, "test.young", actor_type="system")
    dry = await sweep.run(rt, dry_run=True)
    assert dry.totals()["audit"] == before
    real = await sweep.run(rt)
    assert real.totals()["audit"] == before
    assert await rows(rt, "audit_events", "action = 'test.young'") == 1
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await audit.verify(rt, uow)).ok


async def test_cli_exit_codes_and_summary(rt: Runtime, world: World) -> None:
    async with rt.db.unit_of_work() as uow:
        visitor = await factories_visitor(rt, uow, world)
    clock.advance(-100 * DAY)
    await page_views(rt, world, visitor, 7)
    clock.reset()
    dry = await run_cli(rt.settings, "retention", "run", "--dry-run", "--workspace", world.workspace_id)
    assert dry.exit_code == 0, dry.output
    assert "would delete" in dry.output
    line = next(x for x in dry.stdout.splitlines() if x.startswith("activity"))
    assert line.split()[-1] == "7"
    assert "90 days" in line
    assert await rows(rt, "activity_pages") == 7
    done = await run_cli(rt.settings, "retention", "run")
    assert done.exit_code == 0, done.output
    assert next(x for x in done.stdout.splitlines() if x.startswith("total")).split()[-1] == "7"
    assert await rows(rt, "activity_pages") == 0
    unknown = await run_cli(rt.settings, "retention", "run", "--workspace", "no-such-workspace")
    assert unknown.exit_code == 1
    assert "workspace not found" in unknown.output
    bad = await run_cli(rt.settings, "retention", "run", "--workspace", "x; drop table")
    assert bad.exit_code == 2
    assert "workspace id" in bad.output


async def test_holds_refused_twice_and_foreign_targets_are_not_found(
    rt: Runtime, online: World, client: httpx.AsyncClient
) -> None:
    from confide.core.errors import Invalid, NotFound
    from tests.helpers_api import other_workspace

    world = online
    started = await start_chat(client, world)
    await hold(rt, world, "visitor", started["visitor_id"])
    with pytest.raises(Invalid):
        await hold(rt, world, "visitor", started["visitor_id"])
    other = await other_workspace(rt)
    with pytest.raises(NotFound):
        await hold(rt, other, "conversation", started["conversation_id"])
    with pytest.raises(NotFound):
        await hold(rt, other, "visitor", started["visitor_id"])
