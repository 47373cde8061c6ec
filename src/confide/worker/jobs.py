"""The durable job runner (ADR 0013): every node runs one; each job is run by one node at a time.

A round: claim up to ``batch`` due jobs in one short unit of work (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL: runners on two nodes take different rows and never wait for each other), commit, run
each handler with no transaction open (mail is sent from a thread), then record each outcome in
a unit of its own (done: the row goes; failed: retried after a growing delay, or given up after
``job_max_attempts``). Between rounds the runner sleeps until whichever comes first: a job is
committed on this node (``jobs.signal``, set after commit), the next retry falls due, or the sweep
interval ends (jobs queued by another node, a crashed node's lapsed lease). No busy polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import structlog

from confide.consent import hooks as _consent_hooks  # noqa: F401 - the purpose guard, the consent event handler
from confide.core import clock, crypto, jobs
from confide.core import mail as _mail  # noqa: F401 - registers the "mail" handler
from confide.core.runtime import Runtime
from confide.restriction import service as _restriction  # noqa: F401 - the deferral of restricted people's jobs

log = structlog.get_logger(__name__)


class JobRunner:
    def __init__(self, rt: Runtime, *, node_id: str | None = None, batch: int = 10) -> None:
        self.rt = rt
        self.node_id = node_id or f"{os.getpid()}-{crypto.new_id()[:8]}"
        self.batch = batch
        self._signal = jobs.signal(rt.db)

    async def run_once(self) -> int:
        """Claim and run one batch of due jobs; returns how many were run."""
        async with self.rt.db.unit_of_work() as uow:
            claimed = await jobs.claim(self.rt, uow, self.node_id, limit=self.batch)
        for job in claimed:
            await self._run(job)
        return len(claimed)

    async def drain(self) -> int:
        """Run rounds until nothing is due (tests, and the loop after a wake-up)."""
        total = 0
        while n := await self.run_once():
            total += n
        return total

    async def _run(self, job: jobs.Claimed) -> None:
        error: jobs.JobError | None = None
        handler = jobs.HANDLERS.get(job.kind)
        if handler is None:
            error = jobs.JobError("unknown_kind", retry=False)
        elif job.payload is None:
            error = jobs.JobError("payload_unreadable", retry=False)
        elif (wait := await jobs.deferred(self.rt, job)) is not None:
            async with self.rt.db.unit_of_work() as uow:  # kept, not run: a restricted person (ADR 0031)
                await jobs.defer(uow, job, self.node_id, wait)
            log.info("job_deferred", job_id=job.id, kind=job.kind, purpose=job.purpose)
            return
        elif not await jobs.permitted(self.rt, job):
            log.info("job_not_permitted", job_id=job.id, kind=job.kind, purpose=job.purpose)  # dropped, not run
        else:
            try:
                await handler(self.rt, job.payload)
            except asyncio.CancelledError:
                raise
            except jobs.JobError as exc:
                error = exc
            except Exception as exc:  # a bug or an unexpected failure: retried, recorded by type only
                error = jobs.JobError(type(exc).__name__)
                log.exception("job_handler_crashed", job_id=job.id, kind=job.kind)
        async with self.rt.db.unit_of_work() as uow:
            state = await jobs.finish(self.rt, uow, job, self.node_id, error)
        if error is not None:
            log.warning("job_failed", job_id=job.id, kind=job.kind, attempts=job.attempts, code=error.code, state=state)

    async def _sleep_s(self) -> float:
        sweep = self.rt.settings.job_sweep_s
        async with self.rt.db.unit_of_work(readonly=True) as uow:
            due = await jobs.next_due(uow)
        if due is None:
            return sweep
        # A floor: a due job another node holds right now (skipped, locked) must not make us spin.
        return max(0.5, min(sweep, (due - clock.now()).total_seconds()))

    async def run(self) -> None:
        while True:
            self._signal.clear()  # cleared before the round: a job committed during it wakes the next
            try:
                await self.drain()
                timeout = await self._sleep_s()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job_round_failed")
                timeout = self.rt.settings.job_sweep_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._signal.wait(), timeout=timeout)
