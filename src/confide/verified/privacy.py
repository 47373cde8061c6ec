"""Personal-data registry entries of the tables of confide.verified (format: core/personal_data.py)."""

from __future__ import annotations

from confide.core.personal_data import (
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
    # Not personal: a site's signing secret (encrypted under a key of its own row; rotation deletes
    # the row and destroys that key).
    "identity_secrets": Table(
        {c: _N for c in ("id", "workspace_id", "site_id", "secret_enc", "created_at", "created_by")}
    ),
    "verified_identities": Table(
        {
            "id": _N,
            "workspace_id": _N,
            "site_id": _N,
            "subject_id": _N,
            "external_id_bidx": visitor_data(
                Category.PSEUDONYMOUS,
                Storage.BLIND_INDEX,
                exported=False,
                purpose="recognise a visitor the site vouched for across visits and devices",
                note="keyed HMAC of the site's user id; the id itself is never stored",
            ),
            "created_at": _N,
            "last_verified_at": visitor_data(Category.BEHAVIOUR, Storage.PLAIN, note="when the site last vouched"),
        },
        reach=reach("visitor", "subject_id"),  # the visitor's id (cascade on delete)
        export=Export(
            "Verified identity",
            80,
            {**out("id"), "site_id": Out("site"), **out("created_at", "last_verified_at")},
        ),
    ),
}
