"""Routing at the service level: strategies, offers and their time-out, slots, accept, transfer,
close, status changes and queue positions. Time moves with ``confide.core.clock``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from confide.chats import service as chats
from confide.chats.models import Conversation, Message
from confide.chats.schemas import StartConversationIn
from confide.core import clock
from confide.core.errors import Conflict, Invalid, NotFound
from confide.core.runtime import Runtime
from confide.realtime import events
from confide.realtime.events import operator_topic
from confide.routing import service as routing
from confide.users import accounts as user_accounts
from confide.users.schemas import OperatorPatch
from confide.workspaces import service as workspaces
from confide.workspaces.models import Site
from confide.workspaces.schemas import DepartmentPatch
from tests import factories
from tests.conftest import World
from tests.helpers_api import actor, other_workspace, set_status, visitor_actor

START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


@dataclass
class Team:
    world: World
    department_id: str
    ops: list[str]  # operator ids, in the stable order round robin follows (by id)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def sent_to(self, operator_id: str, kind: str) -> list[dict[str, Any]]:
        return [p for t, p in self.events if t == operator_topic(operator_id) and p["type"] == kind]


async def make_team(rt: Runtime, world: World, *, strategy: str = "round_robin", size: int = 2,
                    max_chats: int = 5, offer_timeout_s: int = 30, online: bool = True,
                    max_chats_each: list[int] | None = None) -> Team:
    """A department of its own on the world's site with ``size`` operators (online unless told)."""
    clock.freeze(START)
    async with rt.db.unit_of_work() as uow:
        dept = await factories.department(uow, workspace_id=world.workspace_id, site_id=world.site_id,
                                          name=f"Team {strategy}", strategy=strategy,
                                          offer_timeout_s=offer_timeout_s)
        ops = [await factories.operator(rt, uow, workspace_id=world.workspace_id, email=f"op{i}@team.example",
                                        department_ids=[dept.id], status="online" if online else "offline")
               for i in range(size)]
        ops.sort(key=lambda op: op.id)
        for i, op in enumerate(ops):  # named and sized in round robin order
            op.name = f"Op {i}"
            op.max_chats = (max_chats_each or [max_chats] * size)[i]
    ids = [op.id for op in ops]
    team = Team(world, dept.id, ids)

    async def record(topic: str, payload: dict[str, Any]) -> None:
        team.events.append((topic, payload))

    rt.broker.set_handler(record)
    for op_id in ids:
        await rt.broker.subscribe(operator_topic(op_id))
    return team


async def new_chat(rt: Runtime, team: Team, name: str = "Ana Visitor", *, department_id: str | None = None,
                   step: timedelta = timedelta(seconds=1)) -> dict[str, Any]:
    """A visitor starts a chat (the service the widget calls); the clock moves on a little."""
    clock.advance(step)
    async with rt.db.unit_of_work() as uow:
        site = await uow.session.get(Site, team.world.site_id)
        assert site is not None
        return await routing.start_chat(rt, uow, site, StartConversationIn(
            fields={"name": name, "email": "visitor@example.com"},
            department_id=department_id or team.department_id))


async def conv(rt: Runtime, started: dict[str, Any]) -> Conversation:
    async with rt.db.unit_of_work(readonly=True) as uow:
        found = await uow.session.get(Conversation, started["conversation_id"])
        assert found is not None
        return found


async def offered(rt: Runtime, started: dict[str, Any]) -> str | None:
    return (await conv(rt, started)).offered_to


async def accept(rt: Runtime, operator_id: str, started: dict[str, Any]) -> Conversation:
    who = await actor(rt, operator_id)
    async with rt.db.unit_of_work() as uow:
        return await routing.accept(rt, uow, who, started["conversation_id"])


async def expire(rt: Runtime) -> int:
    async with rt.db.unit_of_work() as uow:
        return await routing.expire_offers(rt, uow)


async def close(rt: Runtime, operator_id: str, started: dict[str, Any]) -> None:
    who = await actor(rt, operator_id)
    async with rt.db.unit_of_work() as uow:
        await routing.close_by_operator(rt, uow, who, started["conversation_id"])


async def system_lines(rt: Runtime, started: dict[str, Any]) -> list[str]:
    c = await conv(rt, started)
    async with rt.db.unit_of_work(readonly=True) as uow:
        messages = await chats.messages_after(rt, uow, c, 0)
    return [m["text"] for m in messages if m["sender"] == "system"]


