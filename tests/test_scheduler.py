"""The scheduler's timetable: routing every tick, housekeeping once a period unless it has a backlog."""

from __future__ import annotations

from confide.worker import scheduler
from confide.worker.scheduler import JOBS, PERIODS_S, Schedule


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
