"""Rectification (Art. 16, ADR 0032): correct one field of a person everywhere it is held. The
visitor ids and the new value travel in the body, never in the URL; the answer names ids, the
field and counts, never a value."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from confide.erasure import service as erasure
from confide.permissions.policy import Permission as P
from confide.rectification import service as rectification
from confide.web.api.deps import StateDep, WriteUnit
from confide.web.api.docs import errors
from confide.web.permits import needs

router = APIRouter(prefix="/api/v1", tags=["rectification"], responses=errors(401))


class RectifyIn(BaseModel):
    visitor_ids: list[str] = Field(min_length=1, max_length=erasure.MAX_SUBJECTS)
    field: str = Field(max_length=40, description="name, email, phone or answer:<key> (a custom pre-chat answer)")
    value: str = Field(max_length=rectification.MAX_VALUE, description="the corrected value")
    request_id: str | None = Field(default=None, max_length=64)
    reason: str = "request"


@router.post("/subjects/rectify", responses=errors(400, 403, 404, 422), dependencies=[needs(P.SUBJECTS_RECTIFY)])
async def rectify_subject(body: RectifyIn, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    """Replace the field's value everywhere the person's data is held (the old value unrecoverable:
    the person's data keys rotated, blind indexes rebuilt)."""
    return await rectification.rectify(state.rt, unit.uow, unit.actor, unit.actor.workspace_id, body.visitor_ids,
                                       body.field, body.value, request_id=body.request_id, reason=body.reason)