# ---------------------------------------------------------------- strategies
async def test_round_robin_alternates(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world)
    a, b = team.ops
    started = [await new_chat(rt, team) for _ in range(4)]
    assert [await offered(rt, s) for s in started] == [a, b, a, b]
    # Each operator was told about exactly their offers, with the time they have.
    offers = team.sent_to(a, "offer")
    assert [o["conversation"]["id"] for o in offers] == [started[0]["conversation_id"],
                                                        started[2]["conversation_id"]]
    assert offers[0]["expires_at"] == "2026-11-30T10:00:31Z"
    assert offers[0]["conversation"]["visitor"]["name"] == "Ana Visitor"
    assert len(team.sent_to(b, "offer")) == 2


async def test_round_robin_skips_an_operator_who_is_not_online(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=3)
    a, b, c = team.ops
    await set_status(rt, b, "away")
    started = [await new_chat(rt, team) for _ in range(4)]
    assert [await offered(rt, s) for s in started] == [a, c, a, c]


async def test_least_busy_picks_the_operator_with_fewer_active_chats(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, strategy="least_busy", online=False)
    a, b = team.ops
    await set_status(rt, a)
    for _ in range(2):
        chat = await new_chat(rt, team)
        assert await offered(rt, chat) == a
        await accept(rt, a, chat)
    await set_status(rt, b)
    # a: 2 active, b: 0 -> b; then a: 2, b: 1 -> b.
    for _ in range(2):
        chat = await new_chat(rt, team)
        assert await offered(rt, chat) == b
        await accept(rt, b, chat)
    # A tie (2 and 2): the one assigned longest ago.
    chat = await new_chat(rt, team)
    assert await offered(rt, chat) == a


async def test_least_busy_tie_goes_to_the_operator_assigned_longest_ago(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, strategy="least_busy")
    a, b = team.ops
    first = await new_chat(rt, team)
    assert await offered(rt, first) == a  # never assigned either: stable order
    second = await new_chat(rt, team)
    assert await offered(rt, second) == b  # both 0 active; a was offered one more recently
    await accept(rt, a, first)
    clock.advance(timedelta(seconds=5))
    await accept(rt, b, second)
    third = await new_chat(rt, team)
    assert await offered(rt, third) == a  # 1 and 1 active; a accepted before b


async def test_manual_never_offers(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, strategy="manual")
    a, b = team.ops
    started = [await new_chat(rt, team) for _ in range(2)]
    for s in started:
        c = await conv(rt, s)
        assert c.status == "queued"
        assert c.offered_to is None
    clock.advance(timedelta(hours=1))
    assert await expire(rt) == 0
    await set_status(rt, a, "offline")
    await set_status(rt, a, "online")  # coming online does not offer either
    assert await offered(rt, started[0]) is None
    assert team.sent_to(a, "offer") == []
    assert team.sent_to(b, "offer") == []
    # Anyone of the department takes one from the queue.
    taken = await accept(rt, b, started[1])
    assert taken.status == "active"
    assert taken.operator_id == b


# ---------------------------------------------------------------- offers and time-outs
async def test_unaccepted_offer_moves_on_then_goes_round_again(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, offer_timeout_s=30)
    a, b = team.ops
    chat = await new_chat(rt, team)
    assert await offered(rt, chat) == a
    clock.advance(timedelta(seconds=29))
    assert await expire(rt) == 0
    assert await offered(rt, chat) == a
    clock.advance(timedelta(seconds=2))
    assert await expire(rt) == 1
    c = await conv(rt, chat)
    assert c.offered_to == b
    assert c.offered_history == [a, b]
    assert [w["conversation_id"] for w in team.sent_to(a, "offer_withdrawn")] == [chat["conversation_id"]]
    assert len(team.sent_to(b, "offer")) == 1
    # b lets it lapse too: everyone has been offered it once, so a new round starts, in turn: a again.
    clock.advance(timedelta(seconds=31))
    assert await expire(rt) == 1
    c = await conv(rt, chat)
    assert c.status == "queued"
    assert c.offered_to == a
    assert c.offered_history == [a]
    assert len(team.sent_to(a, "offer")) == 2
    assert len(team.sent_to(b, "offer_withdrawn")) == 1
    clock.advance(timedelta(seconds=31))
    assert await expire(rt) == 1
    assert await offered(rt, chat) == b
    assert len(team.sent_to(b, "offer")) == 2
    # Anyone of the department may still take it from the queue, even one not offered it now.
    taken = await accept(rt, a, chat)
    assert taken.status == "active"
    assert taken.operator_id == a
    assert len(team.sent_to(b, "offer_withdrawn")) == 2


