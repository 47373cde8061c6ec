"""What the retention settings page and API accept (validated before any write)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from confide.retention.categories import MAX_DAYS, Category


class PolicyIn(BaseModel):
    """``scope``: "workspace" or a site id; ``days``: 0 keeps forever, None removes the override."""

    model_config = ConfigDict(extra="forbid")

    scope: str = Field(min_length=1, max_length=32)
    category: Category
    days: int | None = Field(default=None, ge=0, le=MAX_DAYS, strict=False)


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_type: Literal["visitor", "conversation"]
    target_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    reason: str = Field(min_length=3, max_length=500)

    @field_validator("reason")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if len(value) < 3:
            raise ValueError("give a reason (at least 3 characters)")
        return value


class LiftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500)

    @field_validator("reason")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if len(value) < 3:
            raise ValueError("give a reason (at least 3 characters)")
        return value
