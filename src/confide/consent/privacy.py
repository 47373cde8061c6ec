"""Personal-data registry entries of the tables of confide.consent (format: core/personal_data.py)."""

from __future__ import annotations

from confide.core.personal_data import (
    CONSENT_BASIS,
    NOT_PERSONAL,
    Category,
    Export,
    Out,
    Storage,
    Table,
    out,
    reach,
    visitor_data,
)

_N = NOT_PERSONAL

TABLES: dict[str, Table] = {
    # consent_purposes and consent_notices: a workspace's configuration (purposes and the texts
    # shown), no subject's data.
    "consent_purposes": Table(
        {
            c: _N
            for c in (
                "id", "workspace_id", "key", "name", "lawful_basis", "description", "retention_class",
                "recipients", "enabled", "required", "latest_version", "material_version", "created_at",
                "updated_at",
            )
        },
    ),
    "consent_notices": Table(
        {
            c: _N
            for c in (
                "id", "workspace_id", "purpose_id", "version", "language", "text", "sha256", "material",
                "created_at", "created_by",
            )
        },
    ),
    # The ledger: the subject id is the visitor's id (the subject id of its data key).
    "consent_records": Table(
        {
            **{
                c: _N
                for c in (
                    "seq", "id", "workspace_id", "subject_id", "notice_id", "notice_version", "notice_hash",
                    "site_id", "conversation_id", "message_id", "actor_id",
                )
            },
            **{
                c: visitor_data(
                    Category.CONSENT,
                    Storage.PLAIN,
                    retention="consent",
                    purpose="record consent choices",
                    basis=CONSENT_BASIS,
                    note="purpose keys, booleans, sources and times only: proof of consent, read by may() "
                    "on every processing; erased with the subject (consent.removal.erase_subject)",
                )
                for c in ("purpose", "granted", "source", "at")
            },
        },
        reach=reach("visitor", "subject_id"),
        export=Export(
            "Consent records",
            70,
            {
                **out("id", "purpose", "granted", "source", "at", "notice_version"),
                "site_id": Out("site"),
                "conversation_id": Out("conversation"),
            },
        ),
    ),
    # A flag row that lives inside one erasing transaction (consent.removal.erase_subject).
    "consent_erasure": Table({"subject_id": _N}, reach=reach("visitor", "subject_id")),
}
