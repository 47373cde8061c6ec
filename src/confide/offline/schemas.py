from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class OfflineRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: dict[str, Any] = Field(default_factory=dict)
    consents: dict[str, Any] = Field(default_factory=dict)
    message: Annotated[str, Field(min_length=1, max_length=4000)]
    department_id: str | None = None
    page_url: Annotated[str, Field(max_length=2000)] | None = None


class OfflineFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date_from: datetime | None = None
    date_to: datetime | None = None
    site_id: str | None = None
    department_id: str | None = None
    visitor: Annotated[str, Field(max_length=320)] | None = None
    state: Literal["open", "handled", "all"] = "open"
    page: Annotated[int, Field(ge=1, le=100_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=100)] = 25

    @field_validator("date_from", "date_to")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A date or time without a zone (a date picker's value) is UTC, not a server error; one that
        leaves the calendar once moved to UTC (9999-12-31T23:59-23:59) is refused."""
        if value is None:
            return None
        try:
            return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)
        except OverflowError:
            raise ValueError("the date is out of range") from None