async def test_a_lone_operator_is_offered_the_chat_again_after_letting_it_lapse(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=1, offer_timeout_s=10)
    (a,) = team.ops
    chat = await new_chat(rt, team)
    for round_ in range(1, 4):
        assert await offered(rt, chat) == a
        assert len(team.sent_to(a, "offer")) == round_
        clock.advance(timedelta(seconds=11))
        assert await expire(rt) == 1
    assert len(team.sent_to(a, "offer_withdrawn")) == 3


async def test_a_newcomer_is_offered_a_chat_everyone_else_let_lapse(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=2, offer_timeout_s=10)
    a, b = team.ops
    await set_status(rt, b, "offline")
    chat = await new_chat(rt, team)
    assert await offered(rt, chat) == a
    clock.advance(timedelta(seconds=11))
    assert await expire(rt) == 1
    assert await offered(rt, chat) == a  # a new round: a is the only one
    await set_status(rt, b, "online")
    assert await offered(rt, chat) == a  # the running offer stands
    clock.advance(timedelta(seconds=11))
    assert await expire(rt) == 1
    assert await offered(rt, chat) == b  # the newcomer, not offered it yet in this round


async def test_the_department_timeout_applies(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, offer_timeout_s=5)
    _, b = team.ops
    chat = await new_chat(rt, team)
    assert (await conv(rt, chat)).offer_expires_at == START + timedelta(seconds=6)  # 1 s step + 5 s
    clock.advance(timedelta(seconds=5))
    assert await expire(rt) == 1
    assert await offered(rt, chat) == b


# ---------------------------------------------------------------- who may be offered
async def test_away_offline_and_full_operators_are_never_offered(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=3, max_chats_each=[1, 5, 5])
    full, away, gone = team.ops
    await set_status(rt, away, "away")
    await set_status(rt, gone, "offline")
    first = await new_chat(rt, team)
    assert await offered(rt, first) == full
    # A pending offer holds the slot: full's only slot is promised, nobody else may be offered.
    second = await new_chat(rt, team)
    assert await offered(rt, second) is None
    await accept(rt, full, first)
    third = await new_chat(rt, team)
    assert await offered(rt, third) is None
    clock.advance(timedelta(minutes=10))
    await expire(rt)
    assert team.sent_to(away, "offer") == []
    assert team.sent_to(gone, "offer") == []
    assert len(team.sent_to(full, "offer")) == 1
    # Going online re-routes the waiting chats, oldest first.
    await set_status(rt, away, "online")
    assert await offered(rt, second) == away
    assert await offered(rt, third) == away


async def disable(rt: Runtime, world: World, operator_id: str) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await user_accounts.update_operator(rt, uow, admin, operator_id, OperatorPatch(disabled=True))


async def test_a_disabled_operator_is_never_offered(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world)
    a, b = team.ops
    await disable(rt, world, a)
    chats_ = [await new_chat(rt, team) for _ in range(2)]
    assert [await offered(rt, c) for c in chats_] == [b, b]


# ---------------------------------------------------------------- accept
async def test_accept(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world)
    a, _ = team.ops
    chat = await new_chat(rt, team)
    assert await offered(rt, chat) == a
    clock.advance(timedelta(seconds=3))
    taken = await accept(rt, a, chat)
    assert taken.status == "active"
    assert taken.operator_id == a
    assert taken.offered_to is None
    assert taken.accepted_at == clock.now()
    assert await system_lines(rt, chat) == ["Op 0 joined the chat."]
    assert [e["conversation"]["id"] for e in team.sent_to(a, "chat")] == [chat["conversation_id"]]
    # The visitor now sees the operator's name.
    async with rt.db.unit_of_work(readonly=True) as uow:
        view = await chats.visitor_view(uow, await conv(rt, chat))
    assert view["status"] == "active"
    assert view["operator"] == {"name": "Op 0"}
    assert view["queue_position"] is None


async def test_accepting_someone_elses_offer_withdraws_it(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world)
    a, b = team.ops
    chat = await new_chat(rt, team)
    assert await offered(rt, chat) == a
    taken = await accept(rt, b, chat)
    assert taken.operator_id == b
    assert [w["conversation_id"] for w in team.sent_to(a, "offer_withdrawn")] == [chat["conversation_id"]]


