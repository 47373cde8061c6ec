"""What crosses the boundary for data-subject requests: the requester's form (widget, public page),
the staff entry, the actions and the list filters. Every filter is non-personal (ids, codes, dates)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from confide.core import clock

TYPES = ("access", "portability", "erasure", "rectification", "restriction", "objection")
STATES = ("received", "verifying", "in_progress", "done", "refused")
OPEN_STATES = ("received", "verifying", "in_progress")
STAFF_CHANNELS = ("email", "phone", "letter", "other")
CHANNELS = ("widget", "web", *STAFF_CHANNELS)
MAX_DETAILS = 4000
MAX_NOTE = 2000

RequestType = Literal["access", "portability", "erasure", "rectification", "restriction", "objection"]
State = Literal["received", "verifying", "in_progress", "done", "refused"]
StaffChannel = Literal["email", "phone", "letter", "other"]
Channel = Literal["widget", "web", "email", "phone", "letter", "other"]

_EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[^@\s<>\"',;]{1,255}\.[^@\s<>\"',;.]{2,63}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.match(value) or ".." in value:
        raise ValueError("enter a valid e-mail address")
    return value


def check_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value.strip()


def check_required(value: str) -> str:
    value = check_text(value)
    if not value:
        raise ValueError("is required")
    return value


class _Requester(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: RequestType
    email: Annotated[str, Field(min_length=3, max_length=320)]
    details: Annotated[str, Field(max_length=MAX_DETAILS)] = ""

    _email = field_validator("email")(check_email)
    _details = field_validator("details")(check_text)


class RequestIn(_Requester):
    """A visitor's request: the widget's (with its visitor token, in the body) or the public page's."""

    token: Annotated[str, Field(max_length=4096)] | None = None


class StaffRequestIn(_Requester):
    """A request entered by staff: received by e-mail, phone, letter or otherwise."""

    channel: StaffChannel
    site_id: Annotated[str, Field(max_length=64)] | None = None
    received_at: clock.UTCInput | None = None  # when it reached the business (default: now); the clock runs from it


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: Annotated[str, Field(min_length=1, max_length=20)]
    token: Annotated[str, Field(max_length=4096)] | None = None


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=MAX_NOTE)]

    _reason = field_validator("reason")(check_required)


class ExtendIn(ReasonIn):
    months: Annotated[int, Field(ge=1, le=2)] = 1


class CompleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Annotated[str, Field(min_length=1, max_length=MAX_NOTE)]
    export_id: Annotated[str, Field(max_length=32)] | None = None
    certificate_id: Annotated[str, Field(max_length=32)] | None = None

    _outcome = field_validator("outcome")(check_required)


class RequestFilters(BaseModel):
    """Non-personal filters only: they may travel in a query string."""

    model_config = ConfigDict(extra="forbid")
    type: RequestType | None = None
    state: State | Literal["open"] | None = None
    channel: Channel | None = None
    overdue: bool = False
    due_before: clock.UTCInput | None = None
    page: Annotated[int, Field(ge=1, le=100_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=100)] = 25
