"""Durable jobs (the outbox): work that must happen once its transaction has committed (mail today;
webhooks, integration calls and retention later), kept in the ``jobs`` table until it is done.

- ``enqueue(rt, uow, kind, payload)`` adds a row in the *caller's* unit of work: a rolled-back action
  leaves no job behind, a committed one always does. After the commit the local runner is woken
  (``signal``), so a job usually starts within milliseconds; a periodic sweep is the safety net
  (another node's jobs, retries that fall due, a node that crashed holding a job).
- The payload can hold personal data (a recipient's address, a link): it is stored encrypted
  (AES-256-GCM) under a data key of the job's own, itself stored wrapped under the master key with
  the job id as associated data. Once the job is done the row is deleted; once it has failed for
  good its payload and key are cleared, so only the kind, the counts and an error *code* remain.
- ``worker/jobs.py`` runs them: claim (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two nodes never
  take the same job), run outside any transaction, then finish (delete, retry later with a growing
  delay, or mark failed after ``job_max_attempts``). A handler raises ``JobError(code, retry=...)``;
  any other exception counts as a retryable failure under its type's name (never its message).

Delivery is at least once: a node that dies after its handler succeeded but before the job was
marked done leaves it to run again once its lease (``job_lease_s``) has passed.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import Index, Integer, LargeBinary, String, and_, delete, func, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from confide.core import clock, crypto
from confide.core.db import Base, Database, UnitOfWork

if TYPE_CHECKING:
    from confide.core.runtime import Runtime

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
STATES = (PENDING, RUNNING, DONE, FAILED)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_run_after", "state", "run_after"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    workspace_id: Mapped[str | None] = mapped_column(String(32), index=True)
    subject_id: Mapped[str | None] = mapped_column(String(32), index=True)  # whose data the payload holds
    # The processing purpose the job serves (a consent purpose key, e.g. "marketing_email"): a
    # withdrawal cancels the subject's pending jobs of that purpose at once (``cancel_pending``).
    purpose: Mapped[str | None] = mapped_column(String(40))
    payload_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(10), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime]
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(64))  # a code, never a message
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class JobError(Exception):
    """A handler's failure: ``code`` (letters, digits, ``_``) is stored; ``retry=False`` gives up now."""

    def __init__(self, code: str, *, retry: bool = True) -> None:
        super().__init__(code)
        self.code = code[:64]
        self.retry = retry


