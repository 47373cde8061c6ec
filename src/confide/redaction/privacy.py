"""Personal-data registry entries of the tables of confide.redaction (format: core/personal_data.py)."""

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
    # Per-site policy set by administrators: switches and the business's own patterns, no person's data.
    "redaction_policies": Table(
        {
            c: _N
            for c in (
                "site_id", "workspace_id", "cards", "ibans", "keep_originals", "patterns", "version", "updated_at",
                "updated_by",
            )
        },
    ),
    # What was masked at ingest, kept only where the site asked for it; text_enc under the visitor's key.
    "redacted_originals": Table(
        {
            "id": _N,
            "workspace_id": _N,
            "site_id": _N,
            "subject_id": _N,
            "conversation_id": _N,
            "offline_request_id": _N,
            "ref_kind": _N,
            "ref_id": _N,
            "kinds": _N,
            "created_at": _N,
            "text_enc": visitor_data(
                Category.CONTENT,
                purpose="keep what was masked at ingest, for authorised review (chats.view_redacted)",
                note="card numbers, IBANs or matches of the site's patterns as the visitor typed them",
            ),
        },
        reach=reach("visitor", "subject_id"),
        export=Export(
            "Masked originals (what was masked at ingest)",
            90,
            {
                **out("id"),
                "conversation_id": Out("conversation"),
                "offline_request_id": Out("offline_request"),
                "ref_kind": Out("masked_in"),
                "kinds": Out("kinds"),
                "created_at": Out("created_at"),
                **sealed("redacted_originals", "text", key="subject_id"),
            },
        ),
    ),
}
