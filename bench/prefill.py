"""Fill a Confide database with stored messages, fast: ``python -m bench.prefill --messages N --site KEY``.

Run with the Confide server's environment (``CONFIDE_DATA_DIR`` …, see ``servers.confide_env``),
while that server is idle, to measure the relay on a database that already holds many messages.
It tops the ``messages`` table up to ``N`` rows, each what the relay would have written:
conversations of ``--per-conversation`` visitor messages each (a visitor, its data key and a
conversation through the project's services, ``visitors.create_visitor`` and
``chats.start_conversation``), closed, like the history of a site that has been in use; the
messages are bulk-inserted rows in ``chats.store_messages``' format (the body encrypted under the
visitor's data key with the same associated data, the conversation's ``seq``, one blind-index term
row per distinct word per conversation), ``--batch`` messages per transaction. Going around
``store_messages`` (which authorises, de-duplicates and publishes each message) keeps 200k
messages to seconds. The prefill runs with ``synchronous=OFF`` (it is set-up, not
measured; the server keeps ``FULL``) and ends with a truncating WAL checkpoint, so the
measurement starts from a database file, not from a huge WAL.

Prints one JSON line: messages before and after, conversations added, seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy import text as sql
from sqlalchemy.dialects import sqlite

from bench.loadgen import chat_texts
from confide.chats import service as chats
from confide.chats.models import Conversation, ConversationTerm, Message
from confide.config import Settings
from confide.core import clock, crypto
from confide.core.runtime import build_runtime
from confide.visitors import service as visitors
from confide.workspaces import service as workspaces
from confide.workspaces.models import Site

_MSG = cast(Table, Message.__table__)
_TERMS = cast(Table, ConversationTerm.__table__)


async def prefill(target: int, site_key: str, per_conversation: int, batch: int,
                  limit_s: float) -> dict[str, Any]:
    os.environ["CONFIDE_SQLITE_SYNCHRONOUS"] = "OFF"
    rt = build_runtime(Settings())
    if not rt.db.is_sqlite:
        raise RuntimeError("the prefill writes SQLite rows; the benchmark server runs on SQLite")
    t0 = time.perf_counter()
    texts = chat_texts(80, 2048)
    cache: dict[str, list[str]] = {}

    def terms_of(workspace_id: str, text: str) -> list[str]:
        terms = cache.get(text)
        if terms is None:
            terms = cache[text] = rt.bidx.text_terms(workspace_id, "msg", text)
        return terms
    try:
        async with rt.db.unit_of_work(readonly=True) as uow:
            before = int(await uow.session.scalar(select(func.count()).select_from(Message)) or 0)
            site = await uow.session.scalar(select(Site).where(Site.site_key == site_key))
            if site is None:
                raise LookupError(f"no site with key {site_key!r}")
            departments = await workspaces.departments_of_site(uow, site.id)
            if not departments:
                raise LookupError("the site has no department")
        dept = departments[0]
        todo = max(0, target - before)
        per_tx = max(1, batch // per_conversation)
        added_convs: list[str] = []
        n = 0
        while todo > 0 and time.perf_counter() - t0 < limit_s:
            async with rt.db.unit_of_work() as uow:
                # Write first, so the batch holds SQLite's write lock from its start: a batch that read
                # first while the server committed (its heartbeats and periodic jobs) would be refused
                # at once ("database is locked", whatever the busy timeout).
                await uow.session.execute(sql("UPDATE sites SET id = id WHERE 1 = 0"))
                messages: list[dict[str, Any]] = []
                term_rows: list[dict[str, Any]] = []
                for _ in range(per_tx):
                    if todo - len(messages) <= 0:
                        break
                    visitor = await visitors.create_visitor(rt, uow, site, {"name": f"Prefill {len(added_convs)}"},
                                                            {})
                    conv = await chats.start_conversation(rt, uow, site=site, visitor=visitor, department=dept,
                                                          page_url=None)
                    key = await rt.keyring.get(uow.session, visitor.id)
                    added_convs.append(conv.id)
                    said: set[str] = set()
                    count = min(per_conversation, todo - len(messages))
                    for seq in range(1, count + 1):
                        n += 1
                        text = texts[n % len(texts)]
                        said.add(text)
                        msg_id = crypto.new_ordered_id()
                        messages.append({"id": msg_id, "conversation_id": conv.id, "seq": seq, "sender": "visitor",
                                         "sender_id": visitor.id, "client_id": crypto.new_id(),
                                         "body_enc": key.encrypt(text, f"messages.body:{msg_id}"),
                                         "created_at": clock.now()})
                    conv.seq = count
                    conv.last_message_at = clock.now()
                    terms = {t for text in said for t in terms_of(site.workspace_id, text)}
                    term_rows += [{"term": t, "conversation_id": conv.id} for t in terms]
                await uow.session.flush()
                conn = await uow.session.connection()
                await conn.execute(insert(_MSG), messages)
                term_rows.sort(key=lambda r: (r["term"], r["conversation_id"]))
                await conn.execute(sqlite.insert(_TERMS).on_conflict_do_nothing(), term_rows)
                todo -= len(messages)
        async with rt.db.unit_of_work() as uow:  # a site's history: closed chats
            for i in range(0, len(added_convs), 500):
                await uow.session.execute(
                    update(Conversation).where(Conversation.id.in_(added_convs[i:i + 500]))
                    .values(status="closed", closed_at=clock.now(), closed_by="system"))
        async with rt.db.unit_of_work(readonly=True) as uow:
            after = int(await uow.session.scalar(select(func.count()).select_from(Message)) or 0)
        if rt.db.is_sqlite:
            async with rt.db.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await rt.close()
    return {"messages_before": before, "messages_after": after, "conversations_added": len(added_convs),
            "seconds": round(time.perf_counter() - t0, 2), "complete": after >= target}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.prefill", description=__doc__)
    ap.add_argument("--messages", type=int, required=True, help="messages the database should hold")
    ap.add_argument("--site", required=True, help="site key of the conversations to add")
    ap.add_argument("--per-conversation", type=int, default=100)
    ap.add_argument("--batch", type=int, default=5000, help="messages per transaction")
    ap.add_argument("--limit-s", type=float, default=240.0, help="stop adding after this many seconds")
    args = ap.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    else:
        runner = uvloop.run
    out = runner(prefill(args.messages, args.site, args.per_conversation, args.batch, args.limit_s))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
