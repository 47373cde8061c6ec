"""Races between nodes. On PostgreSQL each race runs two units of work at once on two Runtime
instances (two engines, two connection pools: two nodes sharing one database); the row locks
(``FOR UPDATE``), ``SKIP LOCKED`` sweeps and the advisory lock of the periodic jobs decide the
outcome. On SQLite there is one process, and its write lock serialises the same calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import Any

import pytest

from confide.auth.actors import OperatorActor
from confide.core import clock
from confide.core.broker import MemoryBroker
from confide.core.errors import Conflict, DomainError, NotFound
from confide.core.runtime import Runtime, build_runtime
from confide.realtime.events import operator_topic
from confide.routing import service as routing
from confide.worker import scheduler
from tests import factories
from tests.conftest import World
from tests.helpers_api import actor, visitor_actor
from tests.test_routing import Team, conv, make_team, new_chat, system_lines

ROUNDS = 6  # each race is run several times: an unlocked read-then-write loses at least one of them


@pytest.fixture
async def node2(rt: Runtime) -> AsyncIterator[Runtime]:
    """A second node on the same database: its own engine and pool on PostgreSQL; on SQLite (one
    process by design) the same runtime."""
    if rt.db.is_sqlite:
        yield rt
        return
    other = build_runtime(rt.settings, broker=MemoryBroker())
    yield other
    await other.close()


def listen(node: Runtime, team: Team) -> None:
    """Record what ``node`` publishes to the team's consoles (its own broker: another node)."""

    async def record(topic: str, payload: dict[str, Any]) -> None:
        team.events.append((topic, payload))

    node.broker.set_handler(record)


async def subscribe(node: Runtime, team: Team) -> None:
    listen(node, team)
    for op_id in team.ops:
        await node.broker.subscribe(operator_topic(op_id))


async def at_once(*calls: Awaitable[Any]) -> list[Any]:
    """Run the calls concurrently; each result is its value or the DomainError it raised."""
    return list(await asyncio.gather(*calls, return_exceptions=True))


async def _accept(node: Runtime, who: OperatorActor, conversation_id: str) -> str:
    async with node.db.unit_of_work() as uow:
        return (await routing.accept(node, uow, who, conversation_id)).operator_id or ""


# ---------------------------------------------------------------- accept
async def test_two_operators_accepting_the_same_chat_at_once(rt: Runtime, node2: Runtime, world: World) -> None:
    team = await make_team(rt, world, strategy="manual", size=2, max_chats=ROUNDS)
    await subscribe(node2, team)
    a, b = await actor(rt, team.ops[0]), await actor(rt, team.ops[1])
    for _ in range(ROUNDS):
        chat = await new_chat(rt, team)
        results = await at_once(_accept(rt, a, chat["conversation_id"]), _accept(node2, b, chat["conversation_id"]))
        winners = [r for r in results if isinstance(r, str)]
        losers = [r for r in results if not isinstance(r, str)]
        assert len(winners) == 1, results
        assert len(losers) == 1
        assert isinstance(losers[0], Conflict)
        assert losers[0].message == "this chat has been taken already"
        stored = await conv(rt, chat)
        assert stored.status == "active"
        assert stored.operator_id == winners[0]
        lines = await system_lines(rt, chat)
        assert len([line for line in lines if line.endswith("joined the chat.")]) == 1, lines


async def test_one_operator_accepting_two_chats_at_once_with_one_free_slot(
    rt: Runtime, node2: Runtime, world: World
) -> None:
    team = await make_team(rt, world, strategy="manual", size=1, max_chats=1)
    (op_id,) = team.ops
    who = await actor(rt, op_id)
    first, second = await new_chat(rt, team), await new_chat(rt, team)
    results = await at_once(_accept(rt, who, first["conversation_id"]), _accept(node2, who, second["conversation_id"]))
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "str"], results
    refused = next(r for r in results if isinstance(r, Conflict))
    assert refused.message == "you have reached your maximum number of chats"
    statuses = sorted([(await conv(rt, first)).status, (await conv(rt, second)).status])
    assert statuses == ["active", "queued"]


async def test_accept_and_the_visitor_ending_the_chat_at_once(rt: Runtime, node2: Runtime, world: World) -> None:
    team = await make_team(rt, world, strategy="manual", size=1)
    who = await actor(rt, team.ops[0])
    outcomes = set()
    for _ in range(ROUNDS):
        chat = await new_chat(rt, team)
        visitor = visitor_actor(world, chat)

        async def end(node: Runtime = node2, chat_id: str = chat["conversation_id"], v: Any = visitor) -> str:
            async with node.db.unit_of_work() as uow:
                await routing.close_by_visitor(node, uow, v, chat_id)
            return "ended"

        accepted, ended = await at_once(_accept(rt, who, chat["conversation_id"]), end())
        assert ended == "ended"
        stored = await conv(rt, chat)
        assert stored.status == "closed"
        assert stored.closed_by == "visitor"
        lines = await system_lines(rt, chat)
        if isinstance(accepted, DomainError):  # the visitor was first: nothing to accept any more
            assert isinstance(accepted, Conflict)
            assert accepted.message == "this chat is closed"
            assert lines == ["The visitor ended the chat."]
            outcomes.add("ended first")
        else:  # the operator was first: the visitor then ended an active chat
            assert lines == ["Op 0 joined the chat.", "The visitor ended the chat."]
            outcomes.add("accepted first")
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await routing.active_chat_count(uow, team.ops[0]) == 0  # no slot held by a closed chat
    assert outcomes  # at least one of the two serial orders happened, each checked above


