"""The one source of time. Tests move it with ``set_now``/``advance`` instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator

_offset = timedelta(0)
_frozen: datetime | None = None


def now() -> datetime:
    """Aware UTC now (moved by tests)."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _offset


def advance(delta: timedelta) -> None:
    global _offset, _frozen
    if _frozen is not None:
        _frozen += delta
    else:
        _offset += delta


def freeze(at: datetime | None = None) -> None:
    global _frozen
    _frozen = at or now()


def reset() -> None:
    global _offset, _frozen
    _offset = timedelta(0)
    _frozen = None


def iso(value: datetime | None) -> str | None:
    """The wire format of a time: ISO 8601 in UTC with a ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def to_utc(value: datetime) -> datetime:
    """An input time in UTC: one without a zone (a date picker's value) is taken as UTC; one that
    leaves the calendar once moved to UTC (9999-12-31T23:59-23:59) is refused (ValueError)."""
    try:
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)
    except OverflowError:
        raise ValueError("the date is out of range") from None


# A time given by a client (filters): always aware UTC after validation, never a server error.
UTCInput = Annotated[datetime, AfterValidator(to_utc)]
