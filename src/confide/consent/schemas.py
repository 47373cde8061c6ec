"""What crosses the boundary of the consent domain (forms, JSON bodies)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from confide.consent.purposes import LawfulBasis
from confide.core import clock

PurposeKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]
NoticeText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PurposeIn(Strict):
    key: PurposeKey
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    lawful_basis: LawfulBasis = "consent"
    description: Annotated[str, Field(max_length=2000)] = ""
    retention_class: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{0,40}$")] = "consent"
    recipients: Annotated[str, Field(max_length=2000)] = ""
    enabled: bool = True
    notice: NoticeText
    language: Language = "en"


class PurposePatch(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None = None
    lawful_basis: LawfulBasis | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None
    retention_class: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{0,40}$")] | None = None
    recipients: Annotated[str, Field(max_length=2000)] | None = None
    enabled: bool | None = None


class NoticeIn(Strict):
    text: NoticeText
    language: Language = "en"
    material: bool = False


class WidgetPrivacyIn(Strict):
    """The widget's Privacy view: who is asking (the visitor token, in the body, never a URL)."""

    token: Annotated[str, Field(min_length=1, max_length=2048)]
    language: Language | None = None


class WidgetChoiceIn(WidgetPrivacyIn):
    purpose: PurposeKey
    granted: StrictBool
    notice_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None  # the notice shown


class StatementIn(Strict):
    """An operator records a consent statement the visitor made in the chat."""

    message_id: Annotated[str, Field(min_length=1, max_length=64)]
    purpose: PurposeKey
    granted: StrictBool


class RecordFilters(Strict):
    purpose: PurposeKey | None = None
    granted: bool | None = None
    source: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,16}$")] | None = None
    site_id: Annotated[str, Field(max_length=64)] | None = None
    date_from: clock.UTCInput | None = None
    date_to: clock.UTCInput | None = None
    page: Annotated[int, Field(ge=1, le=10_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=200)] = 50
