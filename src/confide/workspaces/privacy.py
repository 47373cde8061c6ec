"""Personal-data registry entries of the tables of confide.workspaces (see core/personal_data.py for the format)."""

from __future__ import annotations

from confide.core.personal_data import (
    NOT_PERSONAL,
    Table,
)

_N = NOT_PERSONAL

TABLES: dict[str, Table] = {
    "workspaces": Table({"id": _N, "name": _N, "created_at": _N}),
    "sites": Table(
        {
            c: _N
            for c in (
                "id",
                "workspace_id",
                "name",
                "site_key",
                "allowed_origins",
                "prechat_fields",
                "purposes",
                "privacy_policy_url",
                "greeting",
                "color",
                "timezone",
                "business_hours",
                "created_at",
            )
        },
    ),
    "departments": Table(
        {
            c: _N
            for c in (
                "id",
                "workspace_id",
                "site_id",
                "name",
                "strategy",
                "offer_timeout_s",
                "rr_last_operator_id",
                "created_at",
            )
        },
    ),
    "canned_replies": Table(
        {c: _N for c in ("id", "workspace_id", "department_id", "shortcut", "title", "text", "created_at")}
    ),
    # Origins of pages that embedded a site's widget without being allowed: a configuration hint for
    # the site's administrators; only scheme://host[:port] is kept, never a visitor's URL or address.
    "refused_origins": Table({c: _N for c in ("site_id", "origin", "count", "first_seen", "last_seen")}),
}
