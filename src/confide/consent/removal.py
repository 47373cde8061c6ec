"""The only ways consent ledger rows go (ADR 0018, ADR 0028, ADR 0030): a subject's erasure and the
retention period. The append-only trigger (``rules.py``) refuses every other delete: both raise the
subject's erasure flag (a ``consent_erasure`` row) inside the caller's transaction, delete, and
lower it again, so no other transaction ever sees the flag."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from confide.consent.models import ConsentErasure, ConsentRecord
from confide.core import expiry
from confide.core.db import UnitOfWork


async def erase_subject(uow: UnitOfWork, subject_id: str) -> int:
    """The one way ledger rows go (subject erasure, next issue): raise the erasure flag for this
    subject inside the caller's transaction, delete the rows, lower the flag. Returns the count."""
    uow.session.add(ConsentErasure(subject_id=subject_id))
    await uow.session.flush()
    result: Any = await uow.session.execute(delete(ConsentRecord).where(ConsentRecord.subject_id == subject_id))
    await uow.session.execute(delete(ConsentErasure).where(ConsentErasure.subject_id == subject_id))
    return int(result.rowcount or 0)


# ---------------------------------------------------------------- retention (ADR 0030)
# The ledger is the proof of consent: a subject's rows are kept as a whole for the retention period
# after their *last* change in the workspace, then they go together, through the same erasure flag
# as ``erase_subject`` (the append-only trigger refuses any other delete). A subject belongs to the
# site its rows name (statements recorded by operators carry none): ``criteria.site_id`` None asks
# for the subjects none of whose rows names a site.
def _expired_subjects(criteria: expiry.Expired) -> Any:
    site = func.max(ConsentRecord.site_id)
    stmt = (
        select(ConsentRecord.subject_id)
        .where(ConsentRecord.workspace_id == criteria.workspace_id)
        .group_by(ConsentRecord.subject_id)
        .having(func.max(ConsentRecord.at) < criteria.before)
        .having(site.is_(None) if criteria.site_id is None else site == criteria.site_id)
    )
    if criteria.held_visitors is not None:
        stmt = stmt.where(ConsentRecord.subject_id.not_in(criteria.held_visitors))
    if criteria.held_conversations is not None:
        in_held = select(ConsentRecord.subject_id).where(
            ConsentRecord.conversation_id.in_(criteria.held_conversations)
        )
        stmt = stmt.where(ConsentRecord.subject_id.not_in(in_held))
    return stmt


async def expired_subjects(uow: UnitOfWork, criteria: expiry.Expired, *, limit: int) -> list[str]:
    """Subjects whose last consent change in the workspace is before ``criteria.before`` (not held)."""
    stmt = _expired_subjects(criteria).order_by(ConsentRecord.subject_id).limit(limit)
    return [str(v) for v in (await uow.session.scalars(stmt)).all()]


async def count_expired_records(uow: UnitOfWork, criteria: expiry.Expired) -> int:
    """How many ledger rows ``expire_subjects`` would remove for these subjects (the dry run)."""
    stmt = select(func.count(ConsentRecord.seq)).where(
        ConsentRecord.workspace_id == criteria.workspace_id,
        ConsentRecord.subject_id.in_(_expired_subjects(criteria)),
    )
    return int(await uow.session.scalar(stmt) or 0)


async def expire_subjects(uow: UnitOfWork, workspace_id: str, subject_ids: list[str]) -> int:
    """Remove these subjects' ledger rows of this workspace (retention): the erasure flag raised and
    lowered inside the caller's transaction, as ``erase_subject`` does. Returns the rows removed."""
    if not subject_ids:
        return 0
    uow.session.add_all([ConsentErasure(subject_id=s) for s in subject_ids])
    await uow.session.flush()
    result: Any = await uow.session.execute(
        delete(ConsentRecord).where(
            ConsentRecord.workspace_id == workspace_id, ConsentRecord.subject_id.in_(subject_ids)
        )
    )
    await uow.session.execute(delete(ConsentErasure).where(ConsentErasure.subject_id.in_(subject_ids)))
    return int(result.rowcount or 0)
