"""The scheduler: routing every tick (after a read-only probe), housekeeping once a period unless it
has a backlog."""

from __future__ import annotations

from datetime import timedelta

from confide.core import clock
from confide.core.runtime import Runtime
from confide.routing import service as routing
from confide.worker import scheduler
from confide.worker.scheduler import JOBS, PERIODS_S, Schedule
from tests.conftest import World
from tests.test_routing import accept, make_team, new_chat


def test_every_job_is_due_at_the_first_tick() -> None:
    assert Schedule().due(0.0) == list(JOBS)


def test_idle_housekeeping_waits_its_period_while_routing_runs_every_tick() -> None:
    schedule = Schedule()
    due = schedule.due(100.0)
    schedule.ran(100.0, due, dict.fromkeys(due, 0))
    every_tick = [name for name in JOBS if name not in PERIODS_S]
    assert "expired_offers" in every_tick
    assert "offered_waiting" in every_tick
    assert schedule.due(101.0) == every_tick
    assert schedule.due(100.0 + PERIODS_S["presence_purged"]) == [
        name for name in JOBS if name in every_tick or name == "presence_purged"
    ]
    assert schedule.due(100.0 + max(PERIODS_S.values())) == list(JOBS)


def test_a_job_that_did_work_runs_again_at_the_next_tick() -> None:
    schedule = Schedule()
    due = schedule.due(0.0)
    schedule.ran(0.0, due, {**dict.fromkeys(due, 0), "retention_swept": 500})  # a backlog: one batch done
    assert "retention_swept" in schedule.due(1.0)
    assert "audit_pruned" not in schedule.due(1.0)


def test_when_another_node_holds_the_lock_everything_is_tried_again_next_tick() -> None:
    schedule = Schedule()
    due = schedule.due(0.0)
    schedule.ran(0.0, due, None)
    assert schedule.due(1.0) == list(JOBS)


def test_every_period_names_a_job() -> None:
    assert set(PERIODS_S) <= set(scheduler.JOBS)


async def _probe(rt: Runtime, probe: scheduler.Probe) -> bool:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await probe(rt, uow)


async def test_the_routing_probes_say_when_a_job_has_work(rt: Runtime, world: World) -> None:
    team = await make_team(rt, world, size=1)
    assert not await _probe(rt, routing.has_queued)  # nothing waits: no write transaction this tick
    assert not await _probe(rt, routing.has_abandoned)
    started = await new_chat(rt, team)
    assert await _probe(rt, routing.has_queued)
    await accept(rt, team.ops[0], started)
    assert not await _probe(rt, routing.has_queued)
    clock.advance(timedelta(seconds=rt.settings.visitor_abandon_s + 1))  # the visitor never had a socket
    assert await _probe(rt, routing.has_abandoned)
    assert (await scheduler.tick(rt) or {})["abandoned"] == 1
    assert not await _probe(rt, routing.has_abandoned)


def test_every_probe_names_a_job() -> None:
    assert set(scheduler.PROBES) <= set(JOBS)
