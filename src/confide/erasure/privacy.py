"""Personal-data registry entries of the tables of confide.erasure (format: core/personal_data.py).

None holds personal data: a certificate has ids, codes and counts; a tombstone a keyed hash that
matches only a value someone already holds (and is not the value's ordinary blind index, so it
leads to no other row); the statistics are aggregates per day, site, department and operator.
"""

from __future__ import annotations

from confide.core.personal_data import Table, not_personal

TABLES: dict[str, Table] = {
    "erasure_certificates": Table(
        not_personal(
            "id", "workspace_id", "kind", "state", "request_id", "reason", "actor_type", "actor_id", "subjects",
            "counts", "keys_destroyed", "filter", "created_at", "finished_at",
        )
    ),
    "erasure_tombstones": Table(not_personal("workspace_id", "digest", "kind", "certificate_id", "created_at")),
    "chat_stats": Table(
        not_personal(
            "workspace_id", "day", "site_id", "department_id", "operator_key", "chats", "rated", "rating_sum",
            "rating_1", "rating_2", "rating_3", "rating_4", "rating_5", "first_response_s_sum",
            "first_response_count", "duration_s_sum", "duration_count",
        )
    ),
}
