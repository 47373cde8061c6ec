"""Personal-data registry entries of the tables of confide.offline (see core/personal_data.py for the format)."""

from __future__ import annotations

from confide.core.personal_data import (
    NOT_PERSONAL,
    Category,
    Export,
    Out,
    Table,
    out,
    reach,
    sealed,
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
        export=Export(
            "Offline requests",
            40,
            {
                **out("id"),
                "site_id": Out("site"),
                "created_at": Out("sent_at"),
                "handled_at": Out("handled_at"),
                **sealed("offline_requests", "message"),
                **sealed("offline_requests", "page_url"),
            },
        ),
    ),
}
