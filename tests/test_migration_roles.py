"""0005_roles: existing administrators become "administrator", operators keep their key, and the
way back turns every custom role into "operator"; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from confide.core.migrate import downgrade, upgrade
from tests.test_migrations import _in_thread, empty_db  # noqa: F401 - the fixture


def _sql(url: str, *statements: str) -> list[tuple[object, ...]]:
    async def run() -> list[tuple[object, ...]]:
        engine = create_async_engine(url)
        rows: list[tuple[object, ...]] = []
        async with engine.begin() as conn:
            for statement in statements:
                result = await conn.execute(text(statement))
                if result.returns_rows:
                    rows = [tuple(r) for r in result]
        await engine.dispose()
        return rows

    return asyncio.run(run())


def test_roles_migration_moves_the_old_keys(empty_db: str) -> None:  # noqa: F811
    _in_thread(upgrade, empty_db, "0004_audit_log")
    columns = ("id, workspace_id, email, name, password_hash, role, status, max_chats, disabled, failed_logins,"
               " created_at")
    _in_thread(_sql, empty_db,
               "INSERT INTO workspaces (id, name, created_at) VALUES ('w1', 'Shop', '2026-01-01 00:00:00')",
               "INSERT INTO operators (" + columns + ") VALUES"
               " ('a', 'w1', 'a@x.example', 'N', 'h', 'admin', 'offline', 5, false, 0, '2026-01-01 00:00:00'),"
               " ('o', 'w1', 'o@x.example', 'N', 'h', 'operator', 'offline', 5, false, 0, '2026-01-01 00:00:00')")
    _in_thread(upgrade, empty_db)
    rows = _in_thread(_sql, empty_db, "SELECT id, role FROM operators ORDER BY id")
    assert rows == [("a", "administrator"), ("o", "operator")]
    _in_thread(_sql, empty_db,
               "INSERT INTO roles (id, workspace_id, name, description, scope, permissions, created_at, updated_at)"
               " VALUES ('r1', 'w1', 'Night', '', 'own', '[\"chats.read\"]', '2026-01-01 00:00:00',"
               " '2026-01-01 00:00:00')",
               "UPDATE operators SET role = 'r1' WHERE id = 'o'")
    _in_thread(downgrade, empty_db, "0004_audit_log")
    rows = _in_thread(_sql, empty_db, "SELECT id, role FROM operators ORDER BY id")
    assert rows == [("a", "admin"), ("o", "operator")]