# ---------------------------------------------------------------- transfer
async def _transfer(node: Runtime, who: OperatorActor, conversation_id: str, operator_id: str) -> str:
    async with node.db.unit_of_work() as uow:
        return (await routing.transfer(node, uow, who, conversation_id, operator_id=operator_id)).operator_id or ""


async def test_two_transfers_of_one_chat_at_once(rt: Runtime, node2: Runtime, world: World) -> None:
    team = await make_team(rt, world, strategy="manual", size=3)
    owner_id, b, c = team.ops
    owner = await actor(rt, owner_id)
    for _ in range(ROUNDS):
        chat = await new_chat(rt, team)
        await _accept(rt, owner, chat["conversation_id"])
        # Two tabs of the owner hand the chat to two colleagues at the same moment.
        results = await at_once(
            _transfer(rt, owner, chat["conversation_id"], b), _transfer(node2, owner, chat["conversation_id"], c)
        )
        winners = [r for r in results if isinstance(r, str)]
        assert len(winners) == 1, results
        loser = next(r for r in results if not isinstance(r, str))
        assert isinstance(loser, NotFound)  # it is no longer the owner's chat to hand on
        stored = await conv(rt, chat)
        assert stored.operator_id == winners[0]
        lines = await system_lines(rt, chat)
        assert len([line for line in lines if line.startswith("The chat was transferred")]) == 1, lines
        async with rt.db.unit_of_work() as uow:  # the winner closes it: the next round starts clean
            await routing.close_by_operator(rt, uow, await actor(rt, winners[0]), chat["conversation_id"])


async def test_two_transfers_to_an_operator_with_one_free_slot(rt: Runtime, node2: Runtime, world: World) -> None:
    team = await make_team(rt, world, strategy="manual", size=3, max_chats_each=[5, 5, 1])
    a_id, b_id, target = team.ops
    a, b = await actor(rt, a_id), await actor(rt, b_id)
    first, second = await new_chat(rt, team), await new_chat(rt, team)
    await _accept(rt, a, first["conversation_id"])
    await _accept(rt, b, second["conversation_id"])
    results = await at_once(
        _transfer(rt, a, first["conversation_id"], target), _transfer(node2, b, second["conversation_id"], target)
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "str"], results
    assert next(r for r in results if isinstance(r, Conflict)).message == "that operator has no free slot"
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await routing.active_chat_count(uow, target) == 1


# ---------------------------------------------------------------- offers and the periodic jobs
async def test_two_chats_starting_at_once_never_overfill_an_operator(
    rt: Runtime, node2: Runtime, world: World
) -> None:
    team = await make_team(rt, world, size=1, max_chats=1)
    await subscribe(node2, team)
    (op_id,) = team.ops
    await at_once(new_chat(rt, team), new_chat(node2, team))
    assert len(team.sent_to(op_id, "offer")) == 1  # a slot is counted with its pending offers, under a lock
    await scheduler.tick(rt)  # the other chat keeps waiting: no slot
    assert len(team.sent_to(op_id, "offer")) == 1


async def _expired_chats(rt: Runtime, team: Team, count: int) -> list[dict[str, Any]]:
    started = [await new_chat(rt, team, step=timedelta(milliseconds=10)) for _ in range(count)]
    clock.advance(timedelta(seconds=31))
    return started


async def test_two_schedulers_ticking_at_once_withdraw_and_offer_each_chat_once(
    rt: Runtime, node2: Runtime, world: World
) -> None:
    team = await make_team(rt, world, size=2, max_chats=10)
    await subscribe(node2, team)
    a, b = team.ops
    started = await _expired_chats(rt, team, 5)
    assert len(team.sent_to(a, "offer")) == 3  # round robin
    assert len(team.sent_to(b, "offer")) == 2
    ticks = await at_once(scheduler.tick(rt), scheduler.tick(node2))
    assert all(not isinstance(t, BaseException) for t in ticks), ticks
    if not rt.db.is_sqlite:  # one node held the lock, the other did nothing
        assert sorted(t is None for t in ticks) == [False, True], ticks
    withdrawn = team.sent_to(a, "offer_withdrawn") + team.sent_to(b, "offer_withdrawn")
    assert sorted(w["conversation_id"] for w in withdrawn) == sorted(s["conversation_id"] for s in started)
    assert len(team.sent_to(a, "offer")) + len(team.sent_to(b, "offer")) == 10  # each re-offered once
    for s in started:  # each to the other operator, in turn
        stored = await conv(rt, s)
        assert stored.offered_to is not None
        assert len(stored.offered_history) == 2


