"""What crosses the boundary of subjects/: a search, an export request, a link's code."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SearchKind = Literal["email", "phone", "name", "visitor", "verified", "word"]
Format = Literal["json", "csv", "xlsx", "pdf"]
FORMATS: tuple[str, ...] = ("json", "csv", "xlsx", "pdf")
KINDS: tuple[str, ...] = ("email", "phone", "name", "visitor", "verified", "word")
MAX_VISITORS = 100  # visits in one person (and ids in one export request)

Value = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
VisitorId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class FindIn(BaseModel):
    """One search: ``by`` which kind of value, ``value`` the e-mail, phone, name, visitor id or the
    site's user id of a verified identity. Sent in a POST body, never in a URL."""

    model_config = ConfigDict(extra="forbid", strict=True)
    by: SearchKind
    value: Value


class ExportIn(BaseModel):
    """One person's export: their visitor ids (as Find a person grouped them), how they were found
    (recorded in the package, never the value searched), the format."""

    model_config = ConfigDict(extra="forbid", strict=True)
    visitor_ids: Annotated[list[VisitorId], Field(max_length=MAX_VISITORS)] = Field(default_factory=list)
    prospect_ids: Annotated[list[VisitorId], Field(max_length=MAX_VISITORS)] = Field(default_factory=list)
    searched_by: SearchKind = "visitor"
    fmt: Format = "json"
    # The data-subject request the export answers (access, portability): an e-mailed export is
    # linked to it (``privacy_requests.lifecycle.record_fulfilment``).
    request_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