async def test_accepting_a_taken_chat_is_a_conflict(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world)
    a, b = team.ops
    chat = await new_chat(rt, team)
    await accept(rt, a, chat)
    with pytest.raises(Conflict, match="taken already"):
        await accept(rt, b, chat)
    with pytest.raises(Conflict, match="taken already"):
        await accept(rt, a, chat)
    c = await conv(rt, chat)
    assert c.operator_id == a
    assert await system_lines(rt, chat) == ["Op 0 joined the chat."]
    await close(rt, a, chat)
    with pytest.raises(Conflict, match="closed"):
        await accept(rt, b, chat)


async def test_accept_needs_a_free_slot_and_the_department(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, strategy="manual", max_chats_each=[1, 5])
    a, _ = team.ops
    first, second = await new_chat(rt, team), await new_chat(rt, team)
    await accept(rt, a, first)
    with pytest.raises(Conflict, match="maximum number of chats"):
        await accept(rt, a, second)
    # Mia is not in this department; another workspace's admin is not in this workspace.
    with pytest.raises(NotFound):
        await accept(rt, world.operator_id, second)
    other = await other_workspace(rt)
    with pytest.raises(NotFound):
        await accept(rt, other.admin_id, second)
    assert (await conv(rt, second)).status == "queued"


# ---------------------------------------------------------------- transfer
async def test_transfer_to_an_operator(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world)
    a, b = team.ops
    chat = await new_chat(rt, team)
    await accept(rt, a, chat)
    who = await actor(rt, a)
    async with rt.db.unit_of_work() as uow:
        moved = await routing.transfer(rt, uow, who, chat["conversation_id"], operator_id=b)
    assert moved.status == "active"
    assert moved.operator_id == b
    assert await system_lines(rt, chat) == ["Op 0 joined the chat.", "The chat was transferred to Op 1."]
    assert team.sent_to(a, "chat_removed") == [{"type": "chat_removed", "conversation_id": chat["conversation_id"],
                                                "reason": "transferred"}]
    assert team.sent_to(b, "chat")[-1]["conversation"]["operator_id"] == b
    # a no longer holds it: cannot transfer it again.
    with pytest.raises(NotFound):
        async with rt.db.unit_of_work() as uow:
            await routing.transfer(rt, uow, who, chat["conversation_id"], operator_id=b)


async def test_invalid_transfer_to_an_operator(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=3)
    a, b, c = team.ops
    chat = await new_chat(rt, team)
    await accept(rt, a, chat)
    other = await other_workspace(rt)
    await disable(rt, world, c)
    who = await actor(rt, a)
    attempts: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"operator_id": a}, Invalid, "choose another"),  # to oneself
        ({"operator_id": world.operator_id}, Invalid, "not in this chat's department"),  # Mia
        ({"operator_id": c}, Invalid, "choose another, active operator"),  # disabled
        ({"operator_id": other.operator_id}, NotFound, "operator not found"),  # another workspace
        ({"operator_id": "no-such-operator"}, NotFound, "operator not found"),
        ({"operator_id": b, "department_id": world.department_id}, Invalid, "to an operator or to a department"),
        ({}, Invalid, "to an operator or to a department"),
    ]
    for kwargs, error, message in attempts:
        with pytest.raises(error, match=message):
            async with rt.db.unit_of_work() as uow:
                await routing.transfer(rt, uow, who, chat["conversation_id"], **kwargs)
    c_ = await conv(rt, chat)
    assert c_.operator_id == a
    assert c_.status == "active"
    assert await system_lines(rt, chat) == ["Op 0 joined the chat."]


async def test_transfer_to_a_full_operator_is_a_conflict(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, max_chats_each=[5, 1])
    a, b = team.ops
    first, second = await new_chat(rt, team), await new_chat(rt, team)
    await accept(rt, a, first)
    await accept(rt, b, second)
    who = await actor(rt, a)
    with pytest.raises(Conflict, match="no free slot"):
        async with rt.db.unit_of_work() as uow:
            await routing.transfer(rt, uow, who, first["conversation_id"], operator_id=b)
    assert (await conv(rt, first)).operator_id == a


