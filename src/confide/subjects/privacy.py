"""Personal-data registry entries of the tables of confide.subjects (format: core/personal_data.py)."""

from __future__ import annotations

from confide.core.personal_data import NOT_PERSONAL, Table, reach

_N = NOT_PERSONAL

TABLES: dict[str, Table] = {
    # Ids, a format, digests and times only: the recipient's address is in the mail job (encrypted),
    # never here. Reached through the person's first visitor id (deleted with them).
    "subject_export_links": Table(
        {
            c: _N
            for c in (
                "id", "workspace_id", "subject_id", "visitor_ids", "searched_by", "fmt", "token_digest",
                "code_digest", "failed_codes", "created_by", "created_at", "expires_at", "used_at", "revoked_at",
            )
        },
        reach=reach("visitor", "subject_id"),
    ),
}
