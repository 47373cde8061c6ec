"""Prospects: list, search (personal words in the body, never in the URL), create, open, edit,
delete, and recording a person's objection to profiling."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from confide.audit import service as audit
from confide.permissions.policy import Permission as P
from confide.prospects import service as prospects
from confide.prospects.schemas import ObjectionIn, ProspectFilters, ProspectIn, ProspectPatch, ProspectQuery
from confide.web.api.deps import StateDep, WriteUnit
from confide.web.api.docs import errors
from confide.web.permits import needs

router = APIRouter(prefix="/api/v1", tags=["prospects"], responses=errors(401))


async def _listed(state: StateDep, unit: WriteUnit, filters: ProspectFilters) -> dict[str, Any]:
    items, total = await prospects.search(state.rt, unit.uow, unit.actor, filters)
    for item in items:  # the read-access log, in the same unit as the read
        await audit.record(state.rt, unit.uow, "prospects.viewed", actor=unit.actor, target_type="prospect",
                           target_id=item["id"], detail={"via": "api_list"})
    return {"items": items, "total": total, "page": filters.page, "per_page": filters.per_page}


@router.get("/prospects", responses=errors(403, 422), dependencies=[needs(P.PROSPECTS_READ)])
async def list_prospects(
    query: Annotated[ProspectQuery, Query()], state: StateDep, unit: WriteUnit
) -> dict[str, Any]:
    return await _listed(state, unit, ProspectFilters.model_validate(query.model_dump()))


@router.post("/prospects/search", responses=errors(400, 403, 422), dependencies=[needs(P.PROSPECTS_READ)])
async def search_prospects(body: ProspectFilters, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    return await _listed(state, unit, body)


@router.post(
    "/prospects", status_code=201, responses=errors(400, 403, 404, 422), dependencies=[needs(P.PROSPECTS_MANAGE)]
)
async def create_prospect(body: ProspectIn, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    return await prospects.create(state.rt, unit.uow, unit.actor, body)


@router.post(
    "/prospects/objections", responses=errors(400, 403, 422), dependencies=[needs(P.PROSPECTS_MANAGE)]
)
async def record_objection(body: ObjectionIn, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    """The person with this e-mail address objects to profiling (Art. 21): no prospect is created
    automatically for them from now on."""
    new = await prospects.record_objection_by_operator(state.rt, unit.uow, unit.actor, body.email)
    return {"recorded": True, "new": new}


@router.get("/prospects/{prospect_id}", responses=errors(403, 404), dependencies=[needs(P.PROSPECTS_READ)])
async def get_prospect(prospect_id: str, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    return await prospects.open_prospect(state.rt, unit.uow, unit.actor, prospect_id, via="api")


@router.patch(
    "/prospects/{prospect_id}", responses=errors(400, 403, 404, 409, 422), dependencies=[needs(P.PROSPECTS_MANAGE)]
)
async def edit_prospect(prospect_id: str, body: ProspectPatch, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    return await prospects.update(state.rt, unit.uow, unit.actor, prospect_id, body)


@router.delete(
    "/prospects/{prospect_id}", status_code=204, responses=errors(403, 404), dependencies=[needs(P.PROSPECTS_MANAGE)]
)
async def delete_prospect(prospect_id: str, state: StateDep, unit: WriteUnit) -> Response:
    await prospects.remove(state.rt, unit.uow, unit.actor, prospect_id)
    return Response(status_code=204)
