"""The input checks shared by the actions on one person (erasure ADR 0028, restriction ADR 0031):
a person is 1 to N visitor ids, and an optional data-subject request id. Pure: no database."""

from __future__ import annotations

import re

from confide.core.errors import Invalid

MAX_SUBJECTS = 100  # visitor ids per person (a person rarely has more; bulk erasure batches)
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:/+\-]{1,64}$")


def visitor_ids_of(values: object, limit: int = MAX_SUBJECTS) -> list[str]:
    """1 to ``limit`` visitor ids, de-duplicated and sorted; ``Invalid`` otherwise."""
    if not isinstance(values, list | tuple) or not values:
        raise Invalid("give at least one visitor id")
    if not all(isinstance(v, str) for v in values):
        raise Invalid("visitor ids are strings")
    ids = sorted({v.strip() for v in values if v.strip()})
    if not ids or len(ids) > limit or any(len(v) > 64 or not ID_PATTERN.match(v) for v in ids):
        raise Invalid(f"give 1 to {limit} visitor ids")
    return ids


def request_id_of(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise Invalid("a request id is letters, digits and . _ : / + - (at most 64)")
    return value
