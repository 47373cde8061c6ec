"""Personal-data registry entries of the tables of confide.auth (see core/personal_data.py for the format)."""

from __future__ import annotations

from confide.core.personal_data import (
    NOT_PERSONAL,
    Table,
)

_N = NOT_PERSONAL

TABLES: dict[str, Table] = {
    "login_throttle": Table({c: _N for c in ("key", "failures", "last_failure_at", "blocked_until")}),
}
