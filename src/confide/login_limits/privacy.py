"""Personal-data registry entries of the tables of confide.login_limits (see core/personal_data.py for the format)."""

from __future__ import annotations

from confide.core.personal_data import (
    NOT_PERSONAL,
    Table,
    reach,
)

_N = NOT_PERSONAL

TABLES: dict[str, Table] = {
    # Login limits (ADR 0016): address ranges and time windows of a role or an operator, set by
    # administrators; the ranges are networks of the business, not any person's address.
    "login_limits": Table(
        {
            c: _N
            for c in (
                "id",
                "workspace_id",
                "subject_type",
                "subject_id",
                "ranges",
                "windows",
                "timezone",
                "updated_at",
                "updated_by",
            )
        },
        reach=reach("operator", "subject_id", when={"subject_type": "operator"}),
    ),
}
