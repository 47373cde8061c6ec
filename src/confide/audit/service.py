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
# Where a session finds the chain key when its caller has no Runtime at hand (workspaces.service):
# build_runtime puts it into every session's ``info`` (core/runtime.py).
KEY_INFO = "confide.audit_key"
PRUNED = "audit.pruned"
# Values a detail may hold: ids, codes, numbers, booleans. No spaces and no "@": no names, no
# e-mail addresses, no message text can pass.
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9_.:/+\-]{0,64}$")
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
OUTCOMES = frozenset({"ok", "failed", "denied"})

# A detail may also hold a list of ids (a list view's rows: ``record_list_view``), at most this many.
MAX_LISTED = 100

DetailValue = str | int | bool | None | list[str]


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
        if isinstance(value, list | tuple):
            if len(value) > MAX_LISTED or not all(isinstance(v, str) and _SAFE_TEXT.match(v) for v in value):
                raise ValueError(f"audit detail {key!r} must be a list of at most {MAX_LISTED} ids")
            clean[key] = list(value)
            continue
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
    rt: Runtime | None,
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
    the caller, never a user's input) when a value is not an id or a code. ``rt`` may be None in
    a service that has none: the key then comes from the session (``KEY_INFO``).
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
        key: bytes | None = rt.audit_key if rt is not None else uow.session.info.get(KEY_INFO)
        if key is None:
            raise RuntimeError("the audit key is unknown to this session: pass the Runtime")
        pending = uow.session.info[_PENDING] = []

        async def chain() -> None:
            rows = uow.session.info.pop(_PENDING, [])
            if rows:
                await _append(uow, key, rows)

        uow.before_commit(chain)
    pending.append(entry)


async def record_list_view(
    rt: Runtime | None,
    uow: UnitOfWork,
    action: str,
    *,
    actor: OperatorActor,
    target_type: str,
    ids: list[str],
    via: str,
    page: int,
    total: int,
) -> None:
    """The read-access log of a list (Stored Chats, Offline Requests): one row per list view that
    showed someone's data, naming every row shown (``detail.ids``, at most ``MAX_LISTED``: a page
    never holds more), with the page and how many matched. ``target_type`` is what the ids are
    (``conversation``); the row's own target is left empty. An empty page writes nothing."""
    if not ids:
        return
    if len(ids) > MAX_LISTED:  # a bug in the caller: pages are capped below this
        raise ValueError(f"a list view names at most {MAX_LISTED} rows")
    await record(
        rt,
        uow,
        action,
        actor=actor,
        target_type=target_type,
        detail={"via": via, "page": page, "shown": len(ids), "total": total, "ids": list(ids)},
    )


async def record_view_once(
    rt: Runtime | None,
    uow: UnitOfWork,
    action: str,
    *,
    actor: OperatorActor,
    target_type: str,
    target_id: str,
    detail: Mapping[str, DetailValue],
) -> bool:
    """A view recorded once per operator session and target (the console: accepting a chat, opening
    it again, its messages pushed meanwhile are one view). The session id goes into the detail;
    whether a row exists already is one query on the indexed target id, never per message. An actor
    without a session (a test, the CLI) is recorded each time. Returns whether a row was queued."""
    sid = actor.session_id
    if sid is not None:
        marker = f'"session":"{sid}"'
        for row in uow.session.info.get(_PENDING) or []:
            if row.action == action and row.target_id == target_id and marker in row.detail:
                return False
        seen = await uow.session.scalar(
            select(AuditEvent.seq)
            .where(
                AuditEvent.target_id == target_id,
                AuditEvent.action == action,
                AuditEvent.actor_id == actor.operator_id,
                AuditEvent.target_type == target_type,
                AuditEvent.detail.contains(marker, autoescape=True),
            )
            .limit(1)
        )
        if seen is not None:
            return False
    full = {**detail, "session": sid} if sid is not None else dict(detail)
    await record(rt, uow, action, actor=actor, target_type=target_type, target_id=target_id, detail=full)
    return True


