from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FieldKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
STANDARD_FIELDS = ("name", "email", "phone")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrechatField(Strict):
    key: FieldKey
    label: Annotated[str, Field(min_length=1, max_length=200)]
    type: Literal["text", "email", "tel", "textarea", "select", "checkbox"] = "text"
    required: bool = False
    options: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _check(self) -> PrechatField:
        if self.type == "select" and not self.options:
            raise ValueError("a select field needs options")
        if self.key == "email" and self.type != "email":
            raise ValueError("the email field must have type email")
        return self


class Purpose(Strict):
    key: FieldKey
    label: Annotated[str, Field(min_length=1, max_length=300)]
    version: Annotated[str, Field(min_length=1, max_length=40)] = "1"


def _check_hours(value: dict[str, list[list[str]]] | None) -> dict[str, list[list[str]]] | None:
    if value is None:
        return None
    for day, spans in value.items():
        if day not in DAYS:
            raise ValueError(f"unknown day {day!r}; use {', '.join(DAYS)}")
        for span in spans:
            if len(span) != 2 or not all(_TIME.match(t) for t in span) or span[0] >= span[1]:
                raise ValueError(f'bad opening span {span!r} on {day}: use ["HH:MM", "HH:MM"], start before end')
    return value


def _check_origins(value: list[str]) -> list[str]:
    out = []
    for origin in value:
        origin = origin.strip().rstrip("/")
        if not re.match(r"^https?://[A-Za-z0-9.\-\[\]:]+$", origin):
            raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path)")
        out.append(origin.lower())
    return out


def _check_url(value: str) -> str:
    if value and not re.match(r"^https?://", value):
        raise ValueError("the privacy policy URL must start with http:// or https://")
    return value


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


def _check_unique_keys(fields: list[PrechatField] | None, purposes: list[Purpose] | None) -> None:
    keys = [f.key for f in fields or []]
    if len(keys) != len(set(keys)):
        raise ValueError("pre-chat field keys must be unique")
    if len({p.key for p in purposes or []}) != len(purposes or []):
        raise ValueError("purpose keys must be unique")


class SiteIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    allowed_origins: list[str] = Field(default_factory=list, max_length=50)
    prechat_fields: list[PrechatField] = Field(default_factory=list, max_length=30)
    purposes: list[Purpose] = Field(default_factory=list, max_length=10)
    privacy_policy_url: Annotated[str, Field(max_length=2000)] = ""
    greeting: Annotated[str, Field(max_length=500)] = ""
    color: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")] = "#2563eb"
    timezone: str = "UTC"
    business_hours: dict[str, list[list[str]]] | None = None

    _origins = field_validator("allowed_origins")(_check_origins)
    _hours = field_validator("business_hours")(_check_hours)

    @field_validator("privacy_policy_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _check_timezone(value)

    @model_validator(mode="after")
    def _unique_keys(self) -> SiteIn:
        _check_unique_keys(self.prechat_fields, self.purposes)
        return self


class SitePatch(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    allowed_origins: list[str] | None = Field(default=None, max_length=50)
    prechat_fields: list[PrechatField] | None = Field(default=None, max_length=30)
    purposes: list[Purpose] | None = Field(default=None, max_length=10)
    privacy_policy_url: Annotated[str, Field(max_length=2000)] | None = None
    greeting: Annotated[str, Field(max_length=500)] | None = None
    color: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")] | None = None
    timezone: str | None = None
    business_hours: dict[str, list[list[str]]] | None = None
    always_open: bool | None = None  # true clears business_hours

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_origins(value)

    _hours = field_validator("business_hours")(_check_hours)

    # The same rules as for a new site (a change must not slip past them).
    @field_validator("privacy_policy_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _check_timezone(value)

    @model_validator(mode="after")
    def _unique_keys(self) -> SitePatch:
        _check_unique_keys(self.prechat_fields, self.purposes)
        return self


Strategy = Literal["round_robin", "least_busy", "manual"]


class DepartmentIn(Strict):
    site_id: str
    name: Annotated[str, Field(min_length=1, max_length=200)]
    strategy: Strategy = "round_robin"
    offer_timeout_s: Annotated[int, Field(ge=5, le=3600)] = 30


class DepartmentPatch(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    strategy: Strategy | None = None
    offer_timeout_s: Annotated[int, Field(ge=5, le=3600)] | None = None


class CannedReplyIn(Strict):
    shortcut: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,40}$")]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    text: Annotated[str, Field(min_length=1, max_length=4000)]
    department_id: str | None = None
