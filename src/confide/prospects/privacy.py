"""Personal-data registry entries of the tables of confide.prospects (see core/personal_data.py for the format).

A prospect's contact data is encrypted under the key of ``prospects.subject_id``: the visitor's when
``visitor_id`` is set (reach below), else a data subject of its own (a prospect entered by hand: its
key is destroyed when it is deleted; there is no visitor row to reach it from, so it is found by
``subject_id`` in ``subject_keys`` until core knows a "prospect" subject root).
"""

from __future__ import annotations

from typing import Any

from confide.core.crypto import BlindIndex
from confide.core.personal_data import (
    NOT_PERSONAL,
    Category,
    Export,
    Field,
    Hop,
    Out,
    Reach,
    Storage,
    Table,
    Terms,
    not_personal,
    out,
    reach,
    sealed,
    visitor_data,
)
from confide.prospects import values

_N = NOT_PERSONAL
_PURPOSE = "follow up prospects (leads)"
_BASIS = "Art. 6(1)(a) consent to profiling, or 6(1)(f) documented legitimate interest (per site)"
_SEALED = ("name", "email", "phone", "company", "notes")


def _terms(bidx: BlindIndex, workspace_id: str, row: Any) -> list[str]:
    # ``row``: the row's values decrypted (rectification's ``plain``), by column.
    return values.terms(bidx, workspace_id, row.get("name_enc"), row.get("company_enc"), row.get("phone_enc"))


TABLES: dict[str, Table] = {
    "prospects": Table(
        {
            **not_personal(
                "id", "workspace_id", "site_id", "department_id", "subject_id", "visitor_id", "conversation_id",
                "offline_request_id", "source", "status", "value_minor", "currency", "owner_id", "version",
                "created_by", "created_at", "updated_at",
            ),
            "name_enc": visitor_data(Category.IDENTITY, retention="prospect", purpose=_PURPOSE, basis=_BASIS),
            "email_enc": visitor_data(Category.CONTACT, retention="prospect", purpose=_PURPOSE, basis=_BASIS),
            "email_bidx": visitor_data(Category.PSEUDONYMOUS, Storage.BLIND_INDEX, retention="prospect",
                                       purpose=_PURPOSE, basis=_BASIS, exported=False),
            "phone_enc": visitor_data(Category.CONTACT, retention="prospect", purpose=_PURPOSE, basis=_BASIS),
            "company_enc": visitor_data(Category.PROFILE, retention="prospect", purpose=_PURPOSE, basis=_BASIS),
            "notes_enc": visitor_data(Category.PROFILE, retention="prospect", purpose=_PURPOSE, basis=_BASIS),
        },
        reach=reach("visitor", "visitor_id"),
        # Encrypted under the key of subject_id (the visitor's, or the prospect's own).
        export=Export(
            "Prospects",
            60,
            {
                **out("id"),
                "site_id": Out("site"),
                "source": Out("source"),
                "status": Out("status"),
                "value_minor": Out("value_in_hundredths"),
                "currency": Out("currency"),
                "created_at": Out("created_at"),
                "updated_at": Out("updated_at"),
                **{c: o for f in _SEALED for c, o in sealed("prospects", f, key="subject_id").items()},
            },
        ),
        # Rectification (ADR 0032): checked as an operator's entry is; the blind index and the
        # terms (prospect_terms: the words of the name and company, the phone's term) rebuilt.
        rectify={
            "name": Field("name_enc", values.clean),
            "email": Field("email_enc", values.clean, index=("email_bidx", BlindIndex.email)),
            "phone": Field("phone_enc", values.clean),
        },
        terms=Terms("prospect_terms", "prospect_id", _terms),
    ),
    "prospect_terms": Table(
        {
            "prospect_id": _N,
            "term": visitor_data(Category.PSEUDONYMOUS, Storage.BLIND_INDEX, retention="prospect", purpose=_PURPOSE,
                                 basis=_BASIS, exported=False),
        },
        reach=reach("visitor", "prospect_id -> prospects.visitor_id"),
    ),
    "prospect_settings": Table(
        not_personal("site_id", "workspace_id", "auto_create", "basis", "interest_note", "currency", "updated_at",
                     "updated_by"),
    ),
    # The objection of whoever uses this e-mail address: reached from a visitor by the e-mail's blind index.
    "profiling_objections": Table(
        {
            **not_personal("id", "workspace_id", "created_at"),
            "email_bidx": visitor_data(
                Category.CONSENT,
                Storage.BLIND_INDEX,
                retention="objection",
                purpose="honour objections to profiling (Art. 21)",
                basis="Art. 6(1)(c) legal obligation: Art. 21(1) and (3)",
                exported=False,
                note="a keyed hash of the e-mail address only; kept while the objection stands",
            ),
        },
        reach=Reach("visitor", "id", via=(Hop("email_bidx", "visitors", key="email_bidx"),)),
        # Only a keyed hash: the person learns that their objection is recorded, and since when.
        export=Export("Objection to profiling", 65, out("id", "created_at")),
        # A corrected e-mail carries the objection with it (its blind index rebuilt, ADR 0032).
        rectify={"email": Field("", values.clean, index=("email_bidx", BlindIndex.email))},
    ),
}
