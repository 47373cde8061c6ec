"""Rebuild prospects' blind-index terms (``prospect_terms``: the words of the name and company and
the phone's term) from what each prospect's row holds now: the prospects' half of ``confide
subject reindex`` (the visitors' half is ``visitors.reindex``; the command runs both).

Why: terms are written only when a prospect's details are written (created, edited through the
Prospects API, or rectified with its visitor). The phone's term came later than the prospects'
word terms (Find a person by phone finds prospects too), so a prospect written before it has no
phone term until its details are next written, and Find a person by phone misses it.

- **Batches.** ``BATCH`` prospects per transaction, keyset-paginated by id (``id > last``, in id
  order), as ``visitors.reindex``: no long transaction or lock, a crash loses one batch at most,
  and a second run finds nothing to change (only a prospect whose terms differ from what its
  stored values give is written, ``Report.changed``).
- **Locks.** First the visitors of the batch's prospects are held ``FOR SHARE``
  (``visitors.service.share_lock``), then the batch's prospect rows are read ``FOR UPDATE`` in id
  order, then their keys (``KeyRing.readable``). That is the order of every other writer of these
  terms: an erasure or a rectification locks the visitors first (then the keys and the prospect
  rows: a batch that held the prospects before the visitors could deadlock with them), the
  Prospects API's edit and delete lock the prospect row first (then its key). Either the writer
  waits for the batch, or the batch for the writer and then reads its committed values (a
  prospect deleted meanwhile is simply no longer there). SQLite has one writer at a time.
- **Keys.** Read from their rows (``KeyRing.readable``): the visitor's key for a prospect from a
  chat or an offline request, the prospect's own for one entered by hand. A prospect whose key is
  destroyed or missing holds nothing readable: it has no terms (any left over are deleted) and is
  counted in ``Report.unreadable``.
- **Audit and log.** One ``prospects.reindexed`` audit row and one log line per workspace, with
  ids and counts only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import delete, func, insert, select

from confide.audit import service as audit
from confide.core import keyset
from confide.core.db import UnitOfWork
from confide.core.runtime import Runtime
from confide.prospects import values
from confide.prospects.models import Prospect, ProspectTerm
from confide.visitors import service as visitors
from confide.workspaces import service as workspaces

log = structlog.get_logger(__name__)

BATCH = 500
Progress = Callable[[str, int, int], None]  # (workspace id, prospects done, prospects of the workspace)


@dataclass
class Report:
    """Counts of one run: prospects walked, whose terms were rebuilt, whose key is gone."""

    workspaces: int = 0
    prospects: int = 0
    changed: int = 0
    unreadable: int = 0

    def add(self, other: Report) -> None:
        self.workspaces += other.workspaces
        self.prospects += other.prospects
        self.changed += other.changed
        self.unreadable += other.unreadable


def _aad(column: str, prospect_id: str) -> str:
    return f"prospects.{column}:{prospect_id}"  # as prospects.service


async def reindex_batch(rt: Runtime, uow: UnitOfWork, workspace_id: str, after: str, limit: int) -> tuple[str, Report]:
    """The next ``limit`` prospects of the workspace after id ``after``: their visitors and rows
    locked, their terms rebuilt where they differ from what the stored values give. Returns (the
    last id walked, or ``""`` when none was left; the batch's counts)."""
    session = uow.session
    page = (await session.execute(
        select(Prospect.id, Prospect.visitor_id)
        .where(Prospect.workspace_id == workspace_id, Prospect.id > after)
        .order_by(Prospect.id)
        .limit(limit)
    )).all()
    if not page:
        return "", Report()
    last = page[-1].id
    await visitors.share_lock(uow, [r.visitor_id for r in page if r.visitor_id])
    rows = (await session.execute(
        select(Prospect.id, Prospect.subject_id, Prospect.name_enc, Prospect.company_enc, Prospect.phone_enc)
        .where(Prospect.workspace_id == workspace_id, Prospect.id.in_([r.id for r in page]))
        .order_by(Prospect.id)
        .with_for_update()
    )).all()
    ids = [r.id for r in rows]
    held: dict[str, set[str]] = {pid: set() for pid in ids}
    for pid, term in (await session.execute(
        select(ProspectTerm.prospect_id, ProspectTerm.term).where(ProspectTerm.prospect_id.in_(ids))
    )).all():
        held[pid].add(term)
    sealed = [r for r in rows if r.name_enc or r.company_enc or r.phone_enc]
    keys = await rt.keyring.readable(session, [r.subject_id for r in sealed])
    report = Report(prospects=len(rows))
    wanted: dict[str, list[str]] = {r.id: [] for r in rows}
    for r in sealed:
        key = keys.get(r.subject_id)
        if key is None:  # its key destroyed (an erasure or a deletion interrupted): nothing readable
            report.unreadable += 1
            continue
        name = key.decrypt(r.name_enc, _aad("name", r.id)) if r.name_enc else None
        company = key.decrypt(r.company_enc, _aad("company", r.id)) if r.company_enc else None
        phone = key.decrypt(r.phone_enc, _aad("phone", r.id)) if r.phone_enc else None
        wanted[r.id] = values.terms(rt.bidx, workspace_id, name, company, phone)
    changed = [pid for pid in ids if set(wanted[pid]) != held[pid]]
    if changed:
        await session.execute(delete(ProspectTerm).where(ProspectTerm.prospect_id.in_(changed)))
        fresh = [{"prospect_id": pid, "term": t} for pid in changed for t in wanted[pid]]
        if fresh:
            await session.execute(insert(ProspectTerm), fresh)
    report.changed = len(changed)
    return last, report


async def run(
    rt: Runtime, *, workspace_id: str | None = None, batch_size: int = BATCH, progress: Progress | None = None
) -> Report:
    """Rebuild the terms of every prospect of one workspace (or of all), batch by batch, each batch
    its own transaction (an edge: it opens its units of work itself, like a job). ``NotFound`` for
    an unknown workspace, before anything is written."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        ids = await workspaces.workspace_ids(uow, workspace_id)
    total = Report()
    for ws in ids:
        total.add(await _workspace(rt, ws, max(1, batch_size), progress))
    return total


async def _workspace(rt: Runtime, ws: str, size: int, progress: Progress | None) -> Report:
    """One workspace's walk (``keyset.walk``), then its audit row and log line (counts only)."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        count = int(await uow.session.scalar(
            select(func.count()).select_from(Prospect).where(Prospect.workspace_id == ws)) or 0)
    mine = Report(workspaces=1)

    def step(uow: UnitOfWork, after: str) -> Awaitable[tuple[str, Report]]:
        return reindex_batch(rt, uow, ws, after, size)

    def done(batch: Report) -> None:
        mine.add(batch)
        if progress is not None:
            progress(ws, mine.prospects, max(count, mine.prospects))

    await keyset.walk(rt.db, step, done)
    async with rt.db.unit_of_work() as uow:
        await audit.record(rt, uow, "prospects.reindexed", actor_type="system", workspace_id=ws,
                           target_type="workspace", target_id=ws,
                           detail={"prospects": mine.prospects, "changed": mine.changed, "unreadable": mine.unreadable})
    log.info("prospects_reindexed", workspace_id=ws, prospects=mine.prospects, changed=mine.changed,
             unreadable=mine.unreadable)
    return mine


__all__ = ["BATCH", "Report", "reindex_batch", "run"]
