"""The one source of time. Tests move it with ``set_now``/``advance`` instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
