"""Personal-data registry entries of the tables of confide.visitors (see core/personal_data.py for the format)."""

from __future__ import annotations

from typing import Any

from confide.core.crypto import BlindIndex
from confide.core.personal_data import (
    CONSENT_BASIS,
    NOT_PERSONAL,
    Category,
    Export,
    Field,
    Out,
    Storage,
    Table,
    Terms,
    out,
    reach,
    sealed,
    visitor_data,
)
from confide.visitors import values

_N = NOT_PERSONAL


def _answers(row: dict[str, Any]) -> dict[str, Any]:
    """The custom pre-chat answers (one JSON object) as one output column each: ``answer: <key>``;
    the pre-ledger consent column (unused since the ledger, normally empty) dropped when empty."""
    answers = row.pop("answers", None) or {}
    if not row.get("consent_choices_before_ledger"):
        row.pop("consent_choices_before_ledger", None)
    if isinstance(answers, dict):
        row.update({f"answer: {key}": value for key, value in answers.items()})
    return row


def _terms(bidx: BlindIndex, workspace_id: str, row: Any) -> list[str]:
    return values.terms(bidx, workspace_id, row.get("name_enc"), row.get("phone_enc"))


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
        export=Export(
            "Visitor profile",
            10,
            {
                **out("id"),
                "site_id": Out("site"),
                "created_at": Out("first_seen_at"),
                **sealed("visitors", "name"),
                **sealed("visitors", "email"),
                **sealed("visitors", "phone"),
                **sealed("visitors", "fields", name="answers", json=True),
                "consents": Out("consent_choices_before_ledger"),
            },
            hook=_answers,
        ),
        # Rectification (ADR 0032): corrected as the pre-chat form checks them; the e-mail's blind
        # index and the name's and phone's terms (visitor_terms) rebuilt.
        rectify={
            "name": Field("name_enc", values.clean),
            "email": Field("email_enc", values.clean, index=("email_bidx", BlindIndex.email)),
            "phone": Field("phone_enc", values.clean),
            # a custom pre-chat answer ("answer:<key>"), checked by the site's form field
            "answer": Field("fields_enc", values.answer_text, json=True, form=("site_id", values.form_value)),
        },
        terms=Terms("visitor_terms", "visitor_id", _terms),
    ),
    "visitor_terms": Table(
        {
            "visitor_id": _N,
            "term": visitor_data(Category.PSEUDONYMOUS, Storage.BLIND_INDEX, exported=False),
        },
        reach=reach("visitor", "visitor_id"),
    ),
}
