"""``consent_records`` is append-only in the database too, as the audit log is (``audit/rules.py``):

- every UPDATE is refused (``consent_records_no_update``);
- a DELETE is refused (``consent_records_no_delete``) unless the deleting transaction holds the
  erasure flag for that row's subject: a row of ``consent_erasure`` inserted and removed again in
  the same transaction (``consent.removal.erase_subject``, for the subject-erasure of the next
  issue), so no other transaction ever sees it.

Installed by migration ``0012_consent`` and, for ``Base.metadata.create_all``, by the DDL listener.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from confide.consent.models import ConsentRecord

TRIGGERS = ("consent_records_no_update", "consent_records_no_delete")
_FLAGGED = "OLD.subject_id IN (SELECT subject_id FROM consent_erasure)"

SQLITE = [
    "CREATE TRIGGER IF NOT EXISTS consent_records_no_update BEFORE UPDATE ON consent_records "
    "BEGIN SELECT RAISE(ABORT, 'consent_records is append-only: a row cannot be changed'); END",
    "CREATE TRIGGER IF NOT EXISTS consent_records_no_delete BEFORE DELETE ON consent_records "
    f"WHEN NOT ({_FLAGGED}) "
    "BEGIN SELECT RAISE(ABORT, 'consent_records is append-only: rows are removed only by erasure'); END",
]
PG = [
    f"""CREATE OR REPLACE FUNCTION confide_consent_records_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND {_FLAGGED} THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'consent_records is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$""",
    "DROP TRIGGER IF EXISTS consent_records_no_update ON consent_records",
    "CREATE TRIGGER consent_records_no_update BEFORE UPDATE ON consent_records "
    "FOR EACH ROW EXECUTE FUNCTION confide_consent_records_guard()",
    "DROP TRIGGER IF EXISTS consent_records_no_delete ON consent_records",
    "CREATE TRIGGER consent_records_no_delete BEFORE DELETE ON consent_records "
    "FOR EACH ROW EXECUTE FUNCTION confide_consent_records_guard()",
]


def statements(dialect: str) -> list[str]:
    return PG if dialect == "postgresql" else SQLITE


def drop_statements(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [
            *(f"DROP TRIGGER IF EXISTS {name} ON consent_records" for name in TRIGGERS),
            "DROP FUNCTION IF EXISTS confide_consent_records_guard()",
        ]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in TRIGGERS]


def _after_create(target: Any, connection: Connection, **_kw: Any) -> None:
    for sql in statements(connection.dialect.name):
        connection.execute(text(sql))


event.listen(ConsentRecord.__table__, "after_create", _after_create)
