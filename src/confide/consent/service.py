"""Purposes, notices, the consent ledger and ``may`` (ADR 0018, docs/privacy/consent.md).

- A workspace's **purposes** each carry a lawful basis. Consent-based ones need a granted record
  under a still-valid notice; legitimate-interest and contract ones run unless the subject objected.
- **Notices** are versioned per purpose (one version counter across languages) and never edited:
  publishing a text makes a new version. A version published as *material* raises the purpose's
  ``material_version``: consents given under an older notice stop counting until answered again.
- The **ledger** (``consent_records``) is append-only (database triggers, ``consent/rules.py``);
  the current state of a purpose for a subject is its latest row (highest ``seq``).
- A **withdrawal** (or an objection) cancels the subject's pending jobs of that purpose in the same
  transaction and queues ``integration.consent_withdrawn`` (ids only) in the durable job outbox.
- Everything recorded is audited (ids and codes only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import structlog
from sqlalchemy import delete, func, select

from confide.audit import service as audit
from confide.auth import visitor_tokens
from confide.auth.actors import Actor, OperatorActor, VisitorActor
from confide.consent import purposes as K
from confide.consent.models import ConsentErasure, ConsentRecord, Notice, Purpose
from confide.consent.schemas import NoticeIn, PurposeIn, PurposePatch, RecordFilters, WidgetChoiceIn, WidgetPrivacyIn
from confide.core import clock, crypto, expiry, jobs, mail
from confide.core.db import UnitOfWork
from confide.core.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from confide.core.runtime import Runtime
from confide.permissions.policy import Permission, allows_any
from confide.restriction import service as restriction
from confide.workspaces.models import Site

log = structlog.get_logger(__name__)

WITHDRAWN_KIND = "integration.consent_withdrawn"
LINK_TTL_S = 20 * 365 * 24 * 3600  # the e-mail link does not need to expire; the signature is what counts


# ---------------------------------------------------------------- purposes and notices
def _now() -> Any:
    return clock.now()


def _notice(purpose: Purpose, version: int, language: str, text: str, material: bool, by: str | None) -> Notice:
    return Notice(
        id=crypto.new_id(),
        workspace_id=purpose.workspace_id,
        purpose_id=purpose.id,
        version=version,
        language=language,
        text=text,
        sha256=crypto.sha256_hex(text),
        material=material,
        created_at=_now(),
        created_by=by,
    )


async def _add_purpose(
    uow: UnitOfWork,
    workspace_id: str,
    *,
    key: str,
    name: str,
    basis: str,
    notice: str,
    language: str = K.DEFAULT_LANGUAGE,
    description: str = "",
    retention_class: str = "",
    recipients: str = "",
    required: bool = False,
    enabled: bool = True,
    by: str | None = None,
) -> Purpose:
    now = _now()
    purpose = Purpose(
        id=crypto.new_id(),
        workspace_id=workspace_id,
        key=key,
        name=name,
        lawful_basis=basis,
        description=description,
        retention_class=retention_class,
        recipients=recipients,
        enabled=enabled,
        required=required,
        latest_version=1,
        material_version=0,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(purpose)
    await uow.session.flush()
    uow.session.add(_notice(purpose, 1, language, notice, False, by))
    await uow.session.flush()
    return purpose


async def seed_defaults(uow: UnitOfWork, workspace_id: str) -> None:
    """The default purposes of a new workspace (keys already there are left as they are)."""
    have = set((await uow.session.scalars(select(Purpose.key).where(Purpose.workspace_id == workspace_id))).all())
    for d in K.DEFAULTS:
        if d.key not in have:
            await _add_purpose(
                uow,
                workspace_id,
                key=d.key,
                name=d.name,
                basis=d.lawful_basis,
                notice=d.notice,
                description=d.description,
                retention_class=d.retention_class,
                recipients=d.recipients,
                required=d.required,
            )


async def adopt_site_purposes(uow: UnitOfWork, workspace_id: str, site_purposes: list[dict[str, Any]]) -> None:
    """A site's list of offered purposes names workspace purposes by key; a key the workspace does
    not have yet becomes a consent-based purpose whose first notice is the site's label."""
    if not site_purposes:
        return
    await seed_defaults(uow, workspace_id)
    have = set((await uow.session.scalars(select(Purpose.key).where(Purpose.workspace_id == workspace_id))).all())
    for item in site_purposes:
        key = str(item.get("key", ""))
        if key and key not in have:
            label = str(item.get("label") or key)[:4000]
            await _add_purpose(uow, workspace_id, key=key, name=label[:200], basis=K.CONSENT, notice=label,
                               retention_class="consent")
            have.add(key)


