"""The identity a site passes to the widget (``window.ConfideSettings.identity`` or
``Confide.identify``), as it crosses the widget's HTTP API. Sizes are bounded here; whether it
is genuine is decided by ``verified.service`` (a bad signature is ignored, not an error)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr

MAX_USER_ID = 256
MAX_EMAIL = 320
MAX_NAME = 200


class IdentityClaim(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Annotated[StrictStr, Field(min_length=1, max_length=MAX_USER_ID)]
    email: Annotated[StrictStr, Field(max_length=MAX_EMAIL)] | None = None
    name: Annotated[StrictStr, Field(max_length=MAX_NAME)] | None = None
    hash: Annotated[StrictStr, Field(max_length=128)] | None = None


class IdentifyIn(BaseModel):
    """``POST /api/v1/widget/{key}/identity``: the widget, opened, asks for this person's history."""

    model_config = ConfigDict(extra="forbid")
    identity: IdentityClaim
