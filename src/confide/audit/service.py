"""Record and verify the audit log.

``record`` queues a row on the caller's unit of work; the rows are chained just before that unit
commits (``UnitOfWork.before_commit``), under the lock of the chain head. Taking the head last
means it is never held while a transaction waits for any other row, so it cannot take part in a
deadlock, and the chain's order is the commit order. Each link is an HMAC (key outside the
database, ``crypto.derive_audit_key``) over the previous link and the row's canonical form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from confide.audit.models import AuditEvent, AuditHead
from confide.auth.actors import Actor, OperatorActor, VisitorActor
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.runtime import Runtime

GENESIS = "0" * 64
_PENDING = "confide.audit.pending"
# Values a detail may hold: ids, codes, numbers, booleans. No spaces and no "@": no names, no
# e-mail addresses, no message text can pass.
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9_.:/+\-]{0,64}$")
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
OUTCOMES = frozenset({"ok", "failed", "denied"})

DetailValue = str | int | bool | None


@dataclass(frozen=True)
class _Pending:
    at: datetime
    workspace_id: str | None
    actor_type: str
    actor_id: str | None
    action: str
    outcome: str
    target_type: str | None
    target_id: str | None
    detail: str


def _canonical_detail(detail: Mapping[str, DetailValue] | None) -> str:
    clean: dict[str, DetailValue] = {}
    for key, value in (detail or {}).items():
        if not _SAFE_TEXT.match(key):
            raise ValueError(f"audit detail key not allowed: {key!r}")
        if isinstance(value, str) and not _SAFE_TEXT.match(value):
            raise ValueError(f"audit detail {key!r} holds free text; audit rows carry ids and codes only")
        if not isinstance(value, str | int | bool | type(None)):
            raise ValueError(f"audit detail {key!r} has an unsupported type")
        clean[key] = value
    return json.dumps(clean, sort_keys=True, separators=(",", ":"))


def _id(value: str | None, what: str) -> str | None:
    if value is not None and not _SAFE_TEXT.match(value):
        raise ValueError(f"audit {what} must be an id")
    return value


def _who(actor: Actor | None) -> tuple[str, str | None, str | None]:
    if isinstance(actor, OperatorActor):
        return "operator", actor.operator_id, actor.workspace_id
    if isinstance(actor, VisitorActor):
        return "visitor", actor.visitor_id, actor.workspace_id
    return "system", None, None


async def record(
    rt: Runtime,
    uow: UnitOfWork,
    action: str,
    *,
    actor: Actor | None = None,
    actor_type: str | None = None,
    actor_id: str | None = None,
    workspace_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    outcome: str = "ok",
    detail: Mapping[str, DetailValue] | None = None,
) -> None:
    """Audit ``action`` in the caller's transaction: it is stored if and only if that commits.

    ``actor`` fills the actor and workspace; ``actor_type``/``actor_id`` override it (e.g. an
    ``anonymous`` failed login, or an operator known only by id). Raises ``ValueError`` (a bug in
    the caller, never a user's input) when a value is not an id or a code.
    """
    if not _ACTION.match(action):
        raise ValueError(f"audit action must be dotted lower-case words: {action!r}")
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome must be one of {sorted(OUTCOMES)}")
    kind, who, ws = _who(actor)
    entry = _Pending(
        at=clock.now(),
        workspace_id=_id(workspace_id or ws, "workspace"),
        actor_type=actor_type or kind,
        actor_id=_id(actor_id or who, "actor"),
        action=action,
        outcome=outcome,
        target_type=_id(target_type, "target type"),
        target_id=_id(target_id, "target"),
        detail=_canonical_detail(detail),
    )
    pending: list[_Pending] | None = uow.session.info.get(_PENDING)
    if pending is None:
        pending = uow.session.info[_PENDING] = []
        key = rt.audit_key

        async def chain() -> None:
            rows = uow.session.info.pop(_PENDING, [])
            if rows:
                await _append(uow, key, rows)

        uow.before_commit(chain)
    pending.append(entry)


def canonical(row: AuditEvent | _Pending, seq: int) -> str:
    at = row.at.astimezone(UTC).isoformat(timespec="microseconds")
    fields: list[Any] = [
        seq,
        at,
        row.workspace_id,
        row.actor_type,
        row.actor_id,
        row.action,
        row.outcome,
        row.target_type,
        row.target_id,
        row.detail,
    ]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


async def _lock_head(uow: UnitOfWork) -> AuditHead:
    session = uow.session
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(AuditHead).values(id=1, seq=0, hash=GENESIS).on_conflict_do_nothing(index_elements=["id"])
    )
    head = await session.scalar(
        select(AuditHead).where(AuditHead.id == 1).with_for_update().execution_options(populate_existing=True)
    )
    assert head is not None  # inserted just above when missing
    return head


async def _append(uow: UnitOfWork, key: bytes, rows: list[_Pending]) -> None:
    head = await _lock_head(uow)
    seq, prev = head.seq, head.hash
    for row in rows:
        seq += 1
        link = crypto.chain_hash(key, prev, canonical(row, seq))
        uow.session.add(
            AuditEvent(
                seq=seq,
                at=row.at,
                workspace_id=row.workspace_id,
                actor_type=row.actor_type,
                actor_id=row.actor_id,
                action=row.action,
                outcome=row.outcome,
                target_type=row.target_type,
                target_id=row.target_id,
                detail=row.detail,
                prev_hash=prev,
                hash=link,
            )
        )
        prev = link
    head.seq, head.hash = seq, prev
    await uow.session.flush()


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None


async def verify(rt: Runtime, uow: UnitOfWork, *, batch: int = 2000) -> Verification:
    """Walk the chain from its first stored row: every link must follow from the previous one and
    from its row's content, sequence numbers must have no gap, and the last link must be the head's.
    Names the first row that breaks it."""
    checked = 0
    prev: str | None = None
    expected_seq: int | None = None
    last_seq = 0
    while True:
        rows = (
            await uow.session.scalars(
                select(AuditEvent).where(AuditEvent.seq > last_seq).order_by(AuditEvent.seq).limit(batch)
            )
        ).all()
        if not rows:
            break
        for row in rows:
            if expected_seq is not None and row.seq != expected_seq:
                return Verification(False, checked, expected_seq, "a row is missing")
            if prev is not None and row.prev_hash != prev:
                return Verification(False, checked, row.seq, "the link to the previous row does not match")
            if expected_seq is None and row.seq == 1 and row.prev_hash != GENESIS:
                return Verification(False, checked, row.seq, "the first row does not start the chain")
            if crypto.chain_hash(rt.audit_key, row.prev_hash, canonical(row, row.seq)) != row.hash:
                return Verification(False, checked, row.seq, "the row's content does not match its hash")
            prev, expected_seq, last_seq = row.hash, row.seq + 1, row.seq
            checked += 1
        uow.session.expunge_all()
    head = await uow.session.get(AuditHead, 1)
    if head is not None and (head.seq != last_seq or (checked and head.hash != prev)):
        return Verification(False, checked, last_seq + 1, "rows are missing at the end of the chain")
    return Verification(True, checked)
