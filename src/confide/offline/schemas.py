from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from confide.core import clock


class OfflineRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: dict[str, Any] = Field(default_factory=dict)
    consents: dict[str, Any] = Field(default_factory=dict)
    message: Annotated[str, Field(min_length=1, max_length=4000)]
    department_id: str | None = None
    page_url: Annotated[str, Field(max_length=2000)] | None = None


class OfflineFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date_from: clock.UTCInput | None = None
    date_to: clock.UTCInput | None = None
    site_id: str | None = None
    department_id: str | None = None
    visitor: Annotated[str, Field(max_length=320)] | None = None
    state: Literal["open", "handled", "all"] = "open"
    page: Annotated[int, Field(ge=1, le=100_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=100)] = 25
