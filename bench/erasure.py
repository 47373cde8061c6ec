"""Erasure of one person with 1,000 messages, in a database of 10k and of a much larger number of
stored messages (issue 8: the two within 2x of each other).

``python -m bench.erasure [--big 1000000]`` (also run by ``make bench``). The database is a SQLite
file filled with raw rows (other people's conversations and messages with stand-in ciphertext:
erasure never decrypts), then one person with ``--messages`` messages in ``--conversations`` chats,
a few terms and a data key is erased through ``erasure.service.erase`` (the whole transaction:
the registry walk, the fold into statistics, the deletes, the key, tombstones, certificate, job,
audit). Reported: seconds per erasure (median of ``--rounds``) for each size and their ratio.
Writes bench/results/erasure.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import confide.models  # noqa: F401 - every table
from bench.embedded import checkpoint, shop, sqlite_runtime
from confide.core import clock, crypto
from confide.core.runtime import Runtime
from confide.erasure import service as erasure

RESULTS = Path(__file__).resolve().parent / "results" / "erasure.json"
PER_CONVERSATION = 20  # other people's chats: this many messages each


async def _fill(rt: Runtime, workspace_id: str, site_id: str, dept_id: str, messages: int) -> None:
    """Other people's data: ``messages`` messages in chats of PER_CONVERSATION, raw rows."""
    now = clock.now().replace(tzinfo=None).isoformat(sep=" ")
    chats = max(1, messages // PER_CONVERSATION)
    batch = 2000
    async with rt.db.engine.begin() as conn:
        raw = await conn.get_raw_connection()
        db: Any = raw.driver_connection
        for start in range(0, chats, batch):
            visitors, convs, msgs = [], [], []
            for _ in range(min(batch, chats - start)):
                vid, cid = crypto.new_id(), crypto.new_id()
                visitors.append((vid, workspace_id, site_id, now, b"x" * 40, "{}"))
                convs.append((cid, workspace_id, site_id, dept_id, vid, "closed", PER_CONVERSATION, now, "[]"))
                msgs.extend((crypto.new_ordered_id(), cid, s + 1, "visitor", vid, f"c{s}", b"y" * 60, now)
                            for s in range(PER_CONVERSATION))
            await db.executemany(
                "insert into visitors (id, workspace_id, site_id, created_at, name_enc, consents) "
                "values (?, ?, ?, ?, ?, ?)", visitors)
            await db.executemany(
                "insert into conversations (id, workspace_id, site_id, department_id, visitor_id, status, seq, "
                "created_at, offered_history, visitor_read_seq, operator_read_seq) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0)", convs)
            await db.executemany(
                "insert into messages (id, conversation_id, seq, sender, sender_id, client_id, body_enc, created_at) "
                "values (?, ?, ?, ?, ?, ?, ?, ?)", msgs)


async def _person(rt: Runtime, workspace_id: str, site_id: str, dept_id: str, messages: int,
                  conversations: int) -> str:
    async with rt.db.unit_of_work() as uow:
        vid = crypto.new_id()
        await rt.keyring.create(uow.session, workspace_id=workspace_id, subject_id=vid)
    now = clock.now().replace(tzinfo=None).isoformat(sep=" ")
    async with rt.db.engine.begin() as conn:
        raw = await conn.get_raw_connection()
        db: Any = raw.driver_connection
        await db.execute("insert into visitors (id, workspace_id, site_id, created_at, name_enc, consents) "
                         "values (?, ?, ?, ?, ?, ?)", (vid, workspace_id, site_id, now, b"x" * 40, "{}"))
        per = messages // conversations
        for _ in range(conversations):
            cid = crypto.new_id()
            await db.execute(
                "insert into conversations (id, workspace_id, site_id, department_id, visitor_id, status, seq, "
                "created_at, offered_history, visitor_read_seq, operator_read_seq, rating) "
                "values (?, ?, ?, ?, ?, 'closed', ?, ?, '[]', 0, 0, 5)",
                (cid, workspace_id, site_id, dept_id, vid, per, now))
            await db.executemany(
                "insert into messages (id, conversation_id, seq, sender, sender_id, client_id, body_enc, created_at) "
                "values (?, ?, ?, ?, ?, ?, ?, ?)",
                [(crypto.new_ordered_id(), cid, s + 1, "visitor" if s % 2 else "operator", vid, f"c{s}",
                  b"z" * 60, now) for s in range(per)])
            await db.executemany("insert into conversation_terms (term, conversation_id) values (?, ?)",
                                 [(f"t{cid[:8]}{i}", cid) for i in range(50)])
    return vid


async def measure(total: int, messages: int, conversations: int, rounds: int) -> dict[str, Any]:
    async with sqlite_runtime("confide-bench-erasure-") as rt:
        ws, site, dept = await shop(rt)
        started = time.perf_counter()
        await _fill(rt, ws.id, site.id, dept.id, total)
        await checkpoint(rt)
        filled_s = time.perf_counter() - started
        times = []
        for _ in range(rounds):
            vid = await _person(rt, ws.id, site.id, dept.id, messages, conversations)
            await checkpoint(rt)
            t0 = time.perf_counter()
            async with rt.db.unit_of_work() as uow:
                cert = await erasure.erase(rt, uow, None, ws.id, [vid], reason="staff")
            times.append(time.perf_counter() - t0)
            assert cert.counts.get("messages") == messages, cert.counts
        return {"stored_messages": total, "fill_s": round(filled_s, 1), "erase_s": times,
                "median_s": round(statistics.median(times), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=int(os.environ.get("CONFIDE_BENCH_ERASURE_BIG", "1000000")))
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    small = asyncio.run(measure(args.small, args.messages, args.conversations, args.rounds))
    big = asyncio.run(measure(args.big, args.messages, args.conversations, args.rounds))
    result = {"person_messages": args.messages, "small": small, "big": big,
              "ratio": round(big["median_s"] / small["median_s"], 2)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"erasure of a person with {args.messages} messages: {small['median_s']} s among {args.small} stored, "
          f"{big['median_s']} s among {args.big} stored (ratio {result['ratio']})")


if __name__ == "__main__":
    main()
