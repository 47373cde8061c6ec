"""Alembic migrations build exactly the schema of the models, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import confide.models  # noqa: F401
from confide.core.db import Base
from confide.core.migrate import downgrade, upgrade
from tests.conftest import PG_ADMIN_URL


def _diff(url: str) -> list[object]:
    async def run() -> list[object]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}),
                                              Base.metadata))
        await engine.dispose()
        return list(diff)

    return asyncio.run(run())


def _in_thread(fn, *args):  # type: ignore[no-untyped-def]
    """Alembic's env.py runs its own event loop: keep it off the tests' loop."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrate.db'}"
        return
    # Random: several checkouts may run this suite against the same server at once.
    name = f"confide_mig_{uuid.uuid4().hex[:16]}"

    async def admin(sql: str) -> None:
        engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(sql))
        await engine.dispose()

    _in_thread(asyncio.run, admin(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    _in_thread(asyncio.run, admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_upgrade_matches_models_and_downgrade_reverses(empty_db: str) -> None:
    _in_thread(upgrade, empty_db)
    assert _in_thread(_diff, empty_db) == []
    _in_thread(downgrade, empty_db, "base")
    _in_thread(upgrade, empty_db)
    assert _in_thread(_diff, empty_db) == []
