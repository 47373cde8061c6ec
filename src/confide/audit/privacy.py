"""Personal-data registry entries of the tables of confide.audit (see core/personal_data.py for the format)."""

from __future__ import annotations

from confide.core.personal_data import (
    NOT_PERSONAL,
    Table,
)

_N = NOT_PERSONAL

TABLES: dict[str, Table] = {
    # The audit log names actors and targets by id only (audit.service refuses free text).
    "audit_events": Table(
        {
            c: _N
            for c in (
                "seq",
                "at",
                "workspace_id",
                "actor_type",
                "actor_id",
                "action",
                "outcome",
                "target_type",
                "target_id",
                "detail",
                "prev_hash",
                "hash",
            )
        },
    ),
    "audit_head": Table({c: _N for c in ("id", "seq", "hash")}),
    "audit_prune": Table({c: _N for c in ("id", "upto")}),  # a flag inside one transaction
}
