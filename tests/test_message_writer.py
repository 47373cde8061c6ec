"""The message writer's batches (on SQLite through the raw writer connection, on PostgreSQL through a
unit of work) store what ``store_messages`` stores, answer retries and duplicates with the stored
message, refuse per draft, and look retries up through the unique index."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from confide.chats import messages
from confide.chats import service as chats
from confide.chats.models import Conversation, ConversationTerm, Message
from confide.chats.schemas import Draft
from confide.core.db import Base
from confide.core.errors import NotFound
from confide.core.runtime import Runtime
from confide.realtime.writer import MessageWriter, Result
from tests.conftest import World
from tests.helpers_api import accept, say, set_status, start_chat


def _draft(conv_id: str, visitor_id: str, client_id: str, text: str) -> Draft:
    return Draft(conversation_id=conv_id, sender="visitor", sender_id=visitor_id, sender_name=None,
                 client_id=client_id, text=text)


async def _store(writer: MessageWriter, drafts: list[Draft]) -> list[Result]:
    futures = [writer.enqueue(d) for d in drafts]  # queued together: one batch
    return list(await asyncio.wait_for(asyncio.gather(*futures), 10))


async def test_writer_batches_store_the_same_rows_as_store_messages(
    rt: Runtime, world: World, client: httpx.AsyncClient, db_kind: str
) -> None:
    await set_status(rt, world.operator_id)
    started = await start_chat(client, world)
    conv_id, visitor_id = started["conversation_id"], started["visitor_id"]
    await accept(rt, world.operator_id, conv_id)
    assert rt.db.has_raw_transactions == (db_kind == "sqlite")
    first = await say(rt, conv_id, "Hello there", sender_id=visitor_id)  # the unit-of-work path

    writer = MessageWriter(rt)
    tasks = writer.start()
    try:
        results = await _store(writer, [
            _draft(conv_id, visitor_id, "c-1", "Where is my parcel?"),
            _draft(conv_id, visitor_id, "c-2", "Order 1234, refund please"),
            _draft(conv_id, visitor_id, "c-1", "Where is my parcel?"),  # the same client id twice
            _draft("no-such-conversation", visitor_id, "c-3", "lost"),
            Draft(conversation_id=conv_id, sender="operator", sender_id=world.operator_id, sender_name="Mia",
                  client_id="o-1", text="Let me check"),
        ])
        retry = await _store(writer, [_draft(conv_id, visitor_id, "c-2", "Order 1234, refund please")])
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    ok: list[dict[str, Any]] = [r for r in results if isinstance(r, dict)]
    base = first["seq"]  # after the "joined" line
    assert [r["seq"] for r in ok] == [base + 1, base + 2, base + 1, base + 3]
    assert results[0] == results[2]
    assert isinstance(results[3], NotFound)
    assert ok[-1]["sender"] == "operator"
    assert ok[-1]["sender_name"] == "Mia"
    assert retry == [results[1]]  # a retry gets the stored message back, nothing is stored twice

    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = (await uow.session.scalars(
            select(Message).where(Message.conversation_id == conv_id, Message.seq >= base).order_by(Message.seq))).all()
        key = await rt.keyring.get(uow.session, visitor_id)
        terms = set((await uow.session.scalars(
            select(ConversationTerm.term).where(ConversationTerm.conversation_id == conv_id))).all())
        conv_seq = (await uow.session.execute(
            select(Conversation.seq, Conversation.last_message_at).where(Conversation.id == conv_id))).one()
    assert [m.seq for m in rows] == [base, base + 1, base + 2, base + 3]
    prefixes = [m.id[:10] for m in rows]  # ordered ids: by millisecond, so appended to the index
    assert prefixes == sorted(prefixes)
    assert [m.id for m in rows] == [first["id"], ok[0]["id"], ok[1]["id"], ok[3]["id"]]
    assert [key.decrypt(m.body_enc, f"messages.body:{m.id}") for m in rows] == [
        "Hello there", "Where is my parcel?", "Order 1234, refund please", "Let me check"]
    assert all(m.created_at.tzinfo is not None for m in rows)
    assert chats.message_view(message_id=rows[1].id, seq=base + 1, client_id="c-1", sender="visitor", sender_name=None,
                              text="Where is my parcel?", created_at=rows[1].created_at) == results[0]
    assert conv_seq.seq == base + 3
    assert conv_seq.last_message_at == rows[-1].created_at
    assert {rt.bidx.term(world.workspace_id, "msg", w) for w in ("parcel", "refund", "1234", "check")} <= terms


def test_the_retry_lookup_seeks_the_unique_index(tmp_path: Path) -> None:
    path = tmp_path / "plan.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    conn = sqlite3.connect(path)
    sql = messages._SQLITE_SELECT_STORED + ", ".join(["(?, ?, ?)"] * 3) + messages._SQLITE_SELECT_STORED_ON
    plan = " | ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, ["x"] * 9))
    conn.close()
    assert "SEARCH m USING INDEX" in plan, plan
    assert "SCAN m" not in plan, plan


async def test_a_raw_transaction_commits_only_at_its_end_and_rolls_back_on_error(rt: Runtime, db_kind: str) -> None:
    if db_kind != "sqlite":  # PostgreSQL has no raw writer: the writer uses a unit of work
        assert not rt.db.has_raw_transactions
        with pytest.raises(RuntimeError):
            async with rt.db.raw_transaction():
                pass
        return

    def insert(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO workspaces (id, name, created_at) VALUES ('w-raw', 'Raw', '2026-12-01 00:00:00')")

    def count(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT count(*) FROM workspaces WHERE id = 'w-raw'").fetchone()[0])

    async def fails_inside() -> None:
        async with rt.db.raw_transaction() as tx:
            tx.at_commit(insert)
            await tx.run(insert)  # visible inside the transaction
            assert await tx.run(count) == 1
            raise ValueError("boom")

    async def fails_at_commit() -> None:  # a failing queued write fails the commit, and rolls back
        async with rt.db.raw_transaction() as tx:
            await tx.run(insert)
            tx.at_commit(insert)

    with pytest.raises(ValueError, match="boom"):
        await fails_inside()
    with pytest.raises(sqlite3.IntegrityError):
        await fails_at_commit()
    async with rt.db.raw_transaction() as tx:
        assert await tx.run(count) == 0
        tx.at_commit(insert)
    async with rt.db.unit_of_work(readonly=True) as uow:  # committed, and visible to the pooled connections
        assert (await uow.session.execute(text("SELECT name FROM workspaces WHERE id = 'w-raw'"))).scalar() == "Raw"
