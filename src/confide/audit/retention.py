"""Retention of the audit log: rows older than ``CONFIDE_AUDIT_RETENTION_DAYS`` (0: kept forever)
are removed from the start of the chain, oldest first, through the one path the append-only
trigger allows, and the removal is itself audited as ``audit.pruned`` with the checkpoint the
remaining chain starts from (``first_seq`` and the ``prev_hash`` its first row links to).
``audit.service.verify`` starts from the latest checkpoint, so it still proves everything that is
left and still notices any other removal (ADR 0011).

One run removes at most ``batch`` rows (one bounded transaction); the scheduler runs it on one node
at a time, and a backlog goes in a few ticks. Before removing a segment the run checks that its
links hold (a broken chain is never pruned away: it stays for ``verify`` to name).
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import delete, func, insert, select

from confide.audit import service as audit
from confide.audit.models import AuditEvent, AuditPrune
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.runtime import Runtime

log = structlog.get_logger(__name__)
BATCH = 5000


async def prune(rt: Runtime, uow: UnitOfWork, *, batch: int = BATCH) -> int:
    """Remove the oldest rows past the retention (at most ``batch``); the number removed."""
    days = rt.settings.audit_retention_days
    if days <= 0:
        return 0
    cutoff = clock.now() - timedelta(days=days)
    session = uow.session
    first = await session.scalar(select(func.min(AuditEvent.seq)))
    if first is None:
        return 0
    # The chain goes in order: stop before the first row that is still within the retention
    # (``at`` is taken when a row is recorded and ``seq`` when it commits, so they may disagree a
    # little; the prefix never skips a row).
    keep_from = await session.scalar(select(func.min(AuditEvent.seq)).where(AuditEvent.at >= cutoff))
    last = await session.scalar(select(func.max(AuditEvent.seq)))
    upto = (keep_from - 1) if keep_from is not None else int(last or 0)
    upto = min(upto, first + batch - 1)
    if upto < first:
        return 0
    start = await audit.checkpoint(rt, uow)
    rows = (
        (await session.execute(select(AuditEvent).where(AuditEvent.seq <= upto).order_by(AuditEvent.seq)))
        .scalars()
        .all()
    )
    prev = start.prev_hash
    for expected, row in enumerate(rows, start=first):
        link_ok = crypto.chain_hash(rt.audit_key, row.prev_hash, audit.canonical(row, row.seq)) == row.hash
        if not start.sound or row.seq != expected or row.prev_hash != prev or not link_ok or first != start.first_seq:
            log.error("audit_prune_refused_broken_chain", seq=row.seq)
            return 0
        prev = row.hash
    session.expunge_all()
    await session.execute(insert(AuditPrune).values(id=1, upto=upto))
    result = await session.execute(delete(AuditEvent).where(AuditEvent.seq <= upto))
    await session.execute(delete(AuditPrune).where(AuditPrune.id == 1))
    removed = int(getattr(result, "rowcount", 0) or 0)
    await audit.record(
        rt,
        uow,
        audit.PRUNED,
        actor_type="system",
        target_type="audit_log",
        detail={"first_seq": upto + 1, "prev_hash": prev, "removed": removed, "retention_days": days},
    )
    return removed


async def due(rt: Runtime, uow: UnitOfWork) -> int:
    """How many rows ``prune`` would remove in all, over as many runs as it takes (the dry run)."""
    days = rt.settings.audit_retention_days
    if days <= 0:
        return 0
    cutoff = clock.now() - timedelta(days=days)
    session = uow.session
    keep_from = await session.scalar(select(func.min(AuditEvent.seq)).where(AuditEvent.at >= cutoff))
    stmt = select(func.count(AuditEvent.seq))
    if keep_from is not None:
        stmt = stmt.where(AuditEvent.seq < keep_from)
    return int(await session.scalar(stmt) or 0)
