"""A site's redaction policy as an administrator submits it (validated as a whole)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from confide.redaction.detectors import NAME_MAX_LEN, PATTERN_MAX_LEN, PATTERNS_MAX, PatternError, check_pattern

PatternName = Annotated[str, Field(min_length=1, max_length=NAME_MAX_LEN, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")]


class PatternIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: PatternName
    regex: Annotated[str, Field(min_length=1, max_length=PATTERN_MAX_LEN)]
    enabled: bool = True

    @field_validator("regex")
    @classmethod
    def _valid(cls, value: str) -> str:
        try:
            check_pattern(value)
        except PatternError as exc:
            raise ValueError(str(exc)) from None
        return value


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cards: bool = False
    ibans: bool = False
    keep_originals: bool = False
    patterns: list[PatternIn] = Field(default_factory=list, max_length=PATTERNS_MAX)

    @model_validator(mode="after")
    def _unique_names(self) -> PolicyIn:
        names = [p.name.lower() for p in self.patterns]
        if len(names) != len(set(names)):
            raise ValueError("two custom patterns have the same name")
        return self
