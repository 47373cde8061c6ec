"""Export of one person with 1,000 messages (issue 8: all four formats within 2 s;
``make bench`` runs ``--formats json,csv,xlsx,pdf``).

``python -m bench.subject_export [--messages 1000] [--rounds 5] [--formats json]``. On a SQLite file
(WAL): one workspace, a person with one conversation of ``--messages`` messages (half theirs, half
an operator's), a page trail and an offline request, plus ``--others`` other visitors with a chat
each (the export must find only the person's rows). Timed, per format: ``export_person`` end to end
(the scoped check, the registry walk in a read-only unit, decryption and JSON off the loop, the
audit row) — median and max of the rounds, in seconds. Writes bench/results/subject_export.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import confide.models  # noqa: F401 - every table
from confide.chats import service as chats
from confide.chats.schemas import Draft
from confide.config import Settings
from confide.core import crypto
from confide.core.broker import MemoryBroker
from confide.core.db import Base
from confide.core.runtime import Runtime, build_runtime
from confide.offline import service as offline
from confide.subjects import export
from confide.subjects.schemas import ExportIn
from confide.users import accounts
from confide.users import sessions as user_sessions
from confide.users.schemas import OperatorIn
from confide.visitors import service as visitors
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import SiteIn

RESULTS = Path(__file__).resolve().parent / "results" / "subject_export.json"
FIELDS = [
    {"key": "name", "label": "Name", "type": "text", "required": True},
    {"key": "email", "label": "E-mail", "type": "email", "required": True},
    {"key": "phone", "label": "Phone", "type": "tel", "required": False},
]


async def _scene(rt: Runtime, messages: int, others: int) -> tuple[str, str]:
    async with rt.db.unit_of_work() as uow:
        ws = await workspaces.create_workspace(uow, name="Bench")
        site = await workspaces.create_site(uow, workspace_id=ws.id, data=SiteIn(
            name="Bench shop", allowed_origins=["https://bench.example"], prechat_fields=FIELDS))
        dept = await workspaces.create_department(uow, workspace_id=ws.id, site_id=site.id, name="Support")
        staff = await accounts.create_operator(rt, uow, workspace_id=ws.id, data=OperatorIn(
            email="dpo@bench.example", name="Dana DPO", password="bench-password-long", role="admin",
            department_ids=[dept.id]))
        person = await visitors.create_visitor(rt, uow, site, {"name": "Bench Person", "email": "p@bench.example",
                                                               "phone": "+44 20 7946 0000"}, {})
        conv = await chats.start_conversation(rt, uow, site=site, visitor=person, department=dept,
                                              page_url="https://bench.example/help")
        await offline.store_request(rt, uow, site, person, department_id=None, message="Call me back please",
                                    page_url=None)
        other_convs = []
        for i in range(others):
            v = await visitors.create_visitor(rt, uow, site, {"name": f"Other {i}", "email": f"o{i}@bench.example"},
                                              {})
            other_convs.append((await chats.start_conversation(rt, uow, site=site, visitor=v, department=dept,
                                                               page_url=None), v.id))
    async with rt.db.unit_of_work() as uow:  # the staff member holds the chat (as after accepting it)
        await uow.session.execute(text("update conversations set operator_id = :op, status = 'active' where id = :id"),
                                  {"op": staff.id, "id": conv.id})
    for start in range(0, messages, 100):
        drafts = [
            Draft(conversation_id=conv.id, sender="visitor" if i % 2 == 0 else "operator",
                  sender_id=person.id if i % 2 == 0 else staff.id, sender_name=None, client_id=crypto.new_id(),
                  text=f"Message number {i}: when will my parcel arrive, and can I change the address?")
            for i in range(start, min(start + 100, messages))
        ]
        async with rt.db.unit_of_work() as uow:
            results = await chats.store_messages(rt, uow, drafts)
        refused = [r for r in results if not isinstance(r, dict)]
        assert not refused, refused[:1]
    for c, vid in other_convs:
        draft = Draft(conversation_id=c.id, sender="visitor", sender_id=vid, sender_name=None,
                      client_id=crypto.new_id(), text="Someone else's message")
        async with rt.db.unit_of_work() as uow:
            await chats.store_messages(rt, uow, [draft])
    return person.id, staff.id


async def run(messages: int, others: int, rounds: int, formats: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="confide-bench-export-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'confide.db'}"
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.execute(text("PRAGMA journal_mode=WAL"))
        await engine.dispose()
        settings = Settings(data_dir=Path(tmp), database_url=url, log_level="warning", run_worker=False,
                            sqlite_synchronous="NORMAL", argon2_time_cost=1, argon2_memory_kib=8)
        rt = build_runtime(settings, broker=MemoryBroker())
        try:
            visitor_id, staff_id = await _scene(rt, messages, others)
            async with rt.db.unit_of_work(readonly=True) as uow:
                actor = await user_sessions.actor_for(uow, staff_id)
            out: dict[str, Any] = {"messages": messages, "others": others, "rounds": rounds, "formats": {}}
            for fmt in formats:
                body = ExportIn(visitor_ids=[visitor_id], fmt=fmt)  # type: ignore[arg-type]
                await export.export_person(rt, actor, body, via="bench")  # warm-up (keys, statements)
                times, size = [], 0
                for _ in range(rounds):
                    rt.keyring.forget(visitor_id)  # each round unwraps the key again, as a fresh request would
                    t0 = time.perf_counter()
                    delivered = await export.export_person(rt, actor, body, via="bench")
                    times.append(time.perf_counter() - t0)
                    size = len(delivered.data)
                package = json.loads(delivered.data) if fmt == "json" else None
                if package is not None:
                    (transcript,) = package["transcripts"]
                    assert len(transcript["messages"]) == messages
                out["formats"][fmt] = {"median_s": round(statistics.median(times), 3),
                                       "max_s": round(max(times), 3), "bytes": size}
            return out
        finally:
            await rt.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--others", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--formats", default="json")
    args = parser.parse_args()
    result = asyncio.run(run(args.messages, args.others, args.rounds, args.formats.split(",")))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for fmt, figures in result["formats"].items():
        print(f"export of a person with {result['messages']} messages, {fmt}: median {figures['median_s']} s, "
              f"max {figures['max_s']} s, {figures['bytes']} bytes")


if __name__ == "__main__":
    main()
