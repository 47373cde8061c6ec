"""The back office's consent pages (ADR 0018): Settings -> Privacy purposes (create and change a
purpose, publish a new version of its notice) and the Consent view (the ledger searched, one record
with the exact notice it was given under). Each call checks the actor's permission itself and
audits what it changes (ids and codes only).

A version published as *material* raises the purpose's ``material_version``: consents given under an
older notice stop counting until answered again (``ledger.State.valid``).
"""

from __future__ import annotations

from sqlalchemy import func, select

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.consent import purposes as K
from confide.consent.models import ConsentRecord, Notice, Purpose
from confide.consent.notices import add_purpose, get_purpose, new_notice
from confide.consent.schemas import NoticeIn, PurposeIn, PurposePatch, RecordFilters
from confide.core import clock
from confide.core.db import UnitOfWork
from confide.core.errors import Conflict, Forbidden, Invalid, NotFound
from confide.permissions.policy import Permission, allows_any


# ---------------------------------------------------------------- who may
def _require_manage(actor: OperatorActor) -> None:
    if not allows_any(actor, Permission.CONSENT_MANAGE, Permission.SETTINGS_MANAGE):
        raise Forbidden("you do not have permission to do this")


def require_manage(actor: OperatorActor) -> None:
    """Settings → Privacy purposes: ``CONSENT_MANAGE`` or ``SETTINGS_MANAGE``."""
    _require_manage(actor)


def require_ledger(actor: OperatorActor) -> None:
    """The Consent view: ``CONSENT_MANAGE`` or ``SUBJECTS_VIEW``."""
    if not allows_any(actor, Permission.CONSENT_MANAGE, Permission.SUBJECTS_VIEW):
        raise Forbidden("you do not have permission to do this")


# ---------------------------------------------------------------- Settings -> Privacy purposes
async def _purpose_by_id(uow: UnitOfWork, actor: OperatorActor, purpose_id: object, *, lock: bool = False) -> Purpose:
    if not isinstance(purpose_id, str) or len(purpose_id) > 64:
        raise NotFound("purpose not found")
    stmt = select(Purpose).where(Purpose.id == purpose_id, Purpose.workspace_id == actor.workspace_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    purpose = await uow.session.scalar(stmt)
    if purpose is None:
        raise NotFound("purpose not found")
    return purpose


async def purpose_for_admin(uow: UnitOfWork, actor: OperatorActor, purpose_id: object) -> Purpose:
    _require_manage(actor)
    return await _purpose_by_id(uow, actor, purpose_id)


async def create_purpose(uow: UnitOfWork, actor: OperatorActor, data: PurposeIn) -> Purpose:
    _require_manage(actor)
    if await get_purpose(uow, actor.workspace_id, data.key) is not None:
        raise Conflict("a purpose with this key exists already")
    purpose = await add_purpose(
        uow,
        actor.workspace_id,
        key=data.key,
        name=data.name,
        basis=data.lawful_basis,
        notice=data.notice,
        language=data.language,
        description=data.description,
        retention_class=data.retention_class,
        recipients=data.recipients,
        enabled=data.enabled,
        by=actor.operator_id,
    )
    await audit.record(None, uow, "consent.purpose_created", actor=actor, target_type="consent_purpose",
                       target_id=purpose.id, detail={"purpose": purpose.key, "basis": purpose.lawful_basis})
    return purpose


async def update_purpose(uow: UnitOfWork, actor: OperatorActor, purpose_id: object, patch: PurposePatch) -> Purpose:
    _require_manage(actor)
    purpose = await _purpose_by_id(uow, actor, purpose_id, lock=True)
    changes = {k: v for k, v in patch.model_dump(exclude_unset=True).items() if v is not None}
    if purpose.required and (changes.get("enabled") is False or changes.get("lawful_basis") == K.CONSENT):
        raise Invalid("the support purpose is always on and cannot be made consent-based")
    for key, value in changes.items():
        setattr(purpose, key, value)
    purpose.updated_at = clock.now()
    await uow.session.flush()
    await audit.record(None, uow, "consent.purpose_updated", actor=actor, target_type="consent_purpose",
                       target_id=purpose.id, detail={"purpose": purpose.key, **{k: True for k in changes}})
    return purpose


async def publish_notice(uow: UnitOfWork, actor: OperatorActor, purpose_id: object, data: NoticeIn) -> Notice:
    """A new version of the purpose's notice (the old ones stay, as they were shown). ``material``:
    consents given under older versions stop counting until the visitor answers again."""
    _require_manage(actor)
    purpose = await _purpose_by_id(uow, actor, purpose_id, lock=True)  # one version number at a time
    version = purpose.latest_version + 1
    notice = new_notice(purpose, version, data.language, data.text, data.material, actor.operator_id)
    uow.session.add(notice)
    purpose.latest_version = version
    if data.material:
        purpose.material_version = version
    purpose.updated_at = clock.now()
    await uow.session.flush()
    await audit.record(None, uow, "consent.notice_published", actor=actor, target_type="consent_notice",
                       target_id=notice.id,
                       detail={"purpose": purpose.key, "version": version, "material": data.material})
    return notice


# ---------------------------------------------------------------- the Consent view
async def search_records(
    uow: UnitOfWork, actor: OperatorActor, filters: RecordFilters
) -> tuple[list[ConsentRecord], int]:
    require_ledger(actor)
    stmt = select(ConsentRecord).where(ConsentRecord.workspace_id == actor.workspace_id)
    if filters.purpose:
        stmt = stmt.where(ConsentRecord.purpose == filters.purpose)
    if filters.granted is not None:
        stmt = stmt.where(ConsentRecord.granted.is_(filters.granted))
    if filters.source:
        stmt = stmt.where(ConsentRecord.source == filters.source)
    if filters.site_id:
        stmt = stmt.where(ConsentRecord.site_id == filters.site_id)
    if filters.date_from:
        stmt = stmt.where(ConsentRecord.at >= filters.date_from)
    if filters.date_to:
        stmt = stmt.where(ConsentRecord.at <= filters.date_to)
    total = int(await uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = await uow.session.scalars(
        stmt.order_by(ConsentRecord.seq.desc()).offset((filters.page - 1) * filters.per_page).limit(filters.per_page)
    )
    return list(rows.all()), total


async def record_with_notice(
    uow: UnitOfWork, actor: OperatorActor, record_id: object
) -> tuple[ConsentRecord, Notice | None]:
    """One ledger row and the exact notice it was given under (the back office's record page)."""
    require_ledger(actor)
    if not isinstance(record_id, str) or len(record_id) > 64:
        raise NotFound("record not found")
    row = await uow.session.scalar(
        select(ConsentRecord).where(ConsentRecord.id == record_id, ConsentRecord.workspace_id == actor.workspace_id)
    )
    if row is None:
        raise NotFound("record not found")
    notice = await uow.session.get(Notice, row.notice_id) if row.notice_id else None
    return row, notice
