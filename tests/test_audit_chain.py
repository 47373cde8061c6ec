"""The audit log's chain: rows stored with their transaction only, linked in commit order, and a
changed, removed or reordered row found by ``verify`` (on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text

from confide.audit import service as audit
from confide.audit.models import AuditEvent
from confide.core.errors import CommitAndRaise, NotFound
from confide.core.runtime import Runtime


async def _rows(rt: Runtime) -> list[AuditEvent]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return list((await uow.session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all())


async def _verify(rt: Runtime) -> audit.Verification:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await audit.verify(rt, uow)


async def _tamper(rt: Runtime, sql: str) -> None:
    # Tampering goes around Confide on purpose (as someone with database access would); the
    # append-only triggers, where installed, are dropped first.
    async with rt.db.engine.begin() as conn:
        if rt.db.is_sqlite:
            for name in ("audit_events_no_update", "audit_events_no_delete"):
                await conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        else:
            await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        await conn.execute(text(sql))
        if not rt.db.is_sqlite:
            await conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


async def test_rows_are_chained_and_verify(rt: Runtime) -> None:
    async with rt.db.unit_of_work() as uow:
        await audit.record(
            rt,
            uow,
            "auth.login",
            actor_type="operator",
            actor_id="op1",
            workspace_id="ws1",
            detail={"method": "password"},
        )
        await audit.record(
            rt,
            uow,
            "settings.site_updated",
            actor_id="op1",
            actor_type="operator",
            target_type="site",
            target_id="site1",
        )
    async with rt.db.unit_of_work() as uow:
        await audit.record(rt, uow, "auth.login", actor_type="anonymous", outcome="failed")
    rows = await _rows(rt)
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].prev_hash == audit.GENESIS
    assert rows[1].prev_hash == rows[0].hash
    assert rows[2].prev_hash == rows[1].hash
    assert rows[0].detail == '{"method":"password"}'
    result = await _verify(rt)
    assert result.ok
    assert result.checked == 3


async def test_rolled_back_work_leaves_no_row_and_commit_and_raise_keeps_it(rt: Runtime) -> None:
    with pytest.raises(RuntimeError):  # noqa: PT012 - the unit of work is what is under test
        async with rt.db.unit_of_work() as uow:
            await audit.record(rt, uow, "auth.login", actor_type="anonymous")
            raise RuntimeError("the action failed")
    assert await _rows(rt) == []
    with pytest.raises(NotFound):  # noqa: PT012
        async with rt.db.unit_of_work() as uow:
            await audit.record(rt, uow, "access.denied", actor_type="operator", actor_id="op1", outcome="denied")
            raise CommitAndRaise(NotFound("conversation not found"))
    assert [r.action for r in await _rows(rt)] == ["access.denied"]


async def test_personal_values_and_free_text_are_refused(rt: Runtime) -> None:
    async with rt.db.unit_of_work() as uow:
        for bad in ({"email": "ann@example.com"}, {"note": "Ann Smith"}, {"n": 1.5}):
            with pytest.raises(ValueError, match="audit detail"):
                await audit.record(rt, uow, "users.updated", detail=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="dotted"):
            await audit.record(rt, uow, "Users Updated")
        with pytest.raises(ValueError, match="must be an id"):
            await audit.record(rt, uow, "users.updated", target_id="ann@example.com")
    with pytest.raises(RuntimeError, match="read-only"):
        async with rt.db.unit_of_work(readonly=True) as uow:
            await audit.record(rt, uow, "chats.viewed")


@pytest.mark.parametrize(
    ("sql", "broken", "reason"),
    [
        ("UPDATE audit_events SET target_id = 'other' WHERE seq = 2", 2, "content"),
        ("DELETE FROM audit_events WHERE seq = 2", 2, "missing"),
        ("DELETE FROM audit_events WHERE seq = 4", 4, "end"),
        ("UPDATE audit_events SET outcome = 'ok', hash = prev_hash WHERE seq = 3", 3, "content"),
    ],
)
async def test_tampering_is_found_and_named(rt: Runtime, sql: str, broken: int, reason: str) -> None:
    for n in range(4):
        async with rt.db.unit_of_work() as uow:
            await audit.record(rt, uow, "auth.login", actor_type="operator", actor_id=f"op{n}")
    assert (await _verify(rt)).ok
    await _tamper(rt, sql)
    result = await _verify(rt)
    assert not result.ok
    assert result.first_broken_seq == broken
    assert result.reason is not None
    assert reason in result.reason


async def test_concurrent_writers_form_one_gapless_chain(rt: Runtime) -> None:
    async def write(n: int) -> None:
        async with rt.db.unit_of_work() as uow:
            await audit.record(rt, uow, "auth.login", actor_type="operator", actor_id=f"op{n}")
            await asyncio.sleep(0)  # let the others interleave before the commit
            await audit.record(rt, uow, "auth.logout", actor_type="operator", actor_id=f"op{n}")

    await asyncio.gather(*(write(n) for n in range(20)))
    rows = await _rows(rt)
    assert [r.seq for r in rows] == list(range(1, 41))
    result = await _verify(rt)
    assert result.ok
    assert result.checked == 40
    # One transaction's rows are adjacent: the chain head is held from chaining to commit.
    for first, second in zip(rows[::2], rows[1::2], strict=True):
        assert (first.actor_id, first.action, second.action) == (second.actor_id, "auth.login", "auth.logout")


async def test_delete_of_everything_but_the_head_is_found(rt: Runtime) -> None:
    async with rt.db.unit_of_work() as uow:
        await audit.record(rt, uow, "auth.login", actor_type="anonymous")
    await _tamper(rt, "DELETE FROM audit_events")
    result = await _verify(rt)
    assert not result.ok
    assert result.first_broken_seq == 1
