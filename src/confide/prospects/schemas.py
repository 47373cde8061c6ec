"""What crosses the boundary for prospects: creation, edits, filters, per-site settings."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from confide.core import clock

Status = Literal["new", "contacted", "qualified", "won", "lost"]
Source = Literal["chat", "offline_request", "manual", "automatic"]
Id = Annotated[str, Field(min_length=1, max_length=64)]
# Up to a thousand billion, in hundredths: stored exactly as an integer of minor units.
Value = Annotated[Decimal, Field(ge=0, le=Decimal("999999999999.99"), max_digits=14, decimal_places=2)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Short = Annotated[str, Field(max_length=200)]
Notes = Annotated[str, Field(max_length=4000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProspectIn(Strict):
    """A prospect from a chat (``conversation_id``), from an offline request (``offline_request_id``)
    or entered by hand (``site_id``, optionally ``department_id``). Contact fields given here replace
    what the visitor told us."""

    conversation_id: Id | None = None
    offline_request_id: Id | None = None
    site_id: Id | None = None
    department_id: Id | None = None
    name: Short | None = None
    email: Annotated[str, Field(max_length=320)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    company: Short | None = None
    status: Status = "new"
    value: Value | None = None
    currency: Currency | None = None
    owner_id: Id | None = None
    notes: Notes | None = None


class ProspectPatch(Strict):
    """An edit: only the fields given change. ``version`` is the version the editor saw: an edit of
    a prospect changed meanwhile is refused (409) instead of silently overwriting the other edit."""

    version: Annotated[int, Field(ge=1, le=2**31)]
    status: Status | None = None
    value: Value | None = None
    currency: Currency | None = None
    owner_id: Id | None = None
    notes: Notes | None = None
    name: Short | None = None
    email: Annotated[str, Field(max_length=320)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    company: Short | None = None


class ProspectQuery(Strict):
    """The list's filters without personal values (these may travel in a URL)."""

    date_from: clock.UTCInput | None = None
    date_to: clock.UTCInput | None = None
    site_id: Id | None = None
    department_id: Id | None = None
    status: Status | None = None
    source: Source | None = None
    owner_id: Id | None = None
    page: Annotated[int, Field(ge=1, le=100_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=100)] = 25


class ProspectFilters(ProspectQuery):
    """With ``text``: an e-mail address (exact, by its blind index) or words of the name or company.
    Sent in a POST body (API) or sealed (dashboard, ADR 7), never in a readable URL."""

    text: Annotated[str, Field(max_length=320)] | None = None


class ObjectionIn(Strict):
    email: Annotated[str, Field(min_length=3, max_length=320)]


class ProspectSettingsIn(Strict):
    auto_create: bool = False
    basis: Literal["consent", "legitimate_interest"] = "consent"
    interest_note: Annotated[str, Field(max_length=2000)] = ""
    currency: Currency = "EUR"
