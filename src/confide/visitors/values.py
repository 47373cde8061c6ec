"""How a visitor's details are checked on entry and turned into blind-index terms: the one copy,
used by ``visitors.service`` when a visitor writes them and by the registry's rectification
declarations (``visitors/privacy.py``) when staff correct them (Art. 16, ADR 0032)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from email_validator import EmailNotValidError, validate_email

from confide.core.crypto import BlindIndex
from confide.core.errors import Invalid

PHONE = re.compile(r"^\+?[0-9 ()./-]{3,40}$")
_NOT_DIGIT = re.compile(r"[^0-9]")
DEFAULT_MAX = 500  # the longest answer a pre-chat text field takes (a textarea: 4000)


def clean_email(value: str, message: str = "not a valid e-mail address") -> str:
    """The address normalised as stored; ``Invalid(message)`` when it is not one."""
    try:
        return validate_email(value, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError:
        raise Invalid(message) from None


def check_phone(value: str, message: str = "not a valid phone number") -> str:
    if not PHONE.match(value):
        raise Invalid(message)
    return value


def clean_text(value: object, label: str, max_len: int = DEFAULT_MAX) -> str:
    """A trimmed, non-empty text of at most ``max_len`` characters."""
    if not isinstance(value, str):
        raise Invalid(f"{label}: must be text")
    value = value.strip()
    if not value:
        raise Invalid(f"{label} is required")
    if len(value) > max_len:
        raise Invalid(f"{label} is too long")
    return value


_MAX = {"textarea": 4000}
CORE_FIELDS = ("name", "email", "phone")  # held in columns of their own; the rest in fields_enc


def clean_answer(spec: Mapping[str, Any], value: object) -> Any:
    """One answer checked against its pre-chat form field ``spec``: a checkbox is true or false,
    text is trimmed and limited, an e-mail normalised, a phone matched, a choice among the
    options. ``None``: no answer (an empty text); ``Invalid`` otherwise, naming the field."""
    label = spec["label"]
    if spec["type"] == "checkbox":
        if value is not None and not isinstance(value, bool):
            raise Invalid(f"{label}: must be true or false")
        if spec.get("required") and value is not True:
            raise Invalid(f"{label} is required")
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        if spec.get("required"):
            raise Invalid(f"{label} is required")
        return None
    if not isinstance(value, str):
        raise Invalid(f"{label}: must be text")
    value = value.strip()
    if len(value) > _MAX.get(spec["type"], DEFAULT_MAX):
        raise Invalid(f"{label} is too long")
    if spec["type"] == "email":
        return clean_email(value, f"{label}: not a valid e-mail address")
    if spec["type"] == "tel":
        return check_phone(value, f"{label}: not a valid phone number")
    if spec["type"] == "select" and value not in spec.get("options", []):
        raise Invalid(f"{label}: choose one of the options")
    return value


def answer_text(field: str, value: object) -> str:
    """A corrected custom answer before the site's form checks it (``clean_answer``): text (a
    checkbox's "true" or "false") of at most 4000 characters."""
    if not isinstance(value, str):
        raise Invalid(f"{field}: must be text")
    if len(value) > _MAX["textarea"]:
        raise Invalid(f"{field} is too long")
    return value


def form_value(spec: Mapping[str, Any], value: str) -> Any:
    """A corrected answer as the form's field takes it (a checkbox's text as true or false)."""
    if spec["type"] == "checkbox":
        if value.strip().lower() not in ("true", "false"):
            raise Invalid(f"{spec['label']}: must be true or false")
        return clean_answer(spec, value.strip().lower() == "true")
    cleaned = clean_answer(spec, value)
    if cleaned is None:
        raise Invalid(f"{spec['label']} is required")
    return cleaned


def clean(field: str, value: object) -> str:
    """A corrected name, e-mail or phone, checked as the pre-chat form checks it."""
    text = clean_text(value, field)
    if field == "email":
        return clean_email(text, "email: not a valid e-mail address")
    if field == "phone":
        return check_phone(text, "phone: not a valid phone number")
    return text


def phone_term(bidx: BlindIndex, workspace_id: str, phone: str) -> str | None:
    """The blind-index term of a phone number (its digits only: "+44 20 7946 0958" and
    "+442079460958" are one number), kept with the name's words in ``visitor_terms`` so that a
    person can be found by phone (subjects.find) without the number in plain text."""
    digits = _NOT_DIGIT.sub("", phone)
    return bidx.term(workspace_id, "phone", digits) if len(digits) >= 3 else None


def terms(bidx: BlindIndex, workspace_id: str, name: str | None, phone: str | None) -> list[str]:
    """The visitor's ``visitor_terms``: the words of the name and the phone's term."""
    found = list(bidx.text_terms(workspace_id, "name", name)) if name else []
    term = phone_term(bidx, workspace_id, phone) if phone else None
    if term:
        found.append(term)
    return list(dict.fromkeys(found))
