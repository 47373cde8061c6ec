"""What crosses the boundary: the widget's reports, a site's settings, the back office's filters."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from confide.core import clock

MAX_URL = 2048
MAX_TITLE = 300
MAX_JUSTIFICATION = 2000
MAX_BODY = 8192  # bytes of one report (URL + referrer + title + token fit well below)

Basis = Literal["consent", "legitimate_interest"]
IpMode = Literal["none", "truncated", "full"]
UaMode = Literal["none", "family", "full"]


class PreviousPage(BaseModel):
    """The page the visitor is leaving: how long they stayed on it."""

    model_config = ConfigDict(extra="forbid")
    view_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    seconds: Annotated[StrictInt, Field(ge=0, le=86_400)]


class PageViewIn(BaseModel):
    """A page the visitor now sees (``previous``: the one they left, for SPA navigation)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["view"]
    token: Annotated[StrictStr, Field(min_length=1, max_length=2048)]
    url: Annotated[StrictStr, Field(min_length=1, max_length=MAX_URL)]
    title: Annotated[StrictStr, Field(max_length=MAX_TITLE)] = ""
    referrer: Annotated[StrictStr, Field(max_length=MAX_URL)] = ""
    previous: PreviousPage | None = None


class PageLeftIn(BaseModel):
    """The visitor left a page (``pagehide``: a beacon)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["left"]
    token: Annotated[StrictStr, Field(min_length=1, max_length=2048)]
    previous: PreviousPage


class ActivityReport(BaseModel):
    report: Annotated[PageViewIn | PageLeftIn, Field(discriminator="type")]


class ActivitySettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    basis: Basis = "consent"
    justification: Annotated[str, Field(max_length=MAX_JUSTIFICATION)] = ""
    ip_mode: IpMode = "truncated"
    ua_mode: UaMode = "family"


class ActivityFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date_from: clock.UTCInput | None = None
    date_to: clock.UTCInput | None = None
    site_id: Annotated[str, Field(max_length=64)] | None = None
    visitor: Annotated[str, Field(max_length=320)] | None = None  # name words or an e-mail
    url: Annotated[str, Field(max_length=500)] | None = None  # words the page's address contains
    page: Annotated[int, Field(ge=1, le=100_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=100)] = 25
