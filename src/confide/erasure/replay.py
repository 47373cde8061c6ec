"""The erasure journal's replay: after a database restore, erase again everyone the journal names
that the restored database brought back (ADR 0033, docs/privacy/erasure.md "Backups").

``run`` reads the journal and verifies its chain first (``journal.read``): a broken chain is
refused with the line number and nothing is erased, unless ``force`` (then every line that still
parses is replayed: the journal only ever makes Confide erase *more*). Then, per line, in a
transaction of its own that first takes the replay's advisory lock on PostgreSQL (two nodes
starting at once take turns; the second finds nothing to do):

- the line's certificate is put back when the database lacks it (the last state the journal
  holds for it; a bulk run has a line per batch), so the proof of the erasure survives too;
- its tombstones are put back (those missing; the same keyed digests);
- the visitors it names that exist again are erased through ``service.erase`` (reason
  ``restore``), under a certificate of the replay's own whose ``filter`` names the one it replays
  (``{"replay_of": id}``); that erasure writes its own journal line, as every erasure does;
- any data key it names that is readable again is destroyed.

Idempotent: a second replay finds every certificate, tombstone and visitor as the first left them
and does nothing. ``dry_run`` counts without changing anything.

``at_startup`` is the cheap check the server runs before it serves: if every certificate the
journal names is in the database, nothing was rolled back; otherwise the replay runs (a broken
chain is logged at error level and left to the operator: the server still starts).

``Report.unjournaled``: certificates the database holds that no journal line names (an append
that failed after its erasure committed, or erasures made before the journal existed): a later
restore would not erase those people again. Listed by ``confide erasure replay``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from confide.audit import service as audit
from confide.core import clock, crypto
from confide.core.db import Base, UnitOfWork
from confide.core.keys import SubjectKey
from confide.core.runtime import Runtime
from confide.erasure import journal, service
from confide.erasure.models import Certificate, Tombstone
from confide.realtime import events
from confide.workspaces import service as workspaces

log = structlog.get_logger(__name__)

# The replay's own advisory lock ("erasjrnl" in ASCII), apart from the scheduler's and the sweep's.
LOCK_KEY = int.from_bytes(b"erasjrnl", "big") & 0x7FFF_FFFF_FFFF_FFFF
Progress = Callable[[int, int], None]  # (lines replayed, lines to replay)
_CHUNK = 500  # ids per IN list


class Refused(Exception):
    """The journal cannot be trusted (a broken chain): nothing was erased. ``line``: where."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message, self.line = message, line


@dataclass
class Report:
    lines: int = 0  # journal lines read
    replayed: list[str] = field(default_factory=list)  # certificate ids of the lines acted on (or that would be)
    certificates_restored: int = 0
    tombstones_restored: int = 0
    visitors_erased: int = 0
    keys_destroyed: int = 0
    unjournaled: list[str] = field(default_factory=list)
    problem: str | None = None  # with force: the chain's problem, replayed anyway
    torn: bool = False

    @property
    def nothing_to_do(self) -> bool:
        return not self.replayed


async def lock(uow: UnitOfWork) -> None:
    """One replay at a time, for this transaction. PostgreSQL: the replay's advisory lock (two
    nodes starting at once take turns). SQLite: the database's write lock, taken before anything
    is read (a statement that writes, on no row), so that a replay in another process (the CLI
    while the server starts) waits its turn instead of failing to upgrade its read to a write."""
    conn = await uow.session.connection()
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    else:
        await conn.execute(text("UPDATE erasure_certificates SET state = state WHERE 1 = 0"))


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def _restored_certificate(view: dict[str, Any]) -> Certificate:
    by = view.get("erased_by") or {}
    return Certificate(
        id=str(view["id"]), workspace_id=str(view["workspace_id"]), kind=str(view.get("kind") or "subject"),
        state=str(view.get("state") or "done"), request_id=view.get("request_id"),
        reason=str(view.get("reason") or "other"), actor_type=str(by.get("type") or "system"),
        actor_id=by.get("id"), subjects=int(view.get("subjects") or 0), counts=dict(view.get("rows") or {}),
        keys_destroyed=int(view.get("keys_destroyed") or 0), filter=view.get("filter"),
        created_at=_when(view.get("created_at")) or clock.now(), finished_at=_when(view.get("finished_at")),
    )


@dataclass
class _Work:
    certificate: bool = False
    tombstones: list[tuple[str, str]] = field(default_factory=list)
    visitors: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.certificate or bool(self.tombstones or self.visitors or self.keys)


