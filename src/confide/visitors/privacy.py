"""Personal-data registry entries of the tables of confide.visitors (see core/personal_data.py for the format)."""

from __future__ import annotations

from confide.core.personal_data import (
    CONSENT_BASIS,
    NOT_PERSONAL,
    Category,
    Storage,
    Table,
    reach,
    visitor_data,
)

_N = NOT_PERSONAL

TABLES: dict[str, Table] = {
    "visitors": Table(
        {
            "id": _N,
            "workspace_id": _N,
            "site_id": _N,
            "created_at": _N,
            "name_enc": visitor_data(Category.IDENTITY),
            "email_enc": visitor_data(Category.CONTACT),
            "email_bidx": visitor_data(Category.PSEUDONYMOUS, Storage.BLIND_INDEX, exported=False),
            "phone_enc": visitor_data(Category.CONTACT),
            "fields_enc": visitor_data(Category.PROFILE),
            "consents": visitor_data(
                Category.CONSENT,
                Storage.PLAIN,
                purpose="record consent choices",
                basis=CONSENT_BASIS,
                note="purpose keys, booleans and notice versions only",
            ),
        },
        reach=reach("visitor", "id"),
    ),
    "visitor_terms": Table(
        {
            "visitor_id": _N,
            "term": visitor_data(Category.PSEUDONYMOUS, Storage.BLIND_INDEX, exported=False),
        },
        reach=reach("visitor", "visitor_id"),
    ),
}