async def test_transfer_to_a_department(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world)
    a, _ = team.ops
    await set_status(rt, world.operator_id)  # Mia, in Support
    await rt.broker.subscribe(operator_topic(world.operator_id))
    chat = await new_chat(rt, team)
    await accept(rt, a, chat)
    who = await actor(rt, a)
    async with rt.db.unit_of_work() as uow:
        moved = await routing.transfer(rt, uow, who, chat["conversation_id"], department_id=world.department_id)
    assert moved.department_id == world.department_id
    assert moved.status == "queued"
    assert moved.operator_id is None
    assert moved.offered_to == world.operator_id  # routed in the new department at once
    assert moved.offered_history == [world.operator_id]
    assert "The chat was transferred to Support." in await system_lines(rt, chat)
    assert len(team.sent_to(world.operator_id, "offer")) == 1
    assert team.sent_to(a, "chat_removed")[0]["reason"] == "transferred"


async def test_transfer_to_a_department_of_another_site_or_workspace(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world)
    a, _ = team.ops
    chat = await new_chat(rt, team)
    await accept(rt, a, chat)
    async with rt.db.unit_of_work() as uow:
        blog = await factories.site(uow, workspace_id=world.workspace_id, name="Blog",
                                    allowed_origins=["https://blog.example"])
        blog_dept = await factories.department(uow, workspace_id=world.workspace_id, site_id=blog.id)
    other = await other_workspace(rt)
    who = await actor(rt, a)
    with pytest.raises(Invalid, match="another site"):
        async with rt.db.unit_of_work() as uow:
            await routing.transfer(rt, uow, who, chat["conversation_id"], department_id=blog_dept.id)
    with pytest.raises(NotFound):
        async with rt.db.unit_of_work() as uow:
            await routing.transfer(rt, uow, who, chat["conversation_id"], department_id=other.department_id)
    c = await conv(rt, chat)
    assert c.department_id == team.department_id
    assert c.operator_id == a
    assert await system_lines(rt, chat) == ["Op 0 joined the chat."]


async def test_transfer_of_a_closed_chat_is_a_conflict(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world)
    a, b = team.ops
    chat = await new_chat(rt, team)
    await accept(rt, a, chat)
    await close(rt, a, chat)
    admin = await actor(rt, world.admin_id)
    with pytest.raises(Conflict, match="closed"):
        async with rt.db.unit_of_work() as uow:
            await routing.transfer(rt, uow, admin, chat["conversation_id"], operator_id=b)


# ---------------------------------------------------------------- close
async def test_closing_frees_the_slot_for_the_next_waiting_chat(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=1, max_chats=1)
    [a] = team.ops
    first = await new_chat(rt, team)
    await accept(rt, a, first)
    second, third = await new_chat(rt, team), await new_chat(rt, team)
    assert await offered(rt, second) is None
    await close(rt, a, first)
    c = await conv(rt, first)
    assert c.status == "closed"
    assert c.closed_by == "operator"
    assert c.closed_at == clock.now()
    assert await system_lines(rt, first) == ["Op 0 joined the chat.", "The chat was closed."]
    assert await offered(rt, second) == a  # the oldest waiting chat
    assert await offered(rt, third) is None
    await accept(rt, a, second)
    # The visitor ends this one: the slot is freed again.
    async with rt.db.unit_of_work() as uow:
        await routing.close_by_visitor(rt, uow, visitor_actor(world, second), second["conversation_id"])
    assert (await conv(rt, second)).closed_by == "visitor"
    assert await offered(rt, third) == a


async def test_only_the_assigned_operator_closes(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world)
    a, b = team.ops
    chat = await new_chat(rt, team)
    await accept(rt, a, chat)
    with pytest.raises(NotFound):
        await close(rt, b, chat)
    assert (await conv(rt, chat)).status == "active"
    await close(rt, world.admin_id, chat)  # an administrator may
    assert (await conv(rt, chat)).status == "closed"
    await close(rt, world.admin_id, chat)  # closing twice changes nothing
    async with rt.db.unit_of_work(readonly=True) as uow:
        count = len((await uow.session.scalars(select(Message).where(
            Message.conversation_id == chat["conversation_id"]))).all())
    assert count == 2


# ---------------------------------------------------------------- queue positions
async def positions(rt: Runtime, started: list[dict[str, Any]]) -> list[int | None]:
    out = []
    for s in started:
        async with rt.db.unit_of_work(readonly=True) as uow:
            out.append((await chats.visitor_view(uow, await conv(rt, s)))["queue_position"])
    return out


