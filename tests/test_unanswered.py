"""No stranded visitor: a waiting visitor is told when nobody can answer (and why), may leave a
message instead (what they wrote becomes the offline request), and a visitor whose sockets are
gone leaves the queue; an abandoned active chat is closed and frees its operator's slot.
Everything here runs in the periodic job; time moves with ``confide.core.clock``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from confide.auth.actors import VisitorActor
from confide.chats import service as chats
from confide.chats.schemas import Draft, StartConversationIn
from confide.core import clock, crypto
from confide.core.errors import Conflict, Invalid
from confide.core.runtime import Runtime
from confide.offline import service as offline
from confide.offline.schemas import OfflineFilters
from confide.realtime import events
from confide.realtime.presence import Presence
from confide.routing import service as routing
from confide.worker import scheduler
from confide.workspaces.models import Site
from tests import factories
from tests import wsclient as wc
from tests.conftest import Live, World
from tests.helpers_api import actor, visitor_actor
from tests.test_routing import (
    Team,
    accept,
    conv,
    make_team,
    new_chat,
    offered,
    positions,
    queue_moves,
    rank,
    system_lines,
)


async def watch(rt: Runtime, team: Team, started: dict[str, Any]) -> None:
    await rt.broker.subscribe(events.conversation_topic(started["conversation_id"]))


def statuses(team: Team, started: dict[str, Any]) -> list[dict[str, Any]]:
    """The visitor views sent in ``status`` frames of this conversation, in order."""
    topic = events.conversation_topic(started["conversation_id"])
    return [p["conversation"] for t, p in team.events if t == topic and p["type"] == "status"]


async def tick(rt: Runtime) -> dict[str, int]:
    done = await scheduler.tick(rt)
    assert done is not None
    return done


async def visitor_writes(rt: Runtime, started: dict[str, Any], *texts: str) -> None:
    async with rt.db.unit_of_work() as uow:
        await chats.store_messages(rt, uow, [
            Draft(conversation_id=started["conversation_id"], sender="visitor", sender_id=started["visitor_id"],
                  sender_name=None, client_id=crypto.new_id(), text=text) for text in texts])


async def keep_visitor_present(rt: Runtime, started: dict[str, Any]) -> Presence:
    node = Presence(rt)
    await node.visitor_connected(started["conversation_id"])
    return node


# ---------------------------------------------------------------- unanswered
async def test_no_operator_left_tells_the_waiting_visitor(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=1, online=False)
    (op_id,) = team.ops
    node = Presence(rt)
    await node.operator_connected(op_id)
    async with rt.db.unit_of_work() as uow:
        await routing.set_status(rt, uow, await actor(rt, op_id), "online")
    chat = await new_chat(rt, team)
    await watch(rt, team, chat)
    visitor = await keep_visitor_present(rt, chat)
    assert (await tick(rt))["unanswered"] == 0
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await chats.visitor_view(uow, await conv(rt, chat)))["unanswered"] is None
    # Her node dies: once the heartbeat lapses nobody can answer, and the visitor is told once.
    clock.advance(timedelta(seconds=rt.settings.presence_ttl_s + 1))
    await visitor.tick()
    assert (await tick(rt))["unanswered"] == 1
    assert (await tick(rt))["unanswered"] == 0
    told = [s["unanswered"] for s in statuses(team, chat)]
    assert told == [{"reason": "no_operator", "since": clock.iso(clock.now())}]
    # She is back (a console on a restarted node): the visitor is told that too (null).
    await Presence(rt).operator_connected(op_id)
    await tick(rt)
    assert statuses(team, chat)[-1]["unanswered"] is None
    assert await offered(rt, chat) == op_id


async def test_nobody_accepting_in_time_is_no_answer(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=2, offer_timeout_s=30)
    chat = await new_chat(rt, team)
    await watch(rt, team, chat)
    visitor = await keep_visitor_present(rt, chat)
    for _ in range(int(rt.settings.unanswered_after_s // 30)):
        clock.advance(timedelta(seconds=31))
        await visitor.tick()
        await tick(rt)
    assert (await conv(rt, chat)).unanswered_reason == "no_answer"
    assert statuses(team, chat)[-1]["unanswered"]["reason"] == "no_answer"
    assert (await conv(rt, chat)).offered_to is not None  # still offered, in turn, all the while
    assert len(team.sent_to(team.ops[0], "offer")) >= 2
    taken = await accept(rt, team.ops[1], chat)
    assert taken.unanswered_reason is None
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await chats.visitor_view(uow, taken))["unanswered"] is None


async def test_outside_business_hours_is_closed_hours(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=1)  # Monday 10:00 UTC
    chat = await new_chat(rt, team)
    await watch(rt, team, chat)
    await keep_visitor_present(rt, chat)
    async with rt.db.unit_of_work() as uow:
        site = await uow.session.get(Site, world.site_id)
        assert site is not None
        site.business_hours = {"mon": [["09:00", "10:00"]]}
    await tick(rt)
    assert statuses(team, chat)[-1]["unanswered"]["reason"] == "closed_hours"


# ---------------------------------------------------------------- leave a message
async def test_leaving_a_message_turns_the_chat_into_an_offline_request(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=1)
    chat = await new_chat(rt, team)
    await watch(rt, team, chat)
    await visitor_writes(rt, chat, "Hello?", "Is anyone there?")
    async with rt.db.unit_of_work() as uow:
        request_id = await routing.leave_message(rt, uow, visitor_actor(world, chat), chat["conversation_id"],
                                                 phone="+49 30 1234567", message="Please call me after 5.")
    stored = await conv(rt, chat)
    assert stored.status == "closed"
    assert stored.closed_by == "visitor"
    assert (await system_lines(rt, chat))[-1] == "The visitor left a message instead of waiting."
    assert statuses(team, chat)[-1]["status"] == "closed"
    assert [w["conversation_id"] for w in team.sent_to(team.ops[0], "offer_withdrawn")] == [chat["conversation_id"]]
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work(readonly=True) as uow:
        found, total = await offline.search(rt, uow, admin, OfflineFilters())
    assert total == 1
    assert found[0]["id"] == request_id
    assert found[0]["message"] == "Hello?\nIs anyone there?\nPlease call me after 5."
    assert found[0]["visitor"]["id"] == chat["visitor_id"]  # the same data subject
    assert found[0]["visitor"]["email"] == "visitor@example.com"
    assert found[0]["visitor"]["phone"] == "+49 30 1234567"
    assert found[0]["department"]["id"] == team.department_id


async def _site_without_contact(rt: Runtime, world: World) -> tuple[str, dict[str, Any]]:
    async with rt.db.unit_of_work() as uow:
        site = await factories.site(uow, workspace_id=world.workspace_id, name="Blog",
                                    prechat_fields=[{"key": "name", "label": "Name", "type": "text",
                                                     "required": True}])
        dept = await factories.department(uow, workspace_id=world.workspace_id, site_id=site.id)
        await factories.operator(rt, uow, workspace_id=world.workspace_id, email="blog@shop.example",
                                 department_ids=[dept.id], status="online")
        started = await routing.start_chat(rt, uow, site, StartConversationIn(fields={"name": "Ana"}))
    return site.id, started


async def test_leaving_a_message_needs_a_way_to_answer(rt: Runtime, world: World) -> None:
    site_id, started = await _site_without_contact(rt, world)
    who = VisitorActor(visitor_id=started["visitor_id"], site_id=site_id, workspace_id=world.workspace_id)
    with pytest.raises(Invalid, match="an e-mail address or a phone number is needed so that we can answer"):
        async with rt.db.unit_of_work() as uow:
            await routing.leave_message(rt, uow, who, started["conversation_id"], message="Call me")
    for bad, error in (({"email": "not-an-address"}, "not a valid e-mail address"),
                       ({"phone": "call me maybe"}, "not a valid phone number"),
                       ({"email": 42}, "email must be text"),
                       ({"email": "ana@example.com", "message": "x" * 4001}, "at most 4000 characters"),
                       ({"email": "ana@example.com", "message": ["list"]}, "at most 4000 characters")):
        with pytest.raises(Invalid, match=error):
            async with rt.db.unit_of_work() as uow:
                await routing.leave_message(rt, uow, who, started["conversation_id"], **bad)
    assert (await conv(rt, started)).status == "queued"  # nothing was changed by the refusals
    async with rt.db.unit_of_work() as uow:
        assert await routing.leave_message(rt, uow, who, started["conversation_id"], email="Ana@Example.com")
    assert (await conv(rt, started)).status == "closed"


async def test_leaving_a_message_is_only_for_a_waiting_chat(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=1)
    chat = await new_chat(rt, team)
    await accept(rt, team.ops[0], chat)
    with pytest.raises(Conflict, match="an operator has joined"):
        async with rt.db.unit_of_work() as uow:
            await routing.leave_message(rt, uow, visitor_actor(world, chat), chat["conversation_id"])


# ---------------------------------------------------------------- visitors who left
async def test_a_visitor_gone_from_the_queue_leaves_it(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=1, strategy="manual")
    gone, staying = await new_chat(rt, team, "Gone"), await new_chat(rt, team, "Staying")
    await watch(rt, team, staying)
    await rt.broker.subscribe(events.department_topic(team.department_id))
    node = await keep_visitor_present(rt, gone)
    other_node = await keep_visitor_present(rt, staying)  # this visitor's socket is on another node
    node.visitor_disconnected(gone["conversation_id"])  # the tab closed
    clock.advance(timedelta(seconds=rt.settings.visitor_abandon_s - 1))
    await other_node.tick()
    assert (await tick(rt))["abandoned"] == 0  # the heartbeat expired less than visitor_abandon_s ago
    clock.advance(timedelta(seconds=rt.settings.presence_ttl_s + 2))
    await other_node.tick()
    assert (await tick(rt))["abandoned"] == 1
    left = await conv(rt, gone)
    assert left.status == "closed"
    assert left.closed_by == "abandoned"
    assert await system_lines(rt, gone) == ["The visitor left the queue."]
    assert (await conv(rt, staying)).status == "queued"
    assert queue_moves(team) == [await rank(rt, gone)]  # the queue moved up: one event for all
    assert await positions(rt, [staying]) == [1]


async def test_an_abandoned_active_chat_is_closed_and_frees_the_slot(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=1, max_chats=1)
    (op_id,) = team.ops
    first = await new_chat(rt, team)
    await accept(rt, op_id, first)
    await watch(rt, team, first)
    waiting = await new_chat(rt, team)
    node = await keep_visitor_present(rt, waiting)
    assert await offered(rt, waiting) is None  # no free slot
    # The first visitor never came back (never a socket since): after visitor_abandon_s, they left.
    clock.advance(timedelta(seconds=rt.settings.visitor_abandon_s + 1))
    await node.tick()
    assert (await tick(rt))["abandoned"] == 1
    closed = await conv(rt, first)
    assert closed.status == "closed"
    assert closed.closed_by == "abandoned"
    assert (await system_lines(rt, first))[-1] == "The visitor left."
    topic = events.conversation_topic(first["conversation_id"])
    seen = [p["conversation"]["status"] for t, p in team.events if t == topic and p["type"] == "chat"]
    assert seen[-1] == "closed"  # the operator's console gets the chat, closed
    assert await offered(rt, waiting) == op_id  # the slot went to the next waiting chat
    assert (await conv(rt, waiting)).status == "queued"


# ---------------------------------------------------------------- the protocol
async def test_leave_message_frame(rt: Runtime, world: World, live: Live) -> None:
    async with rt.db.unit_of_work() as uow:
        await factories.present(uow, world.operator_id)
    async with rt.db.unit_of_work() as uow:
        await routing.set_status(rt, uow, await actor(rt, world.operator_id), "online")
    chat = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin)
    ws, welcome = await wc.visitor_hello(live=live, chat=chat)
    assert welcome["conversation"]["unanswered"] is None
    await wc.send(ws=ws, frame={"type": "message", "client_id": "m1", "text": "Where is my order?"})
    await wc.recv_until(ws=ws, type="ack")
    await wc.send(ws=ws, frame={"type": "leave_message", "client_id": "l1", "message": "x" * 4001})
    error = await wc.recv_until(ws=ws, type="error")
    assert error["code"] == "invalid"
    assert error["ref"] == "l1"
    await wc.send(ws=ws, frame={"type": "leave_message", "client_id": "l2", "message": "Order A-17."})
    status = await wc.recv_until(ws=ws, type="status", where=lambda f: f["conversation"]["status"] == "closed")
    assert status["conversation"]["unanswered"] is None
    left = await wc.recv_until(ws=ws, type="message_left")
    assert set(left) == {"type", "offline_request_id"}
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work(readonly=True) as uow:
        found, _ = await offline.search(rt, uow, admin, OfflineFilters())
    assert [f["id"] for f in found] == [left["offline_request_id"]]
    assert found[0]["message"] == "Where is my order?\nOrder A-17."
    await wc.send(ws=ws, frame={"type": "leave_message", "client_id": "l3"})
    again = await wc.recv_until(ws=ws, type="error")
    assert again["code"] == "conflict"
    await ws.close()
    await asyncio.sleep(0)


async def test_the_waiting_visitor_gets_a_status_frame_when_nobody_can_answer(
    rt: Runtime, world: World, live: Live
) -> None:
    clock.freeze(clock.now())
    console = Presence(rt)  # Mia's console, on a node that will crash
    await console.operator_connected(world.operator_id)
    async with rt.db.unit_of_work() as uow:
        await routing.set_status(rt, uow, await actor(rt, world.operator_id), "online")
    chat = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin)
    ws, welcome = await wc.visitor_hello(live=live, chat=chat)
    assert welcome["conversation"]["unanswered"] is None
    clock.advance(timedelta(seconds=rt.settings.presence_ttl_s + 1))
    await live.app.state.confide.presence.tick()  # the visitor's own node is alive
    await tick(rt)
    status = await wc.recv_until(ws=ws, type="status", where=lambda f: f["conversation"]["unanswered"] is not None)
    assert status["conversation"]["unanswered"] == {"reason": "no_operator", "since": clock.iso(clock.now())}
    assert status["conversation"]["status"] == "queued"
    await ws.close()


async def test_the_last_operator_going_offline_tells_the_waiting_visitor_at_once(
    rt: Runtime, world: World
) -> None:
    """No sweep needed: the status change itself re-examines the operator's departments."""
    team = await make_team(rt, world, size=1, online=False)
    (op_id,) = team.ops
    await Presence(rt).operator_connected(op_id)
    async with rt.db.unit_of_work() as uow:
        await routing.set_status(rt, uow, await actor(rt, op_id), "online")
    chat = await new_chat(rt, team)
    await watch(rt, team, chat)
    async with rt.db.unit_of_work() as uow:
        await routing.set_status(rt, uow, await actor(rt, op_id), "away")
    assert (await conv(rt, chat)).unanswered_reason == "no_operator"
    told = [s["unanswered"] for s in statuses(team, chat)]
    assert told == [{"reason": "no_operator", "since": clock.iso(clock.now())}]
    async with rt.db.unit_of_work() as uow:
        await routing.set_status(rt, uow, await actor(rt, op_id), "online")
    assert (await conv(rt, chat)).unanswered_reason is None
    assert statuses(team, chat)[-1]["unanswered"] is None
