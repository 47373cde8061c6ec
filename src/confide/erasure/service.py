"""Erasure of a person for good (issue 8 point 5, ADR 0028, docs/privacy/erasure.md).

``preview`` counts, per table, every row the registry reaches from the person's visitor ids;
``erase`` removes them in ONE transaction:

1. the visitors are locked (``FOR UPDATE``, in id order) through ``permissions`` (``subjects.erase``;
   another workspace's id looks exactly like a missing one); a legal hold on the person or on any
   of their conversations (``retention.service``) refuses the whole erasure;
2. every table with a reach to a visitor (``privacy_registry.conditions_of``) is read first (primary
   keys), so that reaches through other tables (a term through its conversation, an objection
   through the e-mail's blind index) still match; then the rows go children first (the reverse
   of the metadata's sorted tables), by primary key; a table whose visitor columns say
   ``Erasure.ANONYMISE`` is updated to NULL instead;
3. the consent ledger goes through its one door, ``consent.removal.erase_subject``;
4. conversations are folded into the surviving statistics first (``stats.fold_conversations``);
5. the data keys are destroyed (``KeyRing.destroy``: the rows keep a NULL ``wrapped_key`` and the
   time) and, after the commit, every node is told to forget them (``KeysDestroyed``); the
   erased chats' sockets are told and closed (``ConversationErased``);
6. keyed tombstones (visitor id, e-mail blind index, verified identity), the certificate, a
   ``subject.erased`` job in the outbox for integrations and the audit row (ids only);
7. a ``request_id`` naming one of the workspace's erasure requests in progress gets the
   certificate (``privacy_requests.lifecycle.record_fulfilment``); such a request in another state
   refuses the erasure. Any other reference (a ticket number) is kept on the certificate only.

On SQLite the deletes run with ``PRAGMA secure_delete`` (freed space is zeroed) and, after the
commit, the WAL is checkpointed and truncated: the erased values are in neither file any more.

A second erasure of someone already erased (a retry, two clicks at once) returns the first
certificate: the tombstone of the visitor id names it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import ColumnElement, delete, or_, select, text, tuple_, update
from sqlalchemy import Table as SqlTable
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from confide import privacy_registry
from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.consent import removal as consent_removal
from confide.core import clock, crypto, jobs, subject_ids
from confide.core.db import Base, UnitOfWork
from confide.core.errors import Conflict, Invalid, NotFound
from confide.core.keys import SubjectKey
from confide.core.personal_data import Erasure, Personal, Subject
from confide.core.runtime import Runtime
from confide.erasure import journal, stats, tombstones
from confide.erasure.models import Certificate, Tombstone
from confide.permissions.access import access_visitors_to_erase
from confide.permissions.policy import Permission, allows_any
from confide.privacy_requests import lifecycle as request_lifecycle
from confide.realtime import events
from confide.retention import service as retention

log = structlog.get_logger(__name__)

ERASED_KIND = "subject.erased"  # the outbox job for integrations (ids only)
MAX_SUBJECTS = subject_ids.MAX_SUBJECTS  # visitor ids per erasure (bulk erasure batches)
# codes, never free text; "restore": erased again by the journal's replay after a restore (ADR 0033)
REASONS = ("request", "staff", "bulk", "retention", "restore", "other")
SYSTEM_REASONS = ("restore",)  # never chosen by staff: only the replay (actor None) gives it
STAFF_REASONS = tuple(r for r in REASONS if r not in SYSTEM_REASONS)
_CHUNK = 500  # primary keys per IN list
# Which blind-index columns name a person across visits, and the tombstone kind each becomes.
TOMBSTONED_COLUMNS = {"email_bidx": tombstones.EMAIL, "external_id_bidx": tombstones.IDENTITY}
# Tables handled by their own door rather than a generic DELETE.
_CONSENT_LEDGER = {"consent_records", "consent_erasure"}
_KEYS = "subject_keys"

class UnderHold(Conflict):
    code = "legal_hold"


# ---------------------------------------------------------------- input
def visitor_ids_of(values: object) -> list[str]:
    """1 to ``MAX_SUBJECTS`` visitor ids, de-duplicated and sorted; ``Invalid`` otherwise."""
    return subject_ids.visitor_ids_of(values, MAX_SUBJECTS)


def request_id_of(value: str | None) -> str | None:
    return subject_ids.request_id_of(value)


def reason_of(value: str) -> str:
    if value not in REASONS:
        raise Invalid(f"reason must be one of {', '.join(REASONS)}")
    return value


# ---------------------------------------------------------------- the walk
def _tables() -> list[SqlTable]:
    """Tables reaching a visitor, children first (the reverse of the metadata's sorted tables)."""
    reaching = {n for n, e in privacy_registry.REGISTRY.items() if any(r.subject == "visitor" for r in e.reaches)}
    return [t for t in reversed(Base.metadata.sorted_tables) if t.name in reaching]


def _condition(table: SqlTable, per_subject: list[dict[str, ColumnElement[bool]]]) -> ColumnElement[bool]:
    conds = [conditions[table.name] for conditions in per_subject]
    return conds[0] if len(conds) == 1 else or_(*conds)


def _anonymised(table: SqlTable) -> list[str]:
    """The visitor columns of ``table`` to set to NULL instead of deleting the row (empty: delete):
    a table whose visitor columns all say ``ANONYMISE``, or ``DESTROY_KEY`` for a data key kept in
    the row itself (a data-subject request's: NULL is its destruction)."""
    entry = privacy_registry.REGISTRY[table.name]
    kinds = {c: k for c, k in entry.columns.items() if isinstance(k, Personal) and k.subject == "visitor"}
    ways = {k.erasure for k in kinds.values()}
    if Erasure.ANONYMISE in ways and ways <= {Erasure.ANONYMISE, Erasure.DESTROY_KEY}:
        return sorted(kinds)
    return []


class _Plan:
    """Every row of the person, read before anything is deleted."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        self.subject_ids: set[str] = set()
        self.digests: dict[str, str] = {}  # tombstone digest -> kind
        self.conversations: list[str] = []

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.rows.items() if rows}


async def _plan(rt: Runtime, uow: UnitOfWork, workspace_id: str, ids: list[str]) -> _Plan:
    plan = _Plan()
    plan.subject_ids.update(ids)
    for vid in ids:
        plan.digests[tombstones.digest(rt, workspace_id, tombstones.VISITOR, vid)] = tombstones.VISITOR
    per_subject = [privacy_registry.conditions_of(Subject("visitor", vid)) for vid in ids]  # built once
    for table in _tables():
        pk = list(table.primary_key.columns)
        extra = [table.c[c] for c in (*TOMBSTONED_COLUMNS, "subject_id") if c in table.c]
        rows = (await uow.session.execute(select(*pk, *extra).where(_condition(table, per_subject)))).all()
        plan.rows[table.name] = [tuple(r[: len(pk)]) for r in rows]
        for r in rows:
            values = dict(zip([c.name for c in extra], r[len(pk) :], strict=True))
            for column, kind in TOMBSTONED_COLUMNS.items():
                if values.get(column):
                    plan.digests[tombstones.digest(rt, workspace_id, kind, str(values[column]))] = kind
            if table.name not in ("jobs", _KEYS) and values.get("subject_id"):
                plan.subject_ids.add(str(values["subject_id"]))
        if table.name == "conversations":
            plan.conversations = [str(r[0]) for r in rows]
    keys = SubjectKey.__table__
    plan.rows[_KEYS] = [
        (sid,)
        for sid in (
            await uow.session.scalars(
                select(keys.c.subject_id).where(
                    keys.c.subject_id.in_(sorted(plan.subject_ids)),
                    keys.c.workspace_id == workspace_id,
                    keys.c.wrapped_key.is_not(None),
                )
            )
        ).all()
    ]
    return plan


async def _held(uow: UnitOfWork, workspace_id: str, ids: list[str], conversations: list[str]) -> None:
    """A legal hold on the person, or on any of their conversations, stops the whole erasure
    (Art. 17(3)(e)): nothing is changed and the answer names no one."""
    if await retention.held_visitor_ids(uow, workspace_id, ids) or await retention.held_conversation_ids(
        uow, workspace_id, conversations
    ):
        raise UnderHold("part of this person's data is under a legal hold; lift the hold first")


async def _load(uow: UnitOfWork, actor: OperatorActor | None, workspace_id: str, ids: list[str],
                *, for_update: bool) -> list[str]:
    return await access_visitors_to_erase(uow.session, actor, workspace_id, ids, for_update=for_update)


# ---------------------------------------------------------------- preview
async def preview(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor | None, workspace_id: str, visitor_ids: Iterable[str]
) -> dict[str, int]:
    """Per table, how many rows the erasure would remove (``subject_keys``: keys destroyed)."""
    ids = visitor_ids_of(list(visitor_ids))
    found = await _load(uow, actor, workspace_id, ids, for_update=False)
    if len(found) != len(ids):
        raise NotFound("visitor not found")
    plan = await _plan(rt, uow, workspace_id, found)
    return dict(sorted(plan.counts().items()))


# ---------------------------------------------------------------- erase
async def erase(
    rt: Runtime,
    uow: UnitOfWork,
    actor: OperatorActor | None,
    workspace_id: str,
    visitor_ids: Iterable[str],
    *,
    request_id: str | None = None,
    reason: str,
    certificate_id: str | None = None,
    honour_holds: bool = True,
) -> Certificate:
    """Erase the person with these visitor ids (see the module docstring). ``actor=None``: the
    CLI. ``certificate_id``: a running bulk certificate to add to (``erasure.bulk``).
    ``honour_holds=False``: only the journal's replay (``erasure.replay``), which erases again
    people erased before a restore: any hold the restore brought back was lifted before that
    erasure was allowed to happen."""
    ids = visitor_ids_of(list(visitor_ids))
    request = request_id_of(request_id)
    reason = reason_of(reason)
    if actor is not None and reason in SYSTEM_REASONS:
        raise Invalid(f"reason must be one of {', '.join(STAFF_REASONS)}")
    if uow.session.get_bind().dialect.name == "sqlite":
        await uow.session.execute(text("PRAGMA secure_delete = ON"))
    found = await _load(uow, actor, workspace_id, ids, for_update=True)
    if len(found) != len(ids):
        missing = [v for v in ids if v not in found]
        earlier = await tombstones.find(
            uow, workspace_id, [tombstones.digest(rt, workspace_id, tombstones.VISITOR, v) for v in missing]
        )
        if len(earlier) != len(missing):
            raise NotFound("visitor not found")
        if not found:  # every one of them was erased already: the same certificate again
            cert = await uow.session.get(Certificate, sorted(earlier.values())[0])
            if cert is None or cert.workspace_id != workspace_id:  # pragma: no cover - certificates are kept
                raise NotFound("visitor not found")
            return cert
        ids = found
    plan = await _plan(rt, uow, workspace_id, ids)
    if honour_holds:
        await _held(uow, workspace_id, ids, plan.conversations)
    now = clock.now()
    cert = await _certificate(uow, actor, workspace_id, request, reason, certificate_id, now)
    if request is not None and certificate_id is None:  # the request it answers, if it is one of ours
        await request_lifecycle.record_fulfilment(rt, uow, actor, workspace_id, request, ids, certificate_id=cert.id)

    await stats.fold_conversations(uow, plan.conversations)
    counts: dict[str, int] = {}
    for vid in ids:  # the ledger's one door (its trigger refuses any other delete)
        counts["consent_records"] = counts.get("consent_records", 0) + await consent_removal.erase_subject(uow, vid)
    for table in _tables():
        rows = plan.rows.get(table.name) or []
        if table.name in _CONSENT_LEDGER or table.name == _KEYS or not rows:
            continue
        await _remove(uow, table, rows)
        counts[table.name] = len(rows)
    destroyed = [str(r[0]) for r in plan.rows[_KEYS]]
    for sid in destroyed:
        await rt.keyring.destroy(uow.session, sid)
    if destroyed:
        counts[_KEYS] = len(destroyed)
    await _tombstones(uow, workspace_id, plan.digests, cert.id, now)

    total = dict(cert.counts or {})
    for name, n in counts.items():
        total[name] = int(total.get(name, 0)) + n
    cert.counts = dict(sorted(total.items()))
    cert.subjects += len(ids)
    cert.keys_destroyed += len(destroyed)
    if certificate_id is None:
        cert.state, cert.finished_at = "done", now
    await uow.session.flush()

    jobs.enqueue(rt, uow, ERASED_KIND, {"workspace_id": workspace_id, "certificate_id": cert.id, "visitor_ids": ids},
                 workspace_id=workspace_id)
    await audit.record(
        rt, uow, "subject.erased",
        actor=actor,
        actor_type=None if actor is not None else "system",
        workspace_id=workspace_id,
        target_type="erasure_certificate",
        target_id=cert.id,
        detail={"visitors": ids, "request": request, "reason": reason, "rows": sum(counts.values()),
                "keys_destroyed": len(destroyed)},
    )
    _journal_after_commit(rt, uow, cert, workspace_id, ids, destroyed, plan.digests)
    if destroyed:
        events.publish(rt, uow, events.KeysDestroyed(tuple(destroyed)))
    for cid in plan.conversations:
        events.publish(rt, uow, events.ConversationErased(cid))
    if rt.db.is_sqlite:
        rt.db.truncate_wal_after_commit(uow)
    log.info("subject_erased", certificate_id=cert.id, subjects=len(ids), rows=sum(counts.values()))
    return cert


def _journal_after_commit(rt: Runtime, uow: UnitOfWork, cert: Certificate, workspace_id: str, ids: list[str],
                          destroyed: list[str], digests: dict[str, str]) -> None:
    """Once the erasure has committed, its line goes into the erasure journal (outside the
    database, ADR 0033), in a thread (``flock`` and ``fsync`` block). The certificate is read
    then, so the line carries its final state (a replay or bulk batch may change it after
    ``erase`` returns, in the same transaction). A failure leaves the erasure done and is logged
    at error level with the certificate id (``confide erasure replay --dry-run`` lists it)."""

    async def append() -> None:
        record = journal.record_of(_journal_view(cert), workspace_id, ids, destroyed,
                                   [(d, k) for d, k in digests.items()])
        try:
            await asyncio.to_thread(journal.append_sync, rt.settings.erasure_journal_path, rt.journal_key, record)
        except (OSError, journal.JournalError) as exc:
            log.error("erasure_journal_append_failed", certificate_id=cert.id, error=type(exc).__name__,
                      errno=getattr(exc, "errno", None))

    uow.after_commit(append)


def _journal_view(cert: Certificate) -> dict[str, Any]:
    view = certificate_view(cert)
    view.pop("schema"), view.pop("method")
    return view


async def _certificate(uow: UnitOfWork, actor: OperatorActor | None, workspace_id: str, request: str | None,
                       reason: str, certificate_id: str | None, now: datetime) -> Certificate:
    if certificate_id is not None:
        cert = await uow.session.get(Certificate, certificate_id, with_for_update=True)
        if cert is None or cert.workspace_id != workspace_id:
            raise NotFound("certificate not found")
        return cert
    cert = Certificate(
        id=crypto.new_id(), workspace_id=workspace_id, kind="subject", state="running", request_id=request,
        reason=reason, actor_type="operator" if actor is not None else "system",
        actor_id=actor.operator_id if actor is not None else None, subjects=0, counts={}, keys_destroyed=0,
        filter=None, created_at=now, finished_at=None,
    )
    uow.session.add(cert)
    await uow.session.flush()
    return cert


async def _remove(uow: UnitOfWork, table: SqlTable, rows: list[tuple[Any, ...]]) -> None:
    pk = list(table.primary_key.columns)
    columns = _anonymised(table)
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        where = pk[0].in_([r[0] for r in chunk]) if len(pk) == 1 else tuple_(*pk).in_(chunk)
        if columns:
            await uow.session.execute(update(table).where(where).values(dict.fromkeys(columns)))
        else:
            await uow.session.execute(delete(table).where(where))


async def _tombstones(uow: UnitOfWork, workspace_id: str, digests: dict[str, str], certificate_id: str,
                      now: datetime) -> None:
    """One tombstone per digest; one already there (the same e-mail erased before) is kept."""
    if not digests:
        return
    table = Tombstone.__table__
    insert: Any = pg_insert if uow.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).values([
        {"workspace_id": workspace_id, "digest": d, "kind": k, "certificate_id": certificate_id, "created_at": now}
        for d, k in sorted(digests.items())
    ])
    await uow.session.execute(stmt.on_conflict_do_nothing(index_elements=["workspace_id", "digest"]))


# ---------------------------------------------------------------- certificates
def certificate_view(cert: Certificate) -> dict[str, Any]:
    """The certificate as JSON: what was erased, when, by whom, for which request. No personal data."""
    return {
        "schema": "confide.erasure-certificate/1",
        "id": cert.id,
        "workspace_id": cert.workspace_id,
        "kind": cert.kind,
        "state": cert.state,
        "request_id": cert.request_id,
        "reason": cert.reason,
        "erased_by": {"type": cert.actor_type, "id": cert.actor_id},
        "subjects": cert.subjects,
        "rows": dict(cert.counts or {}),
        "keys_destroyed": cert.keys_destroyed,
        "filter": cert.filter,
        "created_at": clock.iso(cert.created_at),
        "finished_at": clock.iso(cert.finished_at) if cert.finished_at else None,
        "method": "rows deleted; data keys destroyed (crypto-shredding); keyed tombstones kept",
    }


async def get_certificate(uow: UnitOfWork, actor: OperatorActor, certificate_id: object) -> Certificate:
    """A certificate of the actor's workspace, for someone who may erase (or see subjects). It
    holds no personal data (counts and ids), so viewing it is not a read of personal data."""
    if not isinstance(certificate_id, str) or not certificate_id or len(certificate_id) > 64:
        raise NotFound("certificate not found")
    if not allows_any(actor, Permission.SUBJECTS_ERASE, Permission.SUBJECTS_VIEW):
        raise NotFound("certificate not found")
    cert = await uow.session.get(Certificate, certificate_id)
    if cert is None or cert.workspace_id != actor.workspace_id:
        raise NotFound("certificate not found")
    return cert


async def list_certificates(uow: UnitOfWork, actor: OperatorActor, *, limit: int = 50) -> list[Certificate]:
    if not allows_any(actor, Permission.SUBJECTS_ERASE, Permission.SUBJECTS_VIEW):
        return []
    rows = await uow.session.scalars(
        select(Certificate).where(Certificate.workspace_id == actor.workspace_id)
        .order_by(Certificate.created_at.desc()).limit(limit)
    )
    return list(rows.all())


# ---------------------------------------------------------------- the outbox job
@jobs.handler(ERASED_KIND)
async def _deliver_erased(rt: Runtime, payload: dict[str, Any]) -> None:
    """The integrations outbox: no webhook or CRM integration exists yet (a later issue delivers
    from here, as for ``integration.consent_withdrawn``), so the event is done once run."""
    log.info("subject_erased_event", certificate_id=payload.get("certificate_id"))
