"""Presence across nodes: heartbeats with a time-to-live decide who is online, so a crashed or
restarted node never leaves a ghost operator; the chosen status is kept across visits.
Time moves with ``confide.core.clock``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, select

from confide.core import clock
from confide.core.runtime import Runtime
from confide.realtime.presence import Presence
from confide.routing import service as routing
from confide.users import operators as user_operators
from confide.users.models import Presence as PresenceRow
from confide.workspaces.models import Site
from tests import factories
from tests import wsclient as wc
from tests.conftest import Live, World
from tests.helpers_api import actor
from tests.test_routing import make_team, new_chat, offered

START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


async def available(rt: Runtime, world: World) -> bool:
    async with rt.db.unit_of_work(readonly=True) as uow:
        site = await uow.session.get(Site, world.site_id)
        assert site is not None
        config = await routing.widget_config(uow, site)
    return bool(config["available"])


async def choose(rt: Runtime, operator_id: str, status: str) -> None:
    who = await actor(rt, operator_id)
    async with rt.db.unit_of_work() as uow:
        await routing.set_status(rt, uow, who, status)


async def rows(rt: Runtime) -> list[tuple[str, str, str]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        found = await uow.session.execute(select(PresenceRow.kind, PresenceRow.subject_id, PresenceRow.node_id))
        return sorted((r.kind, r.subject_id, r.node_id) for r in found)


async def test_online_needs_a_live_console_and_a_lapsed_heartbeat_is_offline(rt: Runtime, world: World) -> None:
    clock.freeze(START)
    node = Presence(rt)
    await choose(rt, world.operator_id, "online")  # chosen, but no console anywhere
    assert not await available(rt, world)
    await node.operator_connected(world.operator_id)
    assert await available(rt, world)
    # The node keeps beating: still online long after the TTL.
    for _ in range(10):
        clock.advance(timedelta(seconds=rt.settings.presence_heartbeat_s))
        await node.tick()
    assert await available(rt, world)
    # The node crashes (no more beats, nothing deleted): offline once the TTL has passed.
    clock.advance(timedelta(seconds=rt.settings.presence_ttl_s - 1))
    assert await available(rt, world)
    clock.advance(timedelta(seconds=2))
    assert not await available(rt, world)
    async with rt.db.unit_of_work(readonly=True) as uow:  # her chosen status is untouched
        op = await user_operators.get_operator(uow, world.operator_id)
        assert op is not None
        assert op.status == "online"


async def test_a_ghost_is_never_offered_a_chat(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=2, online=False)
    a, b = team.ops
    node = Presence(rt)
    for op in (a, b):
        await node.operator_connected(op)
        await choose(rt, op, "online")
    crashed = Presence(rt)  # b's console lives on a node that then dies
    node.operator_disconnected(b)
    await crashed.operator_connected(b)
    clock.advance(timedelta(seconds=rt.settings.presence_ttl_s + 1))
    await node.tick()  # a's node is alive and beats; the crashed node does not
    chats_ = [await new_chat(rt, team) for _ in range(3)]
    assert [await offered(rt, c) for c in chats_] == [a, a, a]
    assert team.sent_to(b, "offer") == []


async def test_a_node_stopping_cleanly_takes_its_operators_offline_at_once(rt: Runtime, world: World) -> None:
    clock.freeze(START)
    node, other = Presence(rt), Presence(rt)
    await choose(rt, world.operator_id, "online")
    await node.operator_connected(world.operator_id)
    await other.visitor_connected("c" * 22)
    assert await available(rt, world)
    await node.stop()  # a restart: no TTL to wait for
    assert not await available(rt, world)
    assert await rows(rt) == [("visitor", "c" * 22, other.node_id)]  # other nodes' rows stay


async def test_a_console_on_any_node_keeps_the_operator_online(rt: Runtime, world: World) -> None:
    clock.freeze(START)
    first, second = Presence(rt), Presence(rt)
    await choose(rt, world.operator_id, "online")
    await first.operator_connected(world.operator_id)
    await second.operator_connected(world.operator_id)
    first.operator_disconnected(world.operator_id)
    for _ in range(6):
        clock.advance(timedelta(seconds=rt.settings.presence_heartbeat_s))
        await first.tick()
        await second.tick()
    assert await available(rt, world)
    assert [r[2] for r in await rows(rt) if r[2] == first.node_id] == [first.node_id]  # lapsed, not yet purged


async def test_coming_online_routes_the_waiting_chats(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=1, online=False)
    (op_id,) = team.ops
    async with rt.db.unit_of_work() as uow:  # somebody else online on the site: the widget takes chats
        await factories.present(uow, world.admin_id)
    await choose(rt, world.admin_id, "online")
    await choose(rt, op_id, "online")  # chosen online earlier, console closed since
    chat = await new_chat(rt, team)
    assert await offered(rt, chat) is None
    await Presence(rt).operator_connected(op_id)  # the console opens again
    assert await offered(rt, chat) == op_id


async def test_a_heartbeat_is_one_statement_for_all_sockets(rt: Runtime, world: World) -> None:
    node = Presence(rt)
    for op in (world.operator_id, world.admin_id):
        await node.operator_connected(op)
    for conv_id in ("a" * 22, "b" * 22, "c" * 22):
        await node.visitor_connected(conv_id)
    await node.visitor_connected("a" * 22)  # a second tab of the same visitor
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.split()[0].upper() not in ("BEGIN", "COMMIT"):
            statements.append(statement)

    engine = rt.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        await node.tick()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(statements) == 1, statements
    assert statements[0].upper().startswith("INSERT INTO PRESENCE")
    assert len(await rows(rt)) == 5


async def test_the_chosen_status_is_kept_across_visits(rt: Runtime, world: World, live: Live) -> None:
    ws, welcome, cookie = await wc.operator_connect(live=live, email=world.operator_email)
    assert welcome["operator"]["status"] == "offline"
    await wc.go_online(ws=ws, status="away")
    await ws.close()
    # Long after the tab closed (no 15-second reset to offline any more), a new visit remembers it.
    await asyncio.sleep(0.1)
    clock.advance(timedelta(minutes=20))  # within the session's idle timeout (30 minutes)
    ws2, welcome2, _ = await wc.operator_connect(live=live, cookie=cookie)
    assert welcome2["operator"]["status"] == "away"
    await wc.go_online(ws=ws2, status="online")
    await ws2.close()
    ws3, welcome3, _ = await wc.operator_connect(live=live, cookie=cookie)  # a reconnect does not reset it
    assert welcome3["operator"]["status"] == "online"
    assert await available(rt, world)  # and her console counts as present
    await ws3.close()


async def test_the_console_socket_beats_and_lapses(rt: Runtime, world: World, live: Live) -> None:
    clock.freeze(START)
    presence: Presence = live.app.state.confide.presence
    ws, _, _ = await wc.operator_connect(live=live, email=world.operator_email)
    await wc.go_online(ws=ws)
    assert (("operator", world.operator_id, presence.node_id)) in await rows(rt)
    assert await available(rt, world)
    await ws.close()
    for _ in range(100):  # the server notices the close
        if not presence.operators:
            break
        await asyncio.sleep(0.02)
    assert not presence.operators
    assert await available(rt, world)  # a reload within the TTL keeps her present
    clock.advance(timedelta(seconds=rt.settings.presence_ttl_s + 1))
    await presence.tick()
    assert not await available(rt, world)


async def test_a_visitor_socket_beats(rt: Runtime, world: World, live: Live) -> None:
    clock.freeze(START)
    presence: Presence = live.app.state.confide.presence
    async with rt.db.unit_of_work() as uow:
        await factories.present(uow, world.operator_id)
    await choose(rt, world.operator_id, "online")
    chat = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin)
    ws, _ = await wc.visitor_hello(live=live, chat=chat)
    assert ("visitor", chat.conversation_id, presence.node_id) in await rows(rt)
    assert presence.visitors[chat.conversation_id] == 1
    await ws.close()
    for _ in range(100):
        if not presence.visitors:
            break
        await asyncio.sleep(0.02)
    assert not presence.visitors