Handler = Callable[["Runtime", dict[str, Any]], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that runs jobs of ``kind`` (one per kind)."""

    def register(fn: Handler) -> Handler:
        if HANDLERS.get(kind, fn) is not fn:
            raise RuntimeError(f"a handler for job kind {kind!r} exists already")
        HANDLERS[kind] = fn
        return fn

    return register


# A job that serves a purpose (``Job.purpose``) runs only if every guard allows it at run time
# (``consent/hooks.py`` registers one that asks ``consent.questions.may``): consent may have been
# withdrawn, or a notice changed materially, after the job was queued. A refused job is dropped,
# never run.
Guard = Callable[["Runtime", "Claimed"], Awaitable[bool]]
GUARDS: list[Guard] = []


def purpose_guard(fn: Guard) -> Guard:
    if fn not in GUARDS:
        GUARDS.append(fn)
    return fn


async def permitted(rt: Runtime, job: Claimed) -> bool:
    if job.purpose is None:
        return True
    for check in GUARDS:
        if not await check(rt, job):
            return False
    return True


# A job may also have to *wait* rather than be dropped: a deferral answers how many seconds to wait
# (None: run it now). The restriction service registers one (ADR 0031): a job serving a purpose for a
# person whose processing is restricted (Art. 18) is kept, untouched, and looked at again later; once
# the restriction is lifted it runs (the purpose guards are asked then, as for any job).
Deferral = Callable[["Runtime", "Claimed"], Awaitable[float | None]]
DEFERRALS: list[Deferral] = []


def deferral(fn: Deferral) -> Deferral:
    if fn not in DEFERRALS:
        DEFERRALS.append(fn)
    return fn


async def deferred(rt: Runtime, job: Claimed) -> float | None:
    """Seconds ``job`` must wait (the first deferral that says so), or None."""
    for check in DEFERRALS:
        wait = await check(rt, job)
        if wait is not None:
            return wait
    return None


# ---------------------------------------------------------------- waking the local runner
_signals: weakref.WeakKeyDictionary[Database, asyncio.Event] = weakref.WeakKeyDictionary()


def signal(db: Database) -> asyncio.Event:
    """Set when a job was committed on this process's database: the runner's cue to look now."""
    event = _signals.get(db)
    if event is None:
        event = _signals[db] = asyncio.Event()
    return event


# ---------------------------------------------------------------- payload encryption
def _aad(job_id: str) -> str:
    return f"jobs.payload_enc:{job_id}"


def seal(rt: Runtime, job_id: str, payload: Mapping[str, Any]) -> tuple[bytes, bytes]:
    wrapped, key = rt.keyring.wrapper.new_wrapped_key(f"job:{job_id}")
    return key.encrypt_json(dict(payload), _aad(job_id)), wrapped


def open_payload(rt: Runtime, job: Job) -> dict[str, Any] | None:
    """The job's payload, or None when it was cleared or cannot be opened."""
    if job.payload_enc is None or job.wrapped_key is None:
        return None
    try:
        key = rt.keyring.wrapper.unwrap(job.wrapped_key, f"job:{job.id}")
        value = key.decrypt_json(job.payload_enc, _aad(job.id))
    except Exception:  # a wrong master key or a damaged row: the job fails with a code, never a crash
        return None
    return value if isinstance(value, dict) else None


# ---------------------------------------------------------------- enqueue
def enqueue(
    rt: Runtime,
    uow: UnitOfWork,
    kind: str,
    payload: BaseModel | Mapping[str, Any],
    *,
    workspace_id: str | None = None,
    subject_id: str | None = None,
    purpose: str | None = None,
    delay_s: float = 0.0,
) -> str:
    """Add a job in the caller's transaction; it runs only if that commits. Returns the job id."""
    if uow.readonly:
        raise RuntimeError("a read-only unit of work cannot enqueue a job")
    if kind not in HANDLERS:
        raise ValueError(f"no handler for job kind {kind!r}")
    data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else dict(payload)
    now = clock.now()
    job_id = crypto.new_ordered_id()
    payload_enc, wrapped = seal(rt, job_id, data)
    uow.session.add(
        Job(
            id=job_id,
            kind=kind,
            workspace_id=workspace_id,
            subject_id=subject_id,
            purpose=purpose,
            payload_enc=payload_enc,
            wrapped_key=wrapped,
            state=PENDING,
            attempts=0,
            run_after=now + timedelta(seconds=max(0.0, delay_s)),
            created_at=now,
        )
    )
    uow.after_commit(signal(rt.db).set)
    return job_id


async def cancel_pending(uow: UnitOfWork, *, subject_id: str, purpose: str) -> int:
    """Delete the subject's jobs for ``purpose`` that have not started (a consent withdrawal: the
    processing stops at once). A job a node is running right now is not interrupted; its handler
    is expected to ask ``consent.may`` itself. Returns how many were cancelled."""
    result: Any = await uow.session.execute(
        delete(Job).where(Job.subject_id == subject_id, Job.purpose == purpose, Job.state == PENDING)
    )
    return int(result.rowcount or 0)


def backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """The delay before attempt ``attempts + 1``: ``base``, then doubling, at most ``max``."""
    return float(min(max_s, base_s * (2 ** max(0, attempts - 1))))


# ---------------------------------------------------------------- claim and finish (used by worker/jobs.py)
class Claimed(BaseModel):
    """A job this node holds until ``locked_until``, with its opened payload (None: unreadable)."""

    id: str
    kind: str
    attempts: int
    payload: dict[str, Any] | None
    workspace_id: str | None = None
    subject_id: str | None = None
    purpose: str | None = None


async def claim(rt: Runtime, uow: UnitOfWork, node_id: str, *, limit: int = 10) -> list[Claimed]:
    """Take up to ``limit`` due jobs for this node: pending ones whose time has come, and running
    ones whose holder's lease ran out (it crashed). ``FOR UPDATE SKIP LOCKED``: two nodes claiming
    at once take different rows, and neither waits for the other."""
    now = clock.now()
    due = or_(
        and_(Job.state == PENDING, Job.run_after <= now),
        and_(Job.state == RUNNING, Job.locked_until < now),
    )
    rows = (
        await uow.session.scalars(
            select(Job)
            .where(due)
            .order_by(Job.run_after, Job.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    ).all()
    until = now + timedelta(seconds=rt.settings.job_lease_s)
    out = []
    for job in rows:
        job.state, job.locked_by, job.locked_until = RUNNING, node_id, until
        job.attempts += 1
        out.append(Claimed(id=job.id, kind=job.kind, attempts=job.attempts, payload=open_payload(rt, job),
                           workspace_id=job.workspace_id, subject_id=job.subject_id, purpose=job.purpose))
    await uow.session.flush()
    return out


async def _held(uow: UnitOfWork, job_id: str, node_id: str) -> Job | None:
    """The job, locked, if this node still holds it (no other node took it over after a lapsed lease)."""
    return await uow.session.scalar(
        select(Job)
        .where(Job.id == job_id, Job.state == RUNNING, Job.locked_by == node_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def finish(rt: Runtime, uow: UnitOfWork, job: Claimed, node_id: str, error: JobError | None) -> str | None:
    """Record how a run ended: done (the row goes), retried later, or failed for good. Returns the
    job's new state (None: this node no longer held the job)."""
    row = await _held(uow, job.id, node_id)
    if row is None:
        return None
    now = clock.now()
    if error is None:
        await uow.session.delete(row)
        await uow.session.flush()
        return DONE
    row.last_error = error.code
    row.locked_by = row.locked_until = None
    if error.retry and row.attempts < rt.settings.job_max_attempts:
        settings = rt.settings
        row.state = PENDING
        row.run_after = now + timedelta(
            seconds=backoff_s(row.attempts, settings.job_backoff_s, settings.job_backoff_max_s)
        )
    else:
        row.state, row.finished_at = FAILED, now
        row.payload_enc = row.wrapped_key = None  # nothing personal is kept about a job given up on
    await uow.session.flush()
    return row.state


async def defer(uow: UnitOfWork, job: Claimed, node_id: str, delay_s: float) -> bool:
    """Put a claimed job back, pending, ``delay_s`` from now, as if this run never happened (the
    attempt is not counted). False: this node no longer held it."""
    row = await _held(uow, job.id, node_id)
    if row is None:
        return False
    row.state, row.locked_by, row.locked_until = PENDING, None, None
    row.attempts = max(0, row.attempts - 1)
    row.run_after = clock.now() + timedelta(seconds=max(0.0, delay_s))
    await uow.session.flush()
    return True


async def wake_subjects(uow: UnitOfWork, subject_ids: list[str]) -> int:
    """Make the subjects' pending jobs that serve a purpose due now (a lifted restriction: what
    waited runs at once, its guards asked again). Returns how many."""
    if not subject_ids:
        return 0
    result: Any = await uow.session.execute(
        update(Job)
        .where(Job.subject_id.in_(subject_ids), Job.purpose.is_not(None), Job.state == PENDING)
        .values(run_after=clock.now())
    )
    return int(result.rowcount or 0)


async def next_due(uow: UnitOfWork) -> datetime | None:
    """When the next pending job falls due (the runner sleeps until then, or its sweep)."""
    return await uow.session.scalar(select(func.min(Job.run_after)).where(Job.state == PENDING))


async def purge_failed(uow: UnitOfWork, before: datetime) -> int:
    """Failed jobs (kind, counts and an error code only) are kept a while for diagnosis, then go."""
    result: Any = await uow.session.execute(delete(Job).where(Job.state == FAILED, Job.finished_at < before))
    return int(result.rowcount or 0)


async def counts(uow: UnitOfWork) -> dict[str, int]:
    rows = await uow.session.execute(select(Job.state, func.count()).group_by(Job.state))
    return {state: int(n) for state, n in rows.all()}


async def get(uow: UnitOfWork, job_id: str) -> Job | None:
    return await uow.session.get(Job, job_id, populate_existing=True)
