"""The audit log is append-only in the database (triggers) and ages out only through retention,
oldest first, leaving a checkpoint that ``verify`` proves the rest from (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from confide.audit import retention
from confide.audit import service as audit
from confide.audit.models import AuditEvent, AuditHead
from confide.core import clock
from confide.core.migrate import downgrade, upgrade
from confide.core.runtime import Runtime
from confide.worker import scheduler
from tests.test_audit_chain import _rows, _tamper, _verify
from tests.test_migrations import _in_thread, empty_db  # noqa: F401 - the fixture


async def _record(rt: Runtime, n: int, *, action: str = "auth.login") -> None:
    for i in range(n):
        async with rt.db.unit_of_work() as uow:
            await audit.record(rt, uow, action, actor_type="operator", actor_id=f"op{i}")


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_events SET outcome = 'denied' WHERE seq = 1",
        "UPDATE audit_events SET detail = '{}'",
        "DELETE FROM audit_events WHERE seq = 2",
        "DELETE FROM audit_events",
        "DELETE FROM audit_head",
        "UPDATE audit_head SET seq = 1, hash = (SELECT hash FROM audit_events WHERE seq = 1)",  # rewind
        "UPDATE audit_head SET seq = 9, hash = 'x'",  # forward onto no stored row
        # the retention flag permits deleting old rows, never changing one
        "INSERT INTO audit_prune (id, upto) VALUES (1, 3); UPDATE audit_events SET outcome = 'x'",
    ],
)
async def test_plain_updates_and_deletes_through_the_apps_engine_fail(rt: Runtime, sql: str) -> None:
    await _record(rt, 3)
    before = [(r.seq, r.outcome, r.detail, r.hash) for r in await _rows(rt)]

    async def run() -> None:
        async with rt.db.engine.begin() as conn:
            for statement in sql.split("; "):
                await conn.execute(text(statement))

    with pytest.raises(DBAPIError, match=r"append-only|audit_head"):
        await run()
    assert [(r.seq, r.outcome, r.detail, r.hash) for r in await _rows(rt)] == before
    async with rt.db.unit_of_work(readonly=True) as uow:
        head = await uow.session.get(AuditHead, 1)
        assert head is not None
        assert head.seq == 3
    assert (await _verify(rt)).ok


async def test_the_chaining_code_still_appends_and_moves_the_head(rt: Runtime) -> None:
    await _record(rt, 2)
    async with rt.db.unit_of_work() as uow:
        for n in range(3):
            await audit.record(rt, uow, "users.updated", actor_type="operator", actor_id="op1", target_id=f"u{n}")
    assert [r.seq for r in await _rows(rt)] == [1, 2, 3, 4, 5]
    assert (await _verify(rt)).checked == 5


async def test_the_retention_flag_allows_deleting_only_up_to_its_seq(rt: Runtime) -> None:
    await _record(rt, 4)
    async with rt.db.engine.begin() as conn:  # the sanctioned path, done by hand: rows 1-2 only
        await conn.execute(text("INSERT INTO audit_prune (id, upto) VALUES (1, 2)"))
        await conn.execute(text("DELETE FROM audit_events WHERE seq <= 2"))
        await conn.execute(text("DELETE FROM audit_prune"))
    assert [r.seq for r in await _rows(rt)] == [3, 4]
    with pytest.raises(DBAPIError, match="append-only"):  # noqa: PT012 - the transaction is under test
        async with rt.db.engine.begin() as conn:
            await conn.execute(text("INSERT INTO audit_prune (id, upto) VALUES (1, 2)"))
            await conn.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    # Removed by hand, without a checkpoint: verify says so.
    result = await _verify(rt)
    assert (result.ok, result.first_broken_seq) == (False, 1)
    assert result.reason == "rows are missing at the start of the chain"


async def _prune(rt: Runtime) -> int:
    async with rt.db.unit_of_work() as uow:
        return await retention.prune(rt, uow)


async def test_retention_removes_old_rows_in_order_and_verify_proves_the_rest(rt: Runtime) -> None:
    rt.settings.audit_retention_days = 30
    clock.freeze(clock.now())
    await _record(rt, 3)  # seq 1-3: old
    clock.advance(timedelta(days=10))
    await _record(rt, 2, action="auth.logout")  # seq 4-5
    clock.advance(timedelta(days=25))  # 1-3 are 35 days old, 4-5 are 25
    assert await _prune(rt) == 3
    rows = await _rows(rt)
    assert [r.seq for r in rows] == [4, 5, 6]
    pruned = rows[-1]
    assert (pruned.action, pruned.actor_type, pruned.target_type) == ("audit.pruned", "system", "audit_log")
    assert pruned.detail == (f'{{"first_seq":4,"prev_hash":"{rows[0].prev_hash}","removed":3,"retention_days":30}}')
    result = await _verify(rt)
    assert (result.ok, result.checked, result.first_seq) == (True, 3, 4)
    assert result.sentence() == "audit log intact: 3 rows (from seq 4; older rows removed by retention)"
    assert await _prune(rt) == 0  # nothing else is old enough
    clock.advance(timedelta(days=10))  # 4-5 are 35 days old; the checkpoint row (6) is 10
    assert await _prune(rt) == 2
    assert [r.seq for r in await _rows(rt)] == [6, 7]
    clock.advance(timedelta(days=31))  # everything: 6-7 go, the new checkpoint is seq 8
    assert await _prune(rt) == 2
    rows = await _rows(rt)
    assert [(r.seq, r.action) for r in rows] == [(8, "audit.pruned")]
    assert rows[0].detail.startswith('{"first_seq":8,')
    assert (await _verify(rt)).ok


async def test_after_pruning_any_other_removal_is_still_found(rt: Runtime) -> None:
    rt.settings.audit_retention_days = 1
    clock.freeze(clock.now())
    await _record(rt, 3)
    clock.advance(timedelta(days=2))
    await _record(rt, 3)  # seq 4-6
    assert await _prune(rt) == 3  # checkpoint at seq 7 says: the chain starts at 4
    assert (await _verify(rt)).ok
    await _tamper(rt, "DELETE FROM audit_events WHERE seq = 4")  # one more from the start
    result = await _verify(rt)
    assert (result.ok, result.first_broken_seq, result.reason) == (
        False,
        4,
        "rows are missing at the start of the chain",
    )


async def test_a_forged_checkpoint_is_named(rt: Runtime) -> None:
    rt.settings.audit_retention_days = 1
    clock.freeze(clock.now())
    await _record(rt, 2)
    clock.advance(timedelta(days=2))
    await _record(rt, 2)
    assert await _prune(rt) == 2  # checkpoint: seq 5
    await _tamper(rt, "DELETE FROM audit_events WHERE seq = 3")
    await _tamper(
        rt, "UPDATE audit_events SET detail = replace(detail, '\"first_seq\"\\:3', '\"first_seq\"\\:4') WHERE seq = 5"
    )
    result = await _verify(rt)
    assert (result.ok, result.first_broken_seq) == (False, 5)
    assert result.reason is not None
    assert "checkpoint" in result.reason


async def test_retention_zero_keeps_everything_and_a_broken_chain_is_never_pruned(rt: Runtime) -> None:
    rt.settings.audit_retention_days = 0
    clock.freeze(clock.now())
    await _record(rt, 3)
    clock.advance(timedelta(days=10000))
    assert await _prune(rt) == 0
    rt.settings.audit_retention_days = 1
    await _tamper(rt, "UPDATE audit_events SET actor_id = 'someone' WHERE seq = 2")
    assert await _prune(rt) == 0  # the evidence stays for verify to name
    assert [r.seq for r in await _rows(rt)] == [1, 2, 3]
    assert (await _verify(rt)).first_broken_seq == 2


async def test_the_scheduler_prunes_one_bounded_batch_per_tick(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    rt.settings.audit_retention_days = 7
    monkeypatch.setattr(retention, "BATCH", 2)
    monkeypatch.setitem(scheduler.JOBS, "audit_pruned", lambda r, u: retention.prune(r, u, batch=retention.BATCH))
    clock.freeze(clock.now())
    await _record(rt, 5)
    clock.advance(timedelta(days=8))
    done = await scheduler.tick(rt)
    assert done is not None
    assert done["audit_pruned"] == 2
    assert (await scheduler.tick(rt) or {})["audit_pruned"] == 2
    assert (await scheduler.tick(rt) or {})["audit_pruned"] == 1  # seq 5; the checkpoints (6, 7) stay
    async with rt.db.unit_of_work(readonly=True) as uow:
        seqs = list((await uow.session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq))).all())
    assert seqs[0] == 6  # the checkpoints themselves are young
    assert (await _verify(rt)).ok


async def test_verify_walks_one_snapshot_while_rows_are_added_and_pruned(rt: Runtime) -> None:
    rt.settings.audit_retention_days = 1
    clock.freeze(clock.now())
    await _record(rt, 4)
    clock.advance(timedelta(days=2))
    async with rt.db.unit_of_work(readonly=True) as uow:
        first = await audit.verify(rt, uow)
        await _record(rt, 3)  # committed meanwhile by others
        assert await _prune(rt) == 4
        again = await audit.verify(rt, uow)  # same transaction: the same snapshot
    assert (first.ok, first.checked) == (True, 4)
    assert (again.ok, again.checked, again.first_seq) == (True, 4, 1)
    assert (await _verify(rt)).checked == 4  # 5-7 and the checkpoint (8)


def test_the_migration_installs_the_rules_and_its_downgrade_removes_them(empty_db: str) -> None:  # noqa: F811
    """``confide migrate`` (not create_all): the same triggers, and 0004 without them again."""
    row = (
        "INSERT INTO audit_events (seq, at, actor_type, action, outcome, detail, prev_hash, hash) "
        "VALUES (1, '2026-12-01 10:00:00', 'system', 'a.b', 'ok', '{}', 'p', 'h')"
    )

    async def refused(sql: str) -> bool:
        engine = create_async_engine(empty_db)
        message = ""
        try:
            async with engine.begin() as conn:
                await conn.execute(text(sql))
        except DBAPIError as exc:
            message = str(exc)
        finally:
            await engine.dispose()
        return "append-only" in message

    _in_thread(upgrade, empty_db)
    assert not _in_thread(asyncio.run, refused(row))
    assert _in_thread(asyncio.run, refused("UPDATE audit_events SET outcome = 'failed'"))
    assert _in_thread(asyncio.run, refused("DELETE FROM audit_events"))
    _in_thread(downgrade, empty_db, "0004_audit_log")
    assert not _in_thread(asyncio.run, refused("UPDATE audit_events SET outcome = 'failed'"))
    assert not _in_thread(asyncio.run, refused("DELETE FROM audit_events"))
    _in_thread(upgrade, empty_db)
    assert not _in_thread(asyncio.run, refused(row))
    assert _in_thread(asyncio.run, refused("DELETE FROM audit_events"))
