"""How a prospect's contact data is checked on entry and indexed: the one copy, used by
``prospects.service`` and by the registry's rectification declarations (``prospects/privacy.py``,
ADR 0032)."""

from __future__ import annotations

import re

from confide.core.crypto import BlindIndex
from confide.core.errors import Invalid
from confide.visitors import values as visitor_values

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX = {"name": 200, "company": 200, "email": 320, "phone": 40, "notes": 4000}  # as prospects.schemas


def clean_one(key: str, text: str) -> str:
    """A trimmed, non-empty contact value: no control characters; e-mail and phone checked."""
    if (CONTROL_BUT_LINES if key == "notes" else CONTROL).search(text):
        raise Invalid(f"{key}: control characters are not allowed")
    if key == "email":
        return visitor_values.clean_email(text)
    if key == "phone":
        return visitor_values.check_phone(text)
    return text


def clean(field: str, value: object) -> str:
    """A corrected name, e-mail or phone of a prospect (Art. 16), checked as on entry."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{field} is required")
    text = value.strip()
    if len(text) > MAX.get(field, 200):
        raise Invalid(f"{field} is too long")
    return clean_one(field, text)


def terms(
    bidx: BlindIndex, workspace_id: str, name: str | None, company: str | None, phone: str | None
) -> list[str]:
    """The prospect's ``prospect_terms``: the words of its name and company (kind "prospect") and
    its phone's term, the very term a visitor's ``visitor_terms`` hold for the same number
    (``visitors.values.phone_term``, kind "phone"), so that Find a person by phone finds
    prospects too."""
    text = " ".join(t for t in (name, company) if t)
    found = list(bidx.text_terms(workspace_id, "prospect", text)) if text else []
    term = visitor_values.phone_term(bidx, workspace_id, phone) if phone else None
    if term:
        found.append(term)
    return list(dict.fromkeys(found))
