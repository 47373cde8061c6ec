"""Periodic work, on one node at a time: offers that time out move on to the next operator in turn,
waiting chats are offered to whoever can take them, waiting visitors are told when nobody can
answer, visitors who left leave the queue (and free their operator's slot), old heartbeats go,
audit rows past their retention go (with a checkpoint, ``audit.retention``), and personal data past
its retention period goes (``retention.sweep``, in batches, skipping legal holds).

Every node runs this loop; each job runs in its own unit of work that first takes a transaction-
scoped advisory lock on PostgreSQL (``pg_try_advisory_xact_lock``): the node that gets it does the
job, the others skip this tick. The rows themselves are also taken ``FOR UPDATE SKIP LOCKED``, so
even two overlapping jobs never act on the same chat twice. SQLite has one process (and one writer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

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


async def tick(rt: Runtime) -> dict[str, int] | None:
    """One round of every job; ``None`` when another node holds the lock (this node did nothing)."""
    done: dict[str, int] = {}
    failed: Exception | None = None
    for name, job in JOBS.items():
        try:
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


async def run(rt: Runtime, interval_s: float | None = None) -> None:
    while True:
        try:
            await tick(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduler_tick_failed")
        await asyncio.sleep(interval_s if interval_s is not None else rt.settings.scheduler_interval_s)
