"""What an administrator submits: the login limits of one role or one operator."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from confide.login_limits.rules import Rules, Window, check_timezone, parse_range

MAX_RANGES = 50
MAX_WINDOWS = 20


class WindowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: Annotated[list[str], Field(max_length=7)]
    start: Annotated[str, Field(max_length=10)]
    end: Annotated[str, Field(max_length=10)]
    overnight: bool = False

    @model_validator(mode="after")
    def _check(self) -> WindowIn:
        Window.build(self.days, self.start, self.end, self.overnight)  # ValueError with the reason
        return self

    def window(self) -> Window:
        return Window.build(self.days, self.start, self.end, self.overnight)


class LoginLimitsIn(BaseModel):
    """Empty ``ranges``: any address; empty ``windows``: any time; both empty: no limits."""

    model_config = ConfigDict(extra="forbid")
    ranges: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=MAX_RANGES)] = Field(
        default_factory=list
    )
    windows: Annotated[list[WindowIn], Field(max_length=MAX_WINDOWS)] = Field(default_factory=list)
    timezone: Annotated[str, Field(max_length=64)] = "UTC"

    @field_validator("ranges")
    @classmethod
    def _ranges(cls, value: list[str]) -> list[str]:
        canonical = [str(parse_range(entry)) for entry in value if entry.strip()]
        return list(dict.fromkeys(canonical))

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value.strip())

    def rules(self) -> Rules:
        return Rules(tuple(parse_range(r) for r in self.ranges), tuple(w.window() for w in self.windows), self.timezone)

    def stored(self) -> dict[str, Any]:
        """The row's columns (canonical forms)."""
        rules = self.rules()
        return {
            "ranges": [str(r) for r in rules.ranges],
            "windows": [w.as_dict() for w in rules.windows],
            "timezone": rules.timezone,
        }