async def _pending(uow: UnitOfWork, entry: journal.Entry) -> _Work | None:
    """What of this line the database does not reflect; ``None``: its workspace is not in the
    database (a backup older than the workspace: nothing of it to erase)."""
    if await workspaces.get_workspace(uow, entry.workspace_id) is None:
        return None
    work = _Work()
    work.certificate = await uow.session.get(Certificate, entry.certificate_id) is None
    digests = [d for d, _ in entry.tombstones]
    have = set((await uow.session.scalars(select(Tombstone.digest).where(
        Tombstone.workspace_id == entry.workspace_id, Tombstone.digest.in_(digests)))).all()) if digests else set()
    work.tombstones = [(d, k) for d, k in entry.tombstones if d not in have]
    v = Base.metadata.tables["visitors"]
    if entry.visitor_ids:
        work.visitors = sorted(str(r) for r in (await uow.session.scalars(select(v.c.id).where(
            v.c.workspace_id == entry.workspace_id, v.c.id.in_(entry.visitor_ids)))).all())
    if entry.keys:
        work.keys = sorted(str(r) for r in (await uow.session.scalars(select(SubjectKey.subject_id).where(
            SubjectKey.subject_id.in_(entry.keys), SubjectKey.wrapped_key.is_not(None)))).all())
    return work


async def _apply(rt: Runtime, uow: UnitOfWork, entry: journal.Entry, latest: dict[str, Any], work: _Work,
                 report: Report) -> None:
    now = clock.now()
    if work.certificate:
        uow.session.add(_restored_certificate(latest))
        await uow.session.flush()
        report.certificates_restored += 1
    if work.tombstones:
        insert: Any = pg_insert if uow.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        await uow.session.execute(insert(Tombstone.__table__).values([
            {"workspace_id": entry.workspace_id, "digest": d, "kind": k, "certificate_id": entry.certificate_id,
             "created_at": now} for d, k in work.tombstones
        ]).on_conflict_do_nothing(index_elements=["workspace_id", "digest"]))
        report.tombstones_restored += len(work.tombstones)
    replay_cert: Certificate | None = None
    if work.visitors:
        replay_cert = Certificate(
            id=crypto.new_id(), workspace_id=entry.workspace_id, kind="subject", state="running", request_id=None,
            reason="restore", actor_type="system", actor_id=None, subjects=0, counts={}, keys_destroyed=0,
            filter={"replay_of": entry.certificate_id}, created_at=now, finished_at=None,
        )
        uow.session.add(replay_cert)
        await uow.session.flush()
        await service.erase(rt, uow, None, entry.workspace_id, work.visitors, reason="restore",
                            certificate_id=replay_cert.id, honour_holds=False)
        replay_cert.state, replay_cert.finished_at = "done", now
        report.visitors_erased += len(work.visitors)
    left = []
    for sid in work.keys:  # keys still readable after the erasure above (none, unless its rows were gone)
        row = await uow.session.get(SubjectKey, sid)
        if row is not None and row.wrapped_key is not None:
            await rt.keyring.destroy(uow.session, sid)
            left.append(sid)
    if left:
        events.publish(rt, uow, events.KeysDestroyed(tuple(left)))
    report.keys_destroyed += len(left) + (replay_cert.keys_destroyed if replay_cert is not None else 0)
    await audit.record(
        rt, uow, "subject.erasure_replayed", actor_type="system", workspace_id=entry.workspace_id,
        target_type="erasure_certificate", target_id=entry.certificate_id,
        detail={"line": entry.n, "visitors": len(work.visitors), "tombstones": len(work.tombstones),
                "certificate_restored": work.certificate, "keys_destroyed": len(left),
                "replay_certificate": replay_cert.id if replay_cert is not None else None},
    )


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


async def _candidates(uow: UnitOfWork, entries: list[journal.Entry]) -> list[journal.Entry]:
    """The lines the database may not reflect, found with a few reads for the whole journal
    (certificate ids, then the named visitors, keys and tombstones in chunks) rather than four
    queries per line: a journal of years holds thousands of lines, nearly all reflected."""
    if not entries:
        return []
    session = uow.session
    present_ws = {w.id for w in await workspaces.all_workspaces(uow)}
    certs = set((await session.scalars(select(Certificate.id))).all())
    v = Base.metadata.tables["visitors"]
    visitors: set[str] = set()
    for chunk in _chunks(sorted({x for e in entries for x in e.visitor_ids})):
        visitors.update(str(r) for r in (await session.scalars(select(v.c.id).where(v.c.id.in_(chunk)))).all())
    keys: set[str] = set()
    for chunk in _chunks(sorted({x for e in entries for x in e.keys})):
        keys.update(str(r) for r in (await session.scalars(select(SubjectKey.subject_id).where(
            SubjectKey.subject_id.in_(chunk), SubjectKey.wrapped_key.is_not(None)))).all())
    stones: set[tuple[str, str]] = set()
    for chunk in _chunks(sorted({d for e in entries for d, _ in e.tombstones})):
        stones.update((str(w), str(d)) for w, d in (await session.execute(select(
            Tombstone.workspace_id, Tombstone.digest).where(Tombstone.digest.in_(chunk)))).all())
    return [
        e for e in entries
        if e.workspace_id in present_ws and (
            e.certificate_id not in certs or any(x in visitors for x in e.visitor_ids)
            or any(x in keys for x in e.keys) or any((e.workspace_id, d) not in stones for d, _ in e.tombstones))
    ]


