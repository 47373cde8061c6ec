"""Periodic work, on one node at a time: offers that time out move on to the next operator in turn,
waiting chats are offered to whoever can take them, waiting visitors are told when nobody can
answer, visitors who left leave the queue (and free their operator's slot), old heartbeats go,
audit rows past their retention go (with a checkpoint, ``audit.retention``), and personal data past
its retention period goes (``retention.sweep``, in batches, skipping legal holds).

Every node runs this loop; each job runs in its own unit of work that first takes a transaction-
scoped advisory lock on PostgreSQL (``pg_try_advisory_xact_lock``): the node that gets it does the
job, the others skip this tick. The rows themselves are also taken ``FOR UPDATE SKIP LOCKED``, so
even two overlapping jobs never act on the same chat twice. SQLite has one process (and one writer).

Routing runs every tick (``scheduler_interval_s``); housekeeping that rarely finds work runs once a
minute unless its last run found some (``PERIODS_S``, ``Schedule``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import structlog
from sqlalchemy import text

from confide.audit import retention as audit_retention
from confide.core.db import UnitOfWork
from confide.core.runtime import Runtime
from confide.identity import service as identity
from confide.privacy_requests import reminders as request_reminders
from confide.retention import sweep as retention
from confide.routing import service as routing
from confide.users import login as user_login
from confide.worker import housekeeping

log = structlog.get_logger(__name__)

# One advisory lock key for Confide's periodic jobs ("confide" in ASCII, as a 64-bit integer).
JOB_LOCK_KEY = int.from_bytes(b"confide", "big")

Job = Callable[[Runtime, UnitOfWork], Awaitable[int | None]]


async def _offer_waiting(rt: Runtime, uow: UnitOfWork) -> int:
    await routing.offer_waiting(rt, uow)
    return 0


JOBS: dict[str, Job] = {
    "expired_offers": routing.expire_offers,
    "offered_waiting": _offer_waiting,
    "abandoned": routing.close_abandoned,
    "unanswered": routing.mark_unanswered,
    "presence_purged": routing.purge_presence,
    "audit_pruned": audit_retention.prune,  # rows past CONFIDE_AUDIT_RETENTION_DAYS, with a checkpoint
    "login_throttle_purged": user_login.purge_login_throttle,  # accounts (ADR 0012)
    "accounts_auto_disabled": housekeeping.auto_disable,  # mail helper: account review, failed jobs
    "directory_rechecked": identity.recheck_directory_accounts,
    # Personal data past its retention period, one batch per tick while a backlog lasts (ADR 0030)
    "retention_swept": retention.scheduled,
    "privacy_requests_reminded": request_reminders.scheduled_reminders,  # ADR 0029: once per threshold
}


async def this_node_runs_jobs(uow: UnitOfWork) -> bool:
    """True when this unit holds the periodic-job lock (released at its commit or rollback)."""
    conn = await uow.session.connection()
    if conn.dialect.name != "postgresql":
        return True
    return bool(await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": JOB_LOCK_KEY}))


Probe = Callable[[Runtime, UnitOfWork], Awaitable[bool]]

# A read-only question asked before the job's write transaction: no work, no transaction. On SQLite
# a write transaction waits for the message writer and makes it wait (one writer); most ticks find
# no chat waiting and no visitor gone, and need not stand in the chats' way to learn it.
PROBES: dict[str, Probe] = {
    "expired_offers": routing.has_queued,
    "offered_waiting": routing.has_queued,
    "unanswered": routing.has_queued,
    "abandoned": routing.has_abandoned,
}

# How often a job runs when its last run found nothing to do (seconds; the others: every tick). A
# job that did something runs again at the next tick, so a backlog drains at the tick's pace. Each
# job is a write transaction, and on SQLite write transactions take turns with the message writer:
# housekeeping every second would make chats wait for nothing.
PERIODS_S: dict[str, float] = {
    "presence_purged": 10.0,
    "audit_pruned": 60.0,
    "login_throttle_purged": 60.0,
    "accounts_auto_disabled": 60.0,
    "directory_rechecked": 60.0,
    "retention_swept": 60.0,
    "privacy_requests_reminded": 60.0,
}


async def tick(rt: Runtime, due: Iterable[str] | None = None) -> dict[str, int] | None:
    """One round of the jobs named in ``due`` (all of them by default); ``None`` when another node
    holds the lock (this node did nothing)."""
    done: dict[str, int] = {}
    failed: Exception | None = None
    names = set(JOBS) if due is None else set(due)
    answers: dict[Probe, bool] = {}  # a probe asked once per tick, whichever jobs share it
    for name, job in JOBS.items():
        if name not in names:
            continue
        try:
            probe = PROBES.get(name)
            if probe is not None:
                if probe not in answers:
                    async with rt.db.unit_of_work(readonly=True) as uow:
                        answers[probe] = await probe(rt, uow)
                if not answers[probe]:
                    done[name] = 0
                    continue
            async with rt.db.unit_of_work() as uow:
                if not await this_node_runs_jobs(uow):
                    return None
                done[name] = int(await job(rt, uow) or 0)
        except Exception as exc:  # one failing job must not starve the others
            log.exception("scheduler_job_failed", job=name)
            failed = failed or exc
    if failed is not None:
        raise failed
    return done


class Schedule:
    """Which jobs are due at a tick: every job at the first; then each after its period
    (``PERIODS_S``; none: every tick), or at the next tick when its last run did something."""

    def __init__(self, periods: dict[str, float] | None = None) -> None:
        self._periods = PERIODS_S if periods is None else periods
        self._next: dict[str, float] = {}

    def due(self, now: float) -> list[str]:
        return [name for name in JOBS if self._next.get(name, 0.0) <= now]

    def ran(self, now: float, names: Iterable[str], done: dict[str, int] | None) -> None:
        for name in names:
            busy = done is None or done.get(name, 0) > 0  # another node's turn, or a backlog: soon again
            self._next[name] = now if busy else now + self._periods.get(name, 0.0)


async def run(rt: Runtime, interval_s: float | None = None) -> None:
    schedule = Schedule()
    loop = asyncio.get_running_loop()
    while True:
        now = loop.time()
        due = schedule.due(now)
        done: dict[str, int] | None = None
        try:
            done = await tick(rt, due)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduler_tick_failed")
            done = {}  # a failing job waits its period rather than retrying every tick
        schedule.ran(now, due, done)
        await asyncio.sleep(interval_s if interval_s is not None else rt.settings.scheduler_interval_s)
