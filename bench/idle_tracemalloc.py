"""Python heap held per idle visitor socket, measured with tracemalloc (no RSS noise, no CPU timing).

    .venv/bin/python -m bench.idle_tracemalloc [--sockets 400] [--chats 2]

One process: Confide on uvicorn (websockets-sansio, as served) on an embedded SQLite database in
a temporary folder, and the benchmark's minimal callback client (``bench/wsclient.py``). Chats
are started through the service (an operator is online, so they stay queued); 20 warm-up sockets
are opened, say hello and are closed; then tracemalloc takes a snapshot, ``--sockets`` visitor
sockets are opened and welcomed, and after they have been idle for a moment a second snapshot is
taken. The figure is the growth of the traced heap per socket, without the client's own
allocations (any trace with a frame in ``bench/``). It counts Python objects only (the kernel's
socket buffers and the allocator's slack are not in it), so it is lower than the RSS figure of
``bench.idle``, but it shows what the server keeps alive for each socket, where.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import socket
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import uvicorn
from tests import factories

import confide.models  # noqa: F401 - every table on Base.metadata
from bench.wsclient import WSClient, connect
from confide.app import create_app
from confide.chats.schemas import StartConversationIn
from confide.config import Settings
from confide.core.crypto import generate_key
from confide.core.db import Base
from confide.core.runtime import build_runtime
from confide.routing import service as routing
from confide.users import service as users

ORIGIN = "https://shop.example"
BENCH = str(Path(__file__).resolve().parent)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _open(port: int, site_key: str, chat: dict[str, Any]) -> WSClient:
    welcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def first(payload: bytes) -> None:
        if not welcome.done():
            kind = json.loads(payload).get("type")
            welcome.set_result(None) if kind in ("welcome", "resync") else welcome.set_exception(RuntimeError(kind))

    ws = await connect("127.0.0.1", port, f"/ws/visitor?site={site_key}", {"Origin": ORIGIN}, on_text=first)
    ws.send_text(json.dumps({"type": "hello", "token": chat["token"], "conversation_id": chat["conversation_id"],
                             "last_seq": 0}))
    await asyncio.wait_for(welcome, 15)
    return ws


def _server_side(snapshot: tracemalloc.Snapshot) -> tracemalloc.Snapshot:
    """Drop every trace allocated with a frame of the client (``bench/wsclient.py``) on its stack.
    Not "any frame of bench/": the event loop itself runs under this module's ``asyncio.run``, so
    every server trace short enough to reach the bottom of the stack would be dropped too."""
    return snapshot.filter_traces([tracemalloc.Filter(False, f"{BENCH}/wsclient.py", all_frames=True)])


async def main(sockets: int, chats_per_visitor: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="confide-idle-"))
    url = f"sqlite+aiosqlite:///{tmp / 'confide.db'}"
    settings = Settings(data_dir=tmp, database_url=url, master_key=generate_key(), argon2_time_cost=1,
                        argon2_memory_kib=8, log_level="warning", run_worker=False, sqlite_synchronous="NORMAL",
                        max_sockets_per_address=0, max_sockets_per_visitor=0,  # ignored by older versions
                        conversations_per_address_per_hour=0)
    rt = build_runtime(settings)
    async with rt.db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with rt.db.unit_of_work() as uow:
        ws_row = await factories.workspace(uow)
        site = await factories.site(uow, workspace_id=ws_row.id, allowed_origins=[ORIGIN])
        dept = await factories.department(uow, workspace_id=ws_row.id, site_id=site.id)
        op = await factories.operator(rt, uow, workspace_id=ws_row.id, email="mia@shop.example",
                                      department_ids=[dept.id], name="Mia")
        await routing.set_status(rt, uow, await users.actor_for(uow, op.id), "online")
        # a live console somewhere (presence, ADR 0005): the site is staffed, the chats stay queued
        await users.beat(uow, "bench-console", operators=[op.id], ttl_s=24 * 3600)
        site_key = site.site_key
    total = sockets + 20
    chats: list[dict[str, Any]] = []
    for n in range(0, total, 100):
        async with rt.db.unit_of_work() as uow:
            site = await factories_site(uow, site_key)
            for i in range(n, min(total, n + 100)):
                body = StartConversationIn(fields={"name": f"Visitor {i}", "email": f"v{i}@example.com"})
                chats.append(await routing.start_chat(rt, uow, site, body))

    print("chats created", flush=True)
    app = create_app(runtime=rt)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, ws="websockets-sansio",
                                           ws_per_message_deflate=False, ws_max_size=16 * 1024,
                                           log_level="warning", lifespan="on", access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
        await asyncio.sleep(0.02)
    try:
        warm = [await _open(port, site_key, chat) for chat in chats[:20]]
        for ws in warm:
            ws.close()
        await asyncio.sleep(1.0)
        tracemalloc.start(64)  # deep enough to reach the client's frames
        gc.collect()
        before = _server_side(tracemalloc.take_snapshot())
        opened = [await _open(port, site_key, chat) for chat in chats[20:]]
        await asyncio.sleep(2.0)  # idle: every welcome sent, every send task gone
        gc.collect()
        after = _server_side(tracemalloc.take_snapshot())
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        print(f"sockets: {len(opened)}  server heap growth: {grown} B  per idle socket: {grown / len(opened):.0f} B")
        print("top growth by file (bytes per socket):")
        for stat in after.compare_to(before, "filename")[:12]:
            name = stat.traceback[0].filename.split("site-packages/")[-1].split("/src/")[-1]
            print(f"  {stat.size_diff / len(opened):8.0f}  {name}")
        print("top growth by line (bytes per socket):")
        for stat in after.compare_to(before, "lineno")[:12]:
            frame = stat.traceback[0]
            name = frame.filename.split("site-packages/")[-1].split("/src/")[-1]
            print(f"  {stat.size_diff / len(opened):8.0f}  {name}:{frame.lineno}")
        tracemalloc.stop()
        for ws in opened:
            ws.close()
        await asyncio.sleep(0.5)
    finally:
        server.should_exit = True
        await task


async def factories_site(uow: Any, site_key: str) -> Any:
    from confide.permissions.access import site_by_key

    return await site_by_key(uow.session, site_key)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=400)
    parser.add_argument("--chats", type=int, default=1, help="unused; kept for symmetry with bench.idle")
    args = parser.parse_args()
    asyncio.run(main(args.sockets, args.chats))
