"""Every table and column is classified in the personal-data registry."""

from __future__ import annotations

import confide.models  # noqa: F401
from confide.core.db import Base
from confide.core.personal_data import REGISTRY, Personal, Storage, personal_columns


def test_every_table_and_column_is_classified() -> None:
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    missing_tables = sorted(set(tables) - set(REGISTRY))
    assert not missing_tables, f"tables missing from core/personal_data.py: {missing_tables}"
    stale_tables = sorted(set(REGISTRY) - set(tables))
    assert not stale_tables, f"registry names tables that do not exist: {stale_tables}"
    for name, table in tables.items():
        columns = {c.name for c in table.columns}
        declared = set(REGISTRY[name].columns)
        assert columns - declared == set(), f"{name}: unclassified columns {sorted(columns - declared)}"
        assert declared - columns == set(), f"{name}: registry names missing columns {sorted(declared - columns)}"


def test_personal_tables_name_their_subject_column() -> None:
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    for name, entry in REGISTRY.items():
        if any(isinstance(kind, Personal) for kind in entry.columns.values()):
            assert entry.subject_column in {c.name for c in tables[name].columns}, name


def test_visitor_data_is_never_stored_plain_without_a_reason() -> None:
    for table, column, kind in personal_columns():
        if kind.subject == "visitor" and kind.storage is Storage.PLAIN:
            assert kind.note, f"{table}.{column} holds visitor data in plain text without a documented reason"
        if kind.storage is Storage.ENCRYPTED:
            assert column.endswith("_enc") or column == "wrapped_key", f"{table}.{column}: encrypted names end in _enc"