async def _unjournaled(rt: Runtime, seen: set[str]) -> list[str]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        ids = (await uow.session.scalars(select(Certificate.id).order_by(Certificate.created_at, Certificate.id))).all()
    return [str(i) for i in ids if i not in seen]


async def run(rt: Runtime, *, dry_run: bool = False, force: bool = False,
              progress: Progress | None = None) -> Report:
    """Replay the journal (see the module docstring). Raises ``Refused`` on a broken chain
    (unless ``force``). This function is an edge: it opens its units of work itself."""
    reading = await asyncio.to_thread(journal.read, rt.settings.erasure_journal_path, rt.journal_key)
    if not reading.ok and not force:
        raise Refused(f"{reading.problem}; nothing was erased (check the file, or replay anyway with --force)",
                      reading.line)
    report = Report(lines=len(reading.entries), problem=reading.problem, torn=reading.torn)
    latest: dict[str, dict[str, Any]] = {}
    for entry in reading.entries:  # a bulk run has a line per batch: the last one holds its final state
        latest[entry.certificate_id] = entry.certificate
    async with rt.db.unit_of_work(readonly=True) as uow:  # one read of everything the lines name
        candidates = await _candidates(uow, reading.entries)
    for i, entry in enumerate(candidates, 1):
        async with rt.db.unit_of_work(readonly=dry_run) as uow:
            if not dry_run:
                await lock(uow)
            work = await _pending(uow, entry)  # again, under the lock: another node may have done it
            if work:
                report.replayed.append(entry.certificate_id)
                if dry_run:
                    report.certificates_restored += int(work.certificate)
                    report.tombstones_restored += len(work.tombstones)
                    report.visitors_erased += len(work.visitors)
                    report.keys_destroyed += len(work.keys)
                else:
                    await _apply(rt, uow, entry, latest[entry.certificate_id], work, report)
        if progress is not None:
            progress(i, len(candidates))
    seen = set(latest)
    if not dry_run:  # this replay's own erasures were journalled after their commits
        seen |= {e.certificate_id for e in
                 (await asyncio.to_thread(journal.read, rt.settings.erasure_journal_path, rt.journal_key)).entries}
    report.unjournaled = await _unjournaled(rt, seen)
    if report.replayed:
        log.info("erasure_journal_replayed", lines=report.lines, replayed=len(report.replayed),
                 visitors=report.visitors_erased, dry_run=dry_run)
    return report


async def needed(rt: Runtime) -> bool:
    """The cheap check: does the journal name a certificate the database lacks? The last line
    first (the usual answer, read from the file's tail), then every line's certificate id against
    one read of the certificate ids (an erasure made on the restored database before the server
    started would hide a rolled-back one behind it). A broken chain is left to ``run``."""
    path = rt.settings.erasure_journal_path
    last = await asyncio.to_thread(journal.last_certificate_id, path)
    if last is None:
        return False
    async with rt.db.unit_of_work(readonly=True) as uow:
        if await uow.session.get(Certificate, last) is None:
            return True
        held = set((await uow.session.scalars(select(Certificate.id))).all())
    reading = await asyncio.to_thread(journal.read, path, rt.journal_key)
    return any(e.certificate_id not in held for e in reading.entries)


async def at_startup(rt: Runtime) -> Report | None:
    """Run by the server before it serves: replay when the database does not reflect the
    journal's last erasure. Never stops the server: a refused or failed replay is logged at error
    level (ids and line numbers only) for the operator (``confide erasure replay``)."""
    try:
        if not await needed(rt):
            return None
        log.warning("erasure_journal_ahead_of_database", journal=str(rt.settings.erasure_journal_path.name))
        return await run(rt)
    except Refused as exc:
        log.error("erasure_journal_refused", line=exc.line)
    except journal.JournalError:
        log.error("erasure_journal_unreadable")
    except Exception:
        log.exception("erasure_journal_replay_failed")
    return None
