from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from confide.core import clock
from confide.verified.schemas import IdentityClaim

MAX_TEXT = 4000


class StartConversationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: dict[str, Any] = Field(default_factory=dict)
    consents: dict[str, Any] = Field(default_factory=dict)
    department_id: str | None = None
    page_url: Annotated[str, Field(max_length=2000)] | None = None
    identity: IdentityClaim | None = None  # a logged-in visitor, signed by the site (ADR 0022)


class StoredChatFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date_from: clock.UTCInput | None = None
    date_to: clock.UTCInput | None = None
    site_id: str | None = None
    department_id: str | None = None
    operator_id: str | None = None
    visitor: Annotated[str, Field(max_length=320)] | None = None  # name words or an e-mail
    text: Annotated[str, Field(max_length=500)] | None = None  # words in the messages
    rating: Annotated[int, Field(ge=1, le=5)] | None = None
    status: Literal["queued", "active", "closed"] | None = None
    page: Annotated[int, Field(ge=1, le=100_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=100)] = 25


@dataclass(frozen=True, slots=True)
class Draft:
    """A message on its way to the store (visitor, operator or system)."""

    conversation_id: str
    sender: str  # visitor | operator | system
    sender_id: str
    sender_name: str | None
    client_id: str
    text: str
