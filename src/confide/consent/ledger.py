"""The consent ledger (ADR 0018, docs/privacy/consent.md): a subject's standing for each purpose,
read from ``consent_records``, and the one way a choice is written (``record``), from the widget's
form, its Privacy view, an e-mail link or an operator's statement.

The ledger is append-only (database triggers, ``rules.py``; rows go only through ``removal``): the
current state of a purpose for a subject is its latest row (highest ``seq``). A **withdrawal** (or
an objection) cancels the subject's pending jobs of that purpose in the same transaction and queues
``integration.consent_withdrawn`` (ids only) in the durable job outbox (run by ``hooks``). Every
choice recorded is audited (ids and codes only). Whether processing may run is ``questions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from confide.audit import service as audit
from confide.auth.actors import Actor, OperatorActor, VisitorActor
from confide.consent import purposes as K
from confide.consent.models import ConsentRecord, Notice, Purpose
from confide.consent.notices import current_notice, get_purpose, list_purposes, notice_in_workspace, offered_purposes
from confide.core import clock, crypto, jobs
from confide.core.db import UnitOfWork
from confide.core.errors import Conflict, Invalid, NotFound
from confide.core.runtime import Runtime
from confide.workspaces.models import Site

WITHDRAWN_KIND = "integration.consent_withdrawn"


# ---------------------------------------------------------------- a subject's standing
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


async def latest_record(uow: UnitOfWork, workspace_id: str, subject_id: str, purpose: str) -> ConsentRecord | None:
    """The subject's latest row for the purpose (its current choice), or None: never answered."""
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


def standing(purpose: Purpose, record: ConsentRecord | None) -> State:
    """The standing that ``record`` (the latest row, or None) gives for ``purpose``."""
    if record is None:
        return State(purpose.key, None, False, None)
    valid = (record.notice_version or 0) >= purpose.material_version
    return State(purpose.key, record.granted, valid, record)


async def state_of(uow: UnitOfWork, purpose: Purpose, subject_id: str) -> State:
    return standing(purpose, await latest_record(uow, purpose.workspace_id, subject_id, purpose.key))


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
    return {p.key: standing(p, by_key.get(p.key)) for p in await list_purposes(uow, workspace_id)}


async def granted_keys(uow: UnitOfWork, workspace_id: str, subject_id: str) -> dict[str, bool]:
    """Purpose key -> whether processing may run, for the purposes the subject answered (the
    operator's visitor panel)."""
    out: dict[str, bool] = {}
    for key, st in (await states(uow, workspace_id, subject_id)).items():
        if st.granted is not None:
            out[key] = bool(st.granted) and st.valid
    return out


# ---------------------------------------------------------------- recording a choice
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
    before = await latest_record(uow, workspace_id, subject_id, found.key)
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
