"""Restriction of processing (GDPR Art. 18, ADR 0031): restrict a person's processing, lift it.
Visitor ids travel in the body, never in the URL. Both answers are idempotent (see the service)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from confide.permissions.policy import Permission as P
from confide.restriction import notice
from confide.restriction import service as restriction
from confide.web.api.deps import StateDep, WriteUnit
from confide.web.api.docs import errors
from confide.web.permits import needs

router = APIRouter(prefix="/api/v1/subjects", tags=["restriction"], responses=errors(401))

class LiftIn(BaseModel):
    visitor_ids: list[str] = Field(min_length=1, max_length=restriction.MAX_SUBJECTS)


class RestrictIn(LiftIn):
    reason: str = Field(max_length=32, description=f"one of {', '.join(restriction.REASONS)}")
    request_id: str | None = Field(default=None, max_length=64)


@router.post("/restrict", responses=errors(400, 403, 404, 422), dependencies=[needs(P.SUBJECTS_RESTRICT)])
async def restrict_subject(body: RestrictIn, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    """Restrict the processing of the person with these visitor ids: their data is kept, nothing
    else happens to it. Restricting someone already restricted keeps the first restriction."""
    return await restriction.restrict(state.rt, unit.uow, unit.actor, unit.actor.workspace_id, body.visitor_ids,
                                      reason=body.reason, request_id=body.request_id)


@router.post("/lift-restriction", responses=errors(400, 403, 404, 422), dependencies=[needs(P.SUBJECTS_RESTRICT)])
async def lift_restriction(body: LiftIn, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    """Lift the person's restriction (kept in its history); their waiting jobs fall due, and the
    person is e-mailed that it is lifted (Art. 18(3); ``told``)."""
    return await notice.lift_and_tell(state.rt, unit.uow, unit.actor, unit.actor.workspace_id, body.visitor_ids)