async def list_purposes(uow: UnitOfWork, workspace_id: str) -> list[Purpose]:
    stmt = select(Purpose).where(Purpose.workspace_id == workspace_id).order_by(Purpose.created_at, Purpose.key)
    return list((await uow.session.scalars(stmt)).all())


async def get_purpose(uow: UnitOfWork, workspace_id: str, key: object) -> Purpose | None:
    if not isinstance(key, str) or len(key) > 40:
        return None
    return await uow.session.scalar(select(Purpose).where(Purpose.workspace_id == workspace_id, Purpose.key == key))


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
    purpose = await _add_purpose(
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
    purpose.updated_at = _now()
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
    notice = _notice(purpose, version, data.language, data.text, data.material, actor.operator_id)
    uow.session.add(notice)
    purpose.latest_version = version
    if data.material:
        purpose.material_version = version
    purpose.updated_at = _now()
    await uow.session.flush()
    await audit.record(None, uow, "consent.notice_published", actor=actor, target_type="consent_notice",
                       target_id=notice.id,
                       detail={"purpose": purpose.key, "version": version, "material": data.material})
    return notice


async def notices_of(uow: UnitOfWork, purpose: Purpose) -> list[Notice]:
    stmt = select(Notice).where(Notice.purpose_id == purpose.id).order_by(Notice.version.desc(), Notice.language)
    return list((await uow.session.scalars(stmt)).all())


async def current_notice(uow: UnitOfWork, purpose: Purpose, language: str | None = None) -> Notice | None:
    """The newest notice in ``language``, else in the default language, else in any language."""
    for lang in dict.fromkeys([language or K.DEFAULT_LANGUAGE, K.DEFAULT_LANGUAGE, None]):
        stmt = select(Notice).where(Notice.purpose_id == purpose.id)
        if lang is not None:
            stmt = stmt.where(Notice.language == lang)
        notice = await uow.session.scalar(stmt.order_by(Notice.version.desc()).limit(1))
        if notice is not None:
            return notice
    return None


async def notice_in_workspace(uow: UnitOfWork, workspace_id: str, notice_id: object) -> Notice:
    if not isinstance(notice_id, str) or len(notice_id) > 64:
        raise NotFound("notice not found")
    notice = await uow.session.scalar(
        select(Notice).where(Notice.id == notice_id, Notice.workspace_id == workspace_id)
    )
    if notice is None:
        raise NotFound("notice not found")
    return notice


async def offered_purposes(uow: UnitOfWork, site: Site) -> list[Purpose]:
    """What the site's widget asks about: the enabled consent-based purposes of the workspace, or
    only those the site lists (``site.purposes`` keys) when it lists any."""
    chosen = [str(p.get("key")) for p in site.purposes or []]
    out = [
        p
        for p in await list_purposes(uow, site.workspace_id)
        if p.enabled and p.lawful_basis == K.CONSENT and (not chosen or p.key in chosen)
    ]
    if chosen:
        order = {k: i for i, k in enumerate(chosen)}
        out.sort(key=lambda p: order.get(p.key, 0))
    return out


async def widget_purposes(uow: UnitOfWork, site: Site, language: str | None = None) -> list[dict[str, Any]]:
    """The widget's consent checkboxes: each offered purpose with the exact notice it shows."""
    out = []
    for purpose in await offered_purposes(uow, site):
        notice = await current_notice(uow, purpose, language)
        if notice is None:
            continue
        out.append({
            "key": purpose.key,
            "name": purpose.name,
            "label": notice.text,
            "version": notice.version,
            "notice_id": notice.id,
            "language": notice.language,
        })
    return out


# ---------------------------------------------------------------- the ledger
@dataclass(frozen=True)
class State:
    """A subject's standing for one purpose, from the ledger."""

    purpose: str
    granted: bool | None  # the latest row's choice; None: never answered
    valid: bool  # that choice was made under a notice still counting (no material change since)
    record: ConsentRecord | None

    @property
    def needs_answer(self) -> bool:
        return self.granted is None or (self.granted and not self.valid)


async def _latest(uow: UnitOfWork, workspace_id: str, subject_id: str, purpose: str) -> ConsentRecord | None:
    return await uow.session.scalar(
        select(ConsentRecord)
        .where(
            ConsentRecord.workspace_id == workspace_id,
            ConsentRecord.subject_id == subject_id,
            ConsentRecord.purpose == purpose,
        )
        .order_by(ConsentRecord.seq.desc())
        .limit(1)
    )


def _state(purpose: Purpose, record: ConsentRecord | None) -> State:
    if record is None:
        return State(purpose.key, None, False, None)
    valid = (record.notice_version or 0) >= purpose.material_version
    return State(purpose.key, record.granted, valid, record)


async def state_of(uow: UnitOfWork, purpose: Purpose, subject_id: str) -> State:
    return _state(purpose, await _latest(uow, purpose.workspace_id, subject_id, purpose.key))


async def states(uow: UnitOfWork, workspace_id: str, subject_id: str) -> dict[str, State]:
    """Every purpose of the workspace with the subject's standing (one query for the latest rows)."""
    latest = (
        select(ConsentRecord.purpose, func.max(ConsentRecord.seq).label("seq"))
        .where(ConsentRecord.workspace_id == workspace_id, ConsentRecord.subject_id == subject_id)
        .group_by(ConsentRecord.purpose)
        .subquery()
    )
    rows = (await uow.session.scalars(select(ConsentRecord).join(latest, ConsentRecord.seq == latest.c.seq))).all()
    by_key = {r.purpose: r for r in rows}
    return {p.key: _state(p, by_key.get(p.key)) for p in await list_purposes(uow, workspace_id)}


async def may(uow: UnitOfWork, *, workspace_id: str, subject_id: str, purpose: str) -> bool:
    """May the subject's data be processed for ``purpose`` now? Ask before every processing.

    Consent-based: only with a granted record under a notice that still counts. Legitimate
    interest or contract: yes unless the subject objected (their latest record withdraws). An
    unknown or disabled purpose: never. A person whose processing is restricted (Art. 18, ADR
    0031): never, whatever the purpose (their data is only stored)."""
    found = await get_purpose(uow, workspace_id, purpose)
    if found is None or not found.enabled:
        return False
    if await restriction.is_restricted(uow, workspace_id, subject_id):
        return False
    if found.required:
        return True
    st = await state_of(uow, found, subject_id)
    if found.lawful_basis == K.CONSENT:
        return bool(st.granted) and st.valid
    return st.granted is not False


async def objected(uow: UnitOfWork, *, workspace_id: str, subject_id: str, purpose: str) -> bool:
    """Did the subject say no to ``purpose``: is their latest record a withdrawal, or a box shown
    and left unticked? What a processing on a documented legitimate interest honours (Art. 21).
    A restricted person (Art. 18) counts as having said no to everything."""
    if await restriction.is_restricted(uow, workspace_id, subject_id):
        return True
    found = await get_purpose(uow, workspace_id, purpose)
    if found is None:
        return False
    return (await state_of(uow, found, subject_id)).granted is False


async def allowed_subjects(uow: UnitOfWork, *, workspace_id: str, purpose: str, subject_ids: list[str]) -> set[str]:
    """Of ``subject_ids``, those ``may`` allows for ``purpose`` (a marketing list is built from this,
    so a withdrawal takes the person off it at once). One query for the latest rows. Restricted
    people (Art. 18) are never among them."""
    found = await get_purpose(uow, workspace_id, purpose)
    if found is None or not found.enabled or not subject_ids:
        return set()
    restricted = await restriction.restricted_among(uow, workspace_id, subject_ids)
    subject_ids = [s for s in subject_ids if s not in restricted]
    if not subject_ids:
        return set()
    if found.required:
        return set(subject_ids)
    latest = (
        select(ConsentRecord.subject_id, func.max(ConsentRecord.seq).label("seq"))
        .where(ConsentRecord.workspace_id == workspace_id, ConsentRecord.purpose == found.key,
               ConsentRecord.subject_id.in_(subject_ids))
        .group_by(ConsentRecord.subject_id)
        .subquery()
    )
    rows = (await uow.session.scalars(select(ConsentRecord).join(latest, ConsentRecord.seq == latest.c.seq))).all()
    states = {r.subject_id: _state(found, r) for r in rows}
    if found.lawful_basis == K.CONSENT:
        return {s for s, st in states.items() if st.granted and st.valid}
    return {s for s in subject_ids if s not in states or states[s].granted is not False}


def _who(actor: Actor | None) -> dict[str, Any]:
    if isinstance(actor, OperatorActor):
        return {"actor": actor}
    if isinstance(actor, VisitorActor):
        return {"actor": actor}
    return {}


async def record(
    rt: Runtime,
    uow: UnitOfWork,
    *,
    workspace_id: str,
    subject_id: str,
    purpose: str,
    granted: bool,
    source: str,
    notice_id: str | None = None,
    language: str | None = None,
    site_id: str | None = None,
    conversation_id: str | None = None,
    message_id: str | None = None,
    actor: Actor | None = None,
    shown_earlier: bool = False,
) -> ConsentRecord:
    """Append one choice to the ledger (and the audit log). ``notice_id``: the notice the subject
    was shown; it must be this purpose's current one (else ``Conflict``: show the new text).
    Without it, the current notice in ``language`` is the one recorded. ``shown_earlier``: the
    notice may be an older version of this purpose (a form filled in while a new text was published:
    the proof is what was shown; after a material change such a consent simply does not count).

    A withdrawal (or objection) cancels the subject's pending jobs of the purpose now and, when it
    ends a standing grant or is an objection, queues ``integration.consent_withdrawn``."""
    if source not in K.SOURCES:
        raise ValueError(f"unknown consent source {source!r}")
    found = await get_purpose(uow, workspace_id, purpose)
    if found is None or not found.enabled:
        raise NotFound("purpose not found")
    if found.required and not granted:
        raise Invalid(f"{found.name} cannot be refused: it is how we answer you")
    notice: Notice | None
    if notice_id is not None:
        shown = await notice_in_workspace(uow, workspace_id, notice_id)
        current = await current_notice(uow, found, shown.language)
        if shown.purpose_id != found.id:
            raise NotFound("notice not found")
        notice = shown
        if not shown_earlier and (current is None or current.id != shown.id):
            raise Conflict("this notice has changed; read the new text and choose again")
    else:
        notice = await current_notice(uow, found, language)
    before = await _latest(uow, workspace_id, subject_id, found.key)
    row = ConsentRecord(
        id=crypto.new_ordered_id(),
        workspace_id=workspace_id,
        subject_id=subject_id,
        purpose=found.key,
        granted=granted,
        notice_id=notice.id if notice else None,
        notice_version=notice.version if notice else None,
        notice_hash=notice.sha256 if notice else None,
        source=source,
        at=clock.now(),
        site_id=site_id,
        conversation_id=conversation_id,
        message_id=message_id,
        actor_id=actor.operator_id if isinstance(actor, OperatorActor) else None,
    )
    uow.session.add(row)
    await uow.session.flush()
    cancelled = 0
    if not granted:
        cancelled = await jobs.cancel_pending(uow, subject_id=subject_id, purpose=found.key)
        if (before is not None and before.granted) or found.lawful_basis != K.CONSENT:
            jobs.enqueue(
                rt,
                uow,
                WITHDRAWN_KIND,
                {"workspace_id": workspace_id, "subject_id": subject_id, "purpose": found.key, "record_id": row.id},
                workspace_id=workspace_id,
            )
    extra: dict[str, Any] = {}
    if actor is None:
        extra = {"actor_type": "visitor" if source in (K.WIDGET, K.EMAIL_LINK) else "system",
                 "actor_id": subject_id if source in (K.WIDGET, K.EMAIL_LINK) else None,
                 "workspace_id": workspace_id}
    await audit.record(
        rt,
        uow,
        "consent.granted" if granted else "consent.withdrawn",
        **_who(actor),
        **extra,
        target_type="consent_record",
        target_id=row.id,
        detail={"purpose": found.key, "source": source, "notice_version": row.notice_version,
                "subject": subject_id, "jobs_cancelled": cancelled},
    )
    return row


async def record_choices(
    rt: Runtime,
    uow: UnitOfWork,
    *,
    site: Site,
    subject_id: str,
    choices: dict[str, Any],
    conversation_id: str | None = None,
    language: str | None = None,
) -> list[ConsentRecord]:
    """The pre-chat (or leave-a-message) form's boxes: one row per purpose the widget offered,
    granted only where ticked (silence is not consent). An unknown key is refused."""
    offered = {p.key: p for p in await offered_purposes(uow, site)}
    clean: dict[str, tuple[bool, str | None]] = {}
    for key, value in choices.items():
        if key not in offered:
            raise Invalid(f"unknown consent purpose: {str(key)[:40]}")
        clean[key] = _choice(key, value)
    return [
        await record(rt, uow, workspace_id=site.workspace_id, subject_id=subject_id, purpose=key,
                     granted=clean.get(key, (False, None))[0], source=K.WIDGET, language=language,
                     site_id=site.id, conversation_id=conversation_id, notice_id=clean.get(key, (False, None))[1],
                     shown_earlier=True)
        for key in offered
    ]


def _choice(key: str, value: object) -> tuple[bool, str | None]:
    """A form's answer: ``true``/``false``, or ``{"granted": bool, "notice_id": "…"}`` (the notice shown)."""
    if isinstance(value, bool):
        return value, None
    if isinstance(value, dict) and set(value) <= {"granted", "notice_id"} and isinstance(value.get("granted"), bool):
        notice_id = value.get("notice_id")
        if notice_id is None or (isinstance(notice_id, str) and 0 < len(notice_id) <= 64):
            return value["granted"], notice_id
    raise Invalid(f"consent {key[:40]}: must be true or false")


async def granted_keys(uow: UnitOfWork, workspace_id: str, subject_id: str) -> dict[str, bool]:
    """Purpose key -> whether processing may run, for the purposes the subject answered (the
    operator's visitor panel)."""
    out: dict[str, bool] = {}
    for key, st in (await states(uow, workspace_id, subject_id)).items():
        if st.granted is not None:
            out[key] = bool(st.granted) and st.valid
    return out


async def statement_purposes(uow: UnitOfWork, workspace_id: str) -> list[dict[str, str]]:
    """The purposes an operator may record a visitor's statement about (enabled, refusable)."""
    return [{"key": p.key, "name": p.name} for p in await list_purposes(uow, workspace_id)
            if p.enabled and not p.required]


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


# ---------------------------------------------------------------- the widget's Privacy view
async def privacy_view(uow: UnitOfWork, site: Site, subject_id: str, language: str | None = None) -> dict[str, Any]:
    """What the widget's Privacy view lists: every enabled purpose of the workspace (the ones the
    visitor may change first) with its current notice and the visitor's standing."""
    purposes = [p for p in await list_purposes(uow, site.workspace_id) if p.enabled]
    offered = {p.key for p in await offered_purposes(uow, site)}
    all_states = await states(uow, site.workspace_id, subject_id)
    items = []
    for p in purposes:
        if p.lawful_basis == K.CONSENT and p.key not in offered:
            continue
        notice = await current_notice(uow, p, language)
        st = all_states[p.key]
        items.append({
            "key": p.key,
            "name": p.name,
            "basis": p.lawful_basis,
            "required": p.required,
            "description": p.description,
            "granted": (st.granted is not False) if p.lawful_basis != K.CONSENT else bool(st.granted) and st.valid,
            "needs_answer": p.lawful_basis == K.CONSENT and bool(st.granted) and not st.valid,
            "notice": {"id": notice.id, "version": notice.version, "language": notice.language, "text": notice.text}
            if notice else None,
        })
    return {"purposes": items, "needs_answer": any(i["needs_answer"] for i in items)}


def _visitor(rt: Runtime, site: Site, token: object) -> VisitorActor:
    """The visitor a widget call names: a genuine, unexpired token of this very site."""
    who = visitor_tokens.verify(rt.visitor_tokens, token, site_id=site.id)
    if who.workspace_id != site.workspace_id:
        raise Unauthorized("invalid or expired visitor token")
    return who


async def visitor_privacy(rt: Runtime, uow: UnitOfWork, site: Site, data: WidgetPrivacyIn) -> dict[str, Any]:
    who = _visitor(rt, site, data.token)
    return await privacy_view(uow, site, who.visitor_id, data.language)


async def visitor_choice(rt: Runtime, uow: UnitOfWork, site: Site, data: WidgetChoiceIn) -> dict[str, Any]:
    """One click in the widget's Privacy view: grant or withdraw one purpose the view lists."""
    who = _visitor(rt, site, data.token)
    listed = {p["key"] for p in (await privacy_view(uow, site, who.visitor_id, data.language))["purposes"]}
    if data.purpose not in listed:
        raise NotFound("purpose not found")
    await record(rt, uow, workspace_id=site.workspace_id, subject_id=who.visitor_id, purpose=data.purpose,
                 granted=data.granted, source=K.WIDGET, notice_id=data.notice_id, language=data.language,
                 site_id=site.id, actor=who)
    return await privacy_view(uow, site, who.visitor_id, data.language)


# ---------------------------------------------------------------- one-click withdrawal links
def withdrawal_token(rt: Runtime, *, workspace_id: str, subject_id: str, purpose: str) -> str:
    exp = int((clock.now() + timedelta(seconds=LINK_TTL_S)).timestamp())
    return rt.consent_links.sign({"w": workspace_id, "s": subject_id, "p": purpose, "exp": exp})


def withdrawal_url(rt: Runtime, *, workspace_id: str, subject_id: str, purpose: str) -> str:
    token = withdrawal_token(rt, workspace_id=workspace_id, subject_id=subject_id, purpose=purpose)
    return f"{rt.settings.base_url}/consent/withdraw/{quote(token, safe='')}"


def marketing_headers(url: str) -> dict[str, str]:
    """RFC 2369 / RFC 8058 one-click unsubscribe headers for a marketing message."""
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def open_withdrawal_token(rt: Runtime, token: object) -> tuple[str, str, str]:
    """(workspace id, subject id, purpose key) of a genuine link; ``NotFound`` for anything else."""
    claims = rt.consent_links.verify(token, clock.now().timestamp()) if isinstance(token, str) else None
    if claims is None:
        raise NotFound("this link is not valid")
    w, s, p = claims.get("w"), claims.get("s"), claims.get("p")
    if not (isinstance(w, str) and isinstance(s, str) and isinstance(p, str)):
        raise NotFound("this link is not valid")
    return w, s, p


async def link_view(rt: Runtime, uow: UnitOfWork, token: object) -> dict[str, Any]:
    workspace_id, subject_id, key = open_withdrawal_token(rt, token)
    purpose = await get_purpose(uow, workspace_id, key)
    if purpose is None:
        raise NotFound("this link is not valid")
    st = await state_of(uow, purpose, subject_id)
    return {"name": purpose.name, "key": purpose.key, "granted": bool(st.granted) and st.valid}


async def withdraw_by_link(rt: Runtime, uow: UnitOfWork, token: object) -> ConsentRecord:
    """Withdraw the link's one purpose. A link used again (mail clients may POST twice) appends
    nothing more while the withdrawal stands."""
    workspace_id, subject_id, key = open_withdrawal_token(rt, token)
    latest = await _latest(uow, workspace_id, subject_id, key)
    if latest is not None and not latest.granted:
        return latest
    return await record(rt, uow, workspace_id=workspace_id, subject_id=subject_id, purpose=key, granted=False,
                        source=K.EMAIL_LINK)


async def enqueue_marketing_mail(
    rt: Runtime,
    uow: UnitOfWork,
    *,
    workspace_id: str,
    subject_id: str,
    to: str,
    subject: str,
    text: str,
    purpose: str = K.MARKETING_EMAIL,
) -> str | None:
    """Queue a marketing message only if ``may`` allows it, with its one-click withdrawal link in
    the body and the List-Unsubscribe headers. Returns the job id, or None when not allowed."""
    if not await may(uow, workspace_id=workspace_id, subject_id=subject_id, purpose=purpose):
        return None
    url = withdrawal_url(rt, workspace_id=workspace_id, subject_id=subject_id, purpose=purpose)
    body = f"{text}\n\n--\nTo stop these e-mails, open: {url}\n"
    return mail.enqueue_mail(rt, uow, to=[to], subject=subject, text=body, workspace_id=workspace_id,
                             subject_id=subject_id, purpose=purpose, headers=marketing_headers(url))


# ---------------------------------------------------------------- the back office's Consent view
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


@jobs.purpose_guard
async def _job_may_run(rt: Runtime, job: jobs.Claimed) -> bool:
    """A queued job for a purpose runs only if ``may`` still allows it when its turn comes."""
    if job.workspace_id is None or job.subject_id is None or job.purpose is None:
        return False
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await may(uow, workspace_id=job.workspace_id, subject_id=job.subject_id, purpose=job.purpose)


@jobs.handler(WITHDRAWN_KIND)
async def _deliver_withdrawn(rt: Runtime, payload: dict[str, Any]) -> None:
    """The integrations outbox: nothing is configured to receive it yet (webhooks and CRM calls
    come in a later issue, and will be delivered from here), so the event is done once run."""
    log.info("consent_withdrawn_event", purpose=payload.get("purpose"), record_id=payload.get("record_id"))
