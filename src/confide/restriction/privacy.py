"""Personal-data registry entries of the tables of confide.restriction (see core/personal_data.py).

A restriction row holds ids, a reason *code*, a request id and times: no personal value. It
reaches its visitor directly (``visitor_id``), so erasure's generic walk deletes the rows with the
person, and Find a person counts them. It is not an export section of its own: the fact "processing
restricted since ..." is what Art. 15 asks for, and the rows carry nothing else (ADR 0031).
"""

from __future__ import annotations

from confide.core.personal_data import Table, not_personal, reach

TABLES: dict[str, Table] = {
    "restrictions": Table(
        not_personal(
            "id", "workspace_id", "visitor_id", "reason", "request_id", "restricted_at", "restricted_by",
            "lifted_at", "lifted_by",
        ),
        reach=reach("visitor", "visitor_id"),
    ),
}