def canonical(row: Any, seq: int) -> str:
    """The text a row's link covers (``row``: an AuditEvent, a pending entry or a plain row)."""
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
    # The rows are flushed before the head moves: the head's trigger lets it move only onto a
    # stored row (audit.rules).
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
    await uow.session.flush()
    head.seq, head.hash = seq, prev
    await uow.session.flush()


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None
    first_seq: int = 1  # where the stored chain starts (after retention removed older rows)

    def sentence(self) -> str:
        """One line for a person (``confide audit verify``, the Audit Report)."""
        if self.ok:
            start = f" (from seq {self.first_seq}; older rows removed by retention)" if self.first_seq > 1 else ""
            return f"audit log intact: {self.checked} rows{start}"
        return f"audit log broken at seq {self.first_broken_seq}: {self.reason}"


@dataclass(frozen=True)
class Checkpoint:
    """Where the stored chain starts: seq 1 after the genesis link, or where the latest retention
    run (its ``audit.pruned`` row, itself in the chain) says it left it."""

    first_seq: int
    prev_hash: str
    recorded_at_seq: int | None = None  # the audit.pruned row that set it
    sound: bool = True


async def checkpoint(rt: Runtime | None, uow: UnitOfWork) -> Checkpoint:
    """Where the stored chain must start. A checkpoint row whose own link does not hold is not
    trusted (``sound=False``): ``verify`` names it."""
    row = await uow.session.scalar(
        select(AuditEvent).where(AuditEvent.action == PRUNED).order_by(AuditEvent.seq.desc()).limit(1)
    )
    if row is None:
        return Checkpoint(1, GENESIS)
    key = rt.audit_key if rt is not None else uow.session.info[KEY_INFO]
    try:
        detail = json.loads(row.detail)
        first, prev = int(detail["first_seq"]), str(detail["prev_hash"])
    except (ValueError, KeyError, TypeError):
        return Checkpoint(-1, "", row.seq, sound=False)
    sound = crypto.chain_hash(key, row.prev_hash, canonical(row, row.seq)) == row.hash
    return Checkpoint(first, prev, row.seq, sound=sound)


async def verify(rt: Runtime, uow: UnitOfWork, *, batch: int = 2000) -> Verification:
    """Walk the chain from its checkpoint: the first stored row must be the one the latest
    ``audit.pruned`` row says the chain starts from (seq 1 after the genesis link when nothing was
    pruned), every link must follow from the previous one and from its row's content, sequence
    numbers must have no gap, and the last link must be the head's. Names the first row that
    breaks it. Reads in batches of ``batch`` rows (memory stays flat), all from one snapshot:
    on PostgreSQL the unit's transaction is made REPEATABLE READ when verify opens it (SQLite's
    read transaction is a snapshot already), so rows committed or pruned meanwhile are not seen
    half-way through the walk."""
    session = uow.session
    if not session.in_transaction() and session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    start = await checkpoint(rt, uow)
    if not start.sound:
        reason = "the retention checkpoint's content does not match its hash"
        return Verification(False, 0, start.recorded_at_seq, reason)
    checked = 0
    prev: str | None = None
    expected_seq: int | None = None
    last_seq = 0
    while True:
        # Plain rows, not ORM objects: the walk costs a fraction of the time per row.
        rows = (
            await uow.session.execute(
                select(*AuditEvent.__table__.columns)
                .where(AuditEvent.seq > last_seq)
                .order_by(AuditEvent.seq)
                .limit(batch)
            )
        ).all()
        if not rows:
            break
        for row in rows:
            if expected_seq is None:  # the first stored row: where the checkpoint says
                if row.seq > start.first_seq:
                    return Verification(False, 0, start.first_seq, "rows are missing at the start of the chain")
                if row.seq < start.first_seq:
                    return Verification(False, 0, row.seq, "the chain does not start where its checkpoint says")
            elif row.seq != expected_seq:
                return Verification(False, checked, expected_seq, "a row is missing")
            if crypto.chain_hash(rt.audit_key, row.prev_hash, canonical(row, row.seq)) != row.hash:
                return Verification(False, checked, row.seq, "the row's content does not match its hash")
            if row.prev_hash != (start.prev_hash if expected_seq is None else prev):
                return Verification(False, checked, row.seq, "the link to the previous row does not match")
            prev, expected_seq, last_seq = row.hash, row.seq + 1, row.seq
            checked += 1
    head = await uow.session.get(AuditHead, 1)
    if head is not None and (head.seq != last_seq or (checked and head.hash != prev)):
        return Verification(False, checked, last_seq + 1, "rows are missing at the end of the chain")
    return Verification(True, checked, first_seq=max(start.first_seq, 1))
