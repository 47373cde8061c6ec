"""Personal-data registry entries of the tables of confide.offline (see core/personal_data.py for the format)."""

from __future__ import annotations

from confide.core.personal_data import (
    NOT_PERSONAL,
    Category,
    Table,
    reach,
    visitor_data,
)

_N = NOT_PERSONAL

TABLES: dict[str, Table] = {
    "offline_requests": Table(
        {
            "id": _N,
            "workspace_id": _N,
            "site_id": _N,
            "department_id": _N,
            "visitor_id": _N,
            "created_at": _N,
            "handled_at": _N,
            "handled_by": _N,
            "message_enc": visitor_data(Category.CONTENT, retention="offline_request"),
            "page_url_enc": visitor_data(Category.BEHAVIOUR, retention="offline_request"),
        },
        reach=reach("visitor", "visitor_id"),
    ),
}