async def test_two_offer_sweeps_at_once_skip_each_others_rows(rt: Runtime, node2: Runtime, world: World) -> None:
    """Even without the job lock (two overlapping sweeps), SKIP LOCKED hands each chat to one sweep."""
    team = await make_team(rt, world, size=2, max_chats=10)
    await subscribe(node2, team)
    started = await _expired_chats(rt, team, 6)

    async def sweep(node: Runtime) -> int:
        async with node.db.unit_of_work() as uow:
            return await routing.expire_offers(node, uow)

    counts = await at_once(sweep(rt), sweep(node2))
    assert sum(counts) == len(started), counts
    withdrawn = [w for op in team.ops for w in team.sent_to(op, "offer_withdrawn")]
    assert len(withdrawn) == len(started)
    assert len({w["conversation_id"] for w in withdrawn}) == len(started)


# PostgreSQL only: on SQLite one process serves the database, so there is no other node to take turns with.
@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_the_periodic_jobs_take_turns_across_nodes(rt: Runtime, node2: Runtime) -> None:
    async with rt.db.unit_of_work() as held:
        assert await scheduler.this_node_runs_jobs(held)
        assert await scheduler.tick(node2) is None  # the lock is held elsewhere: this node skips
    assert await scheduler.tick(node2) is not None  # released at commit


async def test_going_online_and_a_chat_starting_at_once(rt: Runtime, node2: Runtime, world: World) -> None:
    """An operator going online on one node while a chat starts on another: offered exactly once,
    by whichever unit saw the other's commit, or else by the next periodic tick; never twice."""
    team = await make_team(rt, world, size=1, online=False, max_chats=ROUNDS + 1)
    await subscribe(node2, team)
    (op_id,) = team.ops
    async with rt.db.unit_of_work() as uow:  # someone else of the site is online: the widget takes chats
        await factories.present(uow, world.admin_id)
        await factories.present(uow, op_id)
    async with rt.db.unit_of_work() as uow:
        await routing.set_status(rt, uow, await actor(rt, world.admin_id), "online")
    who = await actor(rt, op_id)

    async def go_online() -> None:
        async with rt.db.unit_of_work() as uow:
            await routing.set_status(rt, uow, who, "online")

    for _ in range(ROUNDS):
        async with rt.db.unit_of_work() as uow:
            await routing.set_status(rt, uow, who, "offline")
        before = len(team.sent_to(op_id, "offer"))
        results = await at_once(go_online(), new_chat(node2, team))
        assert all(not isinstance(r, BaseException) for r in results), results
        assert len(team.sent_to(op_id, "offer")) <= before + 1
        assert await scheduler.tick(rt) is not None
        assert len(team.sent_to(op_id, "offer")) == before + 1


async def test_mixed_work_on_two_nodes_stays_consistent(rt: Runtime, node2: Runtime, world: World) -> None:
    """Operators in two departments; sweeps, accepts, closes and status changes on both nodes at
    once. Every unit ends in a result or a documented refusal (no deadlock or lock error), and
    every chat is left in a consistent state."""
    team = await make_team(rt, world, size=3, max_chats=20)
    await subscribe(node2, team)
    async with rt.db.unit_of_work() as uow:
        other = await factories.department(uow, workspace_id=world.workspace_id, site_id=world.site_id,
                                           name="Second")
    admin = await actor(rt, world.admin_id)
    for op_id in team.ops:  # every operator is in both departments
        from confide.users import accounts as user_accounts
        from confide.users.schemas import OperatorPatch
        async with rt.db.unit_of_work() as uow:
            await user_accounts.update_operator(rt, uow, admin, op_id,
                                        OperatorPatch(department_ids=[team.department_id, other.id]))
    ops = [await actor(rt, op_id) for op_id in team.ops]
    for round_ in range(3):
        started = [await new_chat(rt, team, department_id=(team.department_id, other.id)[i % 2],
                                  step=timedelta(milliseconds=5)) for i in range(8)]
        clock.advance(timedelta(seconds=31))

        async def sweep(node: Runtime) -> int:
            async with node.db.unit_of_work() as uow:
                return await routing.expire_offers(node, uow)

        async def close(node: Runtime, who: OperatorActor, chat_id: str) -> None:
            async with node.db.unit_of_work() as uow:
                await routing.close_by_operator(node, uow, who, chat_id)

        async def status(node: Runtime, who: OperatorActor, value: str) -> None:
            async with node.db.unit_of_work() as uow:
                await routing.set_status(node, uow, who, value)

        ids = [s["conversation_id"] for s in started]
        results = await at_once(
            scheduler.tick(rt), sweep(node2),
            *(_accept((rt, node2)[i % 2], ops[i % 3], ids[i]) for i in range(6)),
            status(node2, ops[2], "away"), status(rt, ops[2], "online"),
            *(close((node2, rt)[i % 2], admin, ids[i]) for i in range(4, 8)),
        )
        unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, DomainError)]
        assert unexpected == [], (round_, unexpected)
        for s in started:
            stored = await conv(rt, s)
            assert stored.status in ("queued", "active", "closed")
            if stored.status == "active":
                assert stored.operator_id in team.ops
                assert stored.offered_to is None
