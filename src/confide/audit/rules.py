"""The audit log is append-only in the database too: triggers, per dialect.

- ``audit_events``: every UPDATE is refused (``audit_events_no_update``); a DELETE is refused
  (``audit_events_no_delete``) unless the deleting transaction holds the retention flag
  (a row of ``audit_prune``, inserted and removed again inside that transaction, so no other
  transaction ever sees it) and the row is at or below the flag's ``upto`` (``audit.retention``).
- ``audit_head``: never deleted (``audit_head_no_delete``); an UPDATE must move it forward onto
  a stored row, i.e. to a higher ``seq`` whose hash is that row's (``audit_head_forward_only``),
  which is exactly what chaining does; rewinding it to hide rows cut from the end is refused.

These guard against the application itself (a bug, an injected statement) and against casual
edits; someone who owns the database can drop triggers, which is why the chain is keyed and
``verify`` is the proof (ADR 0011). ``TRUNCATE`` (PostgreSQL) fires no row trigger; the test
suite empties tables with it, so it is not refused here (docs/audit.md).

Installed by migration ``0006_audit_rules`` and, for ``Base.metadata.create_all``, by the DDL
listeners below (``install``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from confide.audit.models import AuditEvent, AuditHead

EVENTS_TRIGGERS = ("audit_events_no_update", "audit_events_no_delete")
HEAD_TRIGGERS = ("audit_head_no_delete", "audit_head_forward_only")

_PRUNE_UPTO = "COALESCE((SELECT upto FROM audit_prune WHERE id = 1), 0)"
_HEAD_MOVES_FORWARD = (
    "NEW.id = OLD.id AND NEW.seq > OLD.seq "
    "AND NEW.hash = COALESCE((SELECT hash FROM audit_events WHERE seq = NEW.seq), '')"
)

SQLITE_EVENTS = [
    "CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: a row cannot be changed'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events "
    f"WHEN OLD.seq > {_PRUNE_UPTO} "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: rows are removed only by retention'); END",
]
SQLITE_HEAD = [
    "CREATE TRIGGER IF NOT EXISTS audit_head_no_delete BEFORE DELETE ON audit_head "
    "BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_head_forward_only BEFORE UPDATE ON audit_head "
    f"WHEN NOT ({_HEAD_MOVES_FORWARD}) "
    "BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward, onto a stored row'); END",
]

PG_EVENTS = [
    f"""CREATE OR REPLACE FUNCTION confide_audit_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND OLD.seq <= {_PRUNE_UPTO} THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$""",
    "DROP TRIGGER IF EXISTS audit_events_no_update ON audit_events",
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION confide_audit_events_guard()",
    "DROP TRIGGER IF EXISTS audit_events_no_delete ON audit_events",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION confide_audit_events_guard()",
]
PG_HEAD = [
    f"""CREATE OR REPLACE FUNCTION confide_audit_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND {_HEAD_MOVES_FORWARD} THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_head only moves forward, onto a stored row: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$""",
    "DROP TRIGGER IF EXISTS audit_head_no_delete ON audit_head",
    "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
    "FOR EACH ROW EXECUTE FUNCTION confide_audit_head_guard()",
    "DROP TRIGGER IF EXISTS audit_head_forward_only ON audit_head",
    "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head "
    "FOR EACH ROW EXECUTE FUNCTION confide_audit_head_guard()",
]


def statements(dialect: str, table: str) -> list[str]:
    """The DDL that guards ``table`` (``audit_events`` or ``audit_head``) on ``dialect``."""
    events, head = (PG_EVENTS, PG_HEAD) if dialect == "postgresql" else (SQLITE_EVENTS, SQLITE_HEAD)
    return events if table == AuditEvent.__tablename__ else head


def drop_statements(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [
            *(f"DROP TRIGGER IF EXISTS {name} ON audit_events" for name in EVENTS_TRIGGERS),
            *(f"DROP TRIGGER IF EXISTS {name} ON audit_head" for name in HEAD_TRIGGERS),
            "DROP FUNCTION IF EXISTS confide_audit_events_guard()",
            "DROP FUNCTION IF EXISTS confide_audit_head_guard()",
        ]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in (*EVENTS_TRIGGERS, *HEAD_TRIGGERS)]


def install(connection: Connection, table: str) -> None:
    for sql in statements(connection.dialect.name, table):
        connection.execute(text(sql))


def _after_create(target: Any, connection: Connection, **_kw: Any) -> None:
    install(connection, target.name)


event.listen(AuditEvent.__table__, "after_create", _after_create)
event.listen(AuditHead.__table__, "after_create", _after_create)
