from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TEXT = 4000


class StartConversationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: dict[str, Any] = Field(default_factory=dict)
    consents: dict[str, Any] = Field(default_factory=dict)
    department_id: str | None = None
    page_url: Annotated[str, Field(max_length=2000)] | None = None


class StoredChatFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date_from: datetime | None = None
    date_to: datetime | None = None
    site_id: str | None = None
    department_id: str | None = None
    operator_id: str | None = None
    visitor: Annotated[str, Field(max_length=320)] | None = None  # name words or an e-mail
    text: Annotated[str, Field(max_length=500)] | None = None  # words in the messages
    rating: Annotated[int, Field(ge=1, le=5)] | None = None
    status: Literal["queued", "active", "closed"] | None = None
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


@dataclass(frozen=True, slots=True)
class Draft:
    """A message on its way to the store (visitor, operator or system)."""

    conversation_id: str
    sender: str  # visitor | operator | system
    sender_id: str
    sender_name: str | None
    client_id: str
    text: str