def queue_moves(team: Team) -> list[str]:
    """The ``since`` of every ``queue_moved`` event of the team's department (who left the queue)."""
    topic = events.department_topic(team.department_id)
    return [p["since"] for t, p in team.events if t == topic and p["type"] == "queue_moved"]


async def rank(rt: Runtime, started: dict[str, Any]) -> str:
    return events.queue_rank((await conv(rt, started)).created_at)


async def test_queue_positions_move_up(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, strategy="manual")
    a, b = team.ops
    started = [await new_chat(rt, team, f"Visitor {i}") for i in range(4)]
    assert await positions(rt, started) == [1, 2, 3, 4]
    await accept(rt, a, started[0])
    assert await positions(rt, started) == [None, 1, 2, 3]
    async with rt.db.unit_of_work() as uow:  # the second visitor gives up
        await routing.close_by_visitor(rt, uow, visitor_actor(world, started[1]), started[1]["conversation_id"])
    assert await positions(rt, started) == [None, None, 1, 2]
    await accept(rt, b, started[3])  # taken out of order
    assert await positions(rt, started) == [None, None, 1, None]


async def test_queues_of_departments_are_separate(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, strategy="manual")
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await workspaces.update_department(uow, admin, world.department_id, DepartmentPatch(strategy="manual"))
    mine = [await new_chat(rt, team) for _ in range(2)]
    theirs = [await new_chat(rt, team, department_id=world.department_id) for _ in range(2)]
    assert await positions(rt, mine + theirs) == [1, 2, 1, 2]
    # The operator console's queue: only what this operator may take.
    who = await actor(rt, team.ops[0])
    async with rt.db.unit_of_work(readonly=True) as uow:
        queue = await routing.queue_for(rt, uow, who)
    assert [q["id"] for q in queue] == [s["conversation_id"] for s in mine]


async def test_an_administrator_closing_a_waiting_chat_withdraws_its_offer_and_moves_the_queue(
        rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=1, max_chats=2)
    [a] = team.ops
    spam, waiting = await new_chat(rt, team, "Spam Bot"), await new_chat(rt, team)
    assert await offered(rt, spam) == a
    await rt.broker.subscribe(events.department_topic(team.department_id))
    await close(rt, world.admin_id, spam)
    assert (await conv(rt, spam)).status == "closed"
    # The operator's pending offer is withdrawn, and the visitor behind moves up to first place:
    # one event for the queue (the waiting visitors' sockets re-read their place).
    assert [w["conversation_id"] for w in team.sent_to(a, "offer_withdrawn")] == [spam["conversation_id"]]
    assert queue_moves(team) == [await rank(rt, spam)]
    assert await positions(rt, [waiting]) == [1]


async def test_an_administrator_transferring_a_waiting_chat_withdraws_its_offer(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, max_chats=1)
    a, b = team.ops
    chat, behind = await new_chat(rt, team), await new_chat(rt, team)
    assert await offered(rt, chat) == a
    assert await offered(rt, behind) == b
    await rt.broker.subscribe(events.department_topic(team.department_id))
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        moved = await routing.transfer(rt, uow, admin, chat["conversation_id"], operator_id=world.admin_id)
    assert moved.status == "active"
    assert moved.operator_id == world.admin_id
    assert moved.offered_to is None
    assert [w["conversation_id"] for w in team.sent_to(a, "offer_withdrawn")] == [chat["conversation_id"]]
    # The chat behind it moved up, and its socket is told so (one event for the queue).
    assert await positions(rt, [behind]) == [1]
    assert queue_moves(team) == [await rank(rt, chat)]


async def test_transferring_a_waiting_chat_to_a_department_re_offers_it_after_the_withdrawal(
        rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=1)
    [a] = team.ops
    async with rt.db.unit_of_work() as uow:  # a is in Support too
        admin = await actor(rt, world.admin_id)
        await user_accounts.update_operator(rt, uow, admin, a, OperatorPatch(
            department_ids=[team.department_id, world.department_id]))
    chat = await new_chat(rt, team)
    assert await offered(rt, chat) == a
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await routing.transfer(rt, uow, admin, chat["conversation_id"], department_id=world.department_id)
    assert await offered(rt, chat) == a
    kinds = [p["type"] for t, p in team.events if t == operator_topic(a) and p["type"].startswith("offer")]
    assert kinds == ["offer", "offer_withdrawn", "offer"]  # the new offer comes last: it stands
