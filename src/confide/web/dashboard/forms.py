"""Reading dashboard forms, and the sentences shown when they do not validate.

``text`` reads one field safely (a file upload or a missing key is ""); ``messages`` turns a pydantic
``ValidationError`` into one sentence per problem, with the field's label; ``errors`` does the same
for any failure a form handler catches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from confide.core.errors import DomainError
from confide.web.dashboard.templating import humanize_key

MAX_ROWS = 40


class FormInvalid(ValueError):
    """Several messages about one form (ours and the schema's together)."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def text(form: FormData | Mapping[str, Any], key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def sentence(message: str) -> str:
    message = message.strip()
    if not message:
        return message
    message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


LABELS = {
    "name": "Name",
    "allowed_origins": "Allowed origins",
    "prechat_fields": "Pre-chat field",
    "purposes": "Consent purpose",
    "privacy_policy_url": "Privacy policy URL",
    "greeting": "Greeting",
    "color": "Colour",
    "timezone": "Time zone",
    "business_hours": "Opening hours",
    "key": "key",
    "label": "label",
    "type": "type",
    "options": "options",
    "version": "version",
    "required": "required",
    "site_id": "Site",
    "strategy": "Strategy",
    "offer_timeout_s": "Offer timeout",
    "email": "E-mail",
    "password": "Password",
    "role": "Role",
    "max_chats": "Max chats",
    "department_ids": "Departments",
    "shortcut": "Shortcut",
    "title": "Title",
    "text": "Text",
    "department_id": "Department",
    "date_from": "Date from",
    "date_to": "Date to",
    "operator_id": "Operator",
    "visitor": "Visitor",
    "rating": "Rating",
    "status": "Status",
    "state": "State",
    "page": "Page",
    "per_page": "Per page",
    # ---- activity
    "url": "Page",
    "basis": "Lawful basis",
    "justification": "Justification",
    "ip_mode": "IP address",
    "ua_mode": "Browser",
}
PATTERN_HINTS = {
    "key": "use lowercase letters, digits and _, starting with a letter",
    "color": "use a colour like #2563eb",
    "shortcut": "use lowercase letters, digits, - and _ (no spaces)",
}


def where(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    i = 0
    while i < len(loc):
        item = loc[i]
        if isinstance(item, str) and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            parts.append(f"{LABELS.get(item, item)} {int(loc[i + 1]) + 1}")
            i += 2
            continue
        if isinstance(item, str):
            parts.append(LABELS.get(item, humanize_key(item)))
        i += 1
    return " · ".join(parts)


def messages(exc: ValidationError) -> list[str]:
    out: list[str] = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        msg = str(err.get("msg", "is not valid"))
        kind = err.get("type", "")
        ctx = err.get("ctx") or {}
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if kind == "string_pattern_mismatch" and loc:
            msg = PATTERN_HINTS.get(str(loc[-1]), "has an invalid format")
        elif kind in ("int_parsing", "int_type"):
            msg = "enter a whole number"
        elif kind == "literal_error":
            msg = "choose one of the options"
        elif kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
            msg = "is required"
        elif kind == "string_too_short":
            msg = f"use at least {ctx.get('min_length')} characters"
        elif kind == "string_too_long":
            msg = f"use at most {ctx.get('max_length')} characters"
        elif kind == "greater_than_equal":
            msg = f"must be at least {ctx.get('ge')}"
        elif kind == "less_than_equal":
            msg = f"must be at most {ctx.get('le')}"
        elif kind == "too_long":
            msg = f"at most {ctx.get('max_length')} entries"
        else:
            msg = msg[:1].lower() + msg[1:]
        place = where(loc)
        line = f"{place}: {msg}" if place else msg[:1].upper() + msg[1:]
        out.append(line if line.endswith(".") else line + ".")
    return out


def errors(exc: Exception) -> list[str]:
    if isinstance(exc, FormInvalid):
        return exc.messages
    if isinstance(exc, ValidationError):
        return messages(exc)
    if isinstance(exc, DomainError):
        return [sentence(exc.message)]
    return [sentence(str(exc))]

def rows(
    form: FormData,
    prefix: str,
    names: tuple[str, ...],
    *,
    flags: tuple[str, ...] = (),
    identity: tuple[str, ...] = ("key", "label"),
) -> list[dict[str, Any]]:
    """Indexed rows (``pf-0-key`` …) in index order; removed rows and rows without ``identity``
    (a new row left empty) are left out. ``flags`` are checkboxes."""
    try:
        count = min(MAX_ROWS, max(0, int(text(form, f"{prefix}-count") or 0)))
    except ValueError:
        count = 0
    out = []
    for i in range(count):
        row: dict[str, Any] = {n: text(form, f"{prefix}-{i}-{n}").strip() for n in names}
        if text(form, f"{prefix}-{i}-remove") or not any(row[n] for n in identity):
            continue
        row.update({flag: bool(text(form, f"{prefix}-{i}-{flag}")) for flag in flags})
        out.append(row)
    return out
