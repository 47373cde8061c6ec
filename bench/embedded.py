"""A Confide runtime on a throw-away SQLite file, for the benchmarks that drive services in process
(erasure, find): the schema created from the models, the broker in process, no worker."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine
from tests import factories

import confide.models  # noqa: F401 - every table
from confide.config import Settings
from confide.core import crypto
from confide.core.broker import MemoryBroker
from confide.core.db import Base
from confide.core.runtime import Runtime, build_runtime


@asynccontextmanager
async def sqlite_runtime(prefix: str = "confide-bench-", **settings: Any) -> AsyncIterator[Runtime]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await engine.dispose()
        rt = build_runtime(Settings(data_dir=Path(tmp), database_url=url, master_key=crypto.generate_key(),
                                    log_level="warning", run_worker=False, **settings), broker=MemoryBroker())
        try:
            yield rt
        finally:
            await rt.close()


async def shop(rt: Runtime) -> tuple[Any, Any, Any]:
    """A workspace with one site and one department: (workspace, site, department)."""
    async with rt.db.unit_of_work() as uow:
        ws = await factories.workspace(uow)
        site = await factories.site(uow, workspace_id=ws.id)
        dept = await factories.department(uow, workspace_id=ws.id, site_id=site.id)
    return ws, site, dept


async def checkpoint(rt: Runtime) -> None:
    """Truncate the WAL, as a running server's checkpoints leave it."""
    async with rt.db.engine.connect() as conn:
        await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
