"""Stored Chats and Offline Requests."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from confide.audit import service as audit
from confide.chats import service as chats
from confide.chats.schemas import StoredChatFilters
from confide.offline import service as offline
from confide.offline.schemas import OfflineFilters
from confide.permissions.policy import Permission as P
from confide.web.api.deps import StateDep, WriteUnit
from confide.web.api.docs import errors
from confide.web.permits import needs

router = APIRouter(prefix="/api/v1", tags=["back office"], responses=errors(401))


@router.get("/conversations", responses=errors(422), dependencies=[needs(P.CHATS_READ)])
async def stored_chats(
    filters: Annotated[StoredChatFilters, Query()], state: StateDep, unit: WriteUnit
) -> dict[str, Any]:
    items, total = await chats.search(state.rt, unit.uow, unit.actor, filters)
    await audit.record_list_view(  # the read-access log, in the same unit as the read
        state.rt,
        unit.uow,
        "chats.listed",
        actor=unit.actor,
        target_type="conversation",
        ids=[item["id"] for item in items],
        via="api",
        page=filters.page,
        total=total,
    )
    return {"items": items, "total": total, "page": filters.page, "per_page": filters.per_page}


@router.get("/conversations/{conversation_id}", responses=errors(404), dependencies=[needs(P.CHATS_READ)])
async def transcript(conversation_id: str, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    chat = await chats.transcript(state.rt, unit.uow, unit.actor, conversation_id)  # read-access log, same unit:
    await audit.record(
        state.rt,
        unit.uow,
        "chats.viewed",
        actor=unit.actor,
        target_type="conversation",
        target_id=conversation_id,
        detail={"via": "api"},
    )
    return chat


@router.get("/offline-requests", responses=errors(422), dependencies=[needs(P.OFFLINE_READ)])
async def offline_requests(
    filters: Annotated[OfflineFilters, Query()], state: StateDep, unit: WriteUnit
) -> dict[str, Any]:
    items, total = await offline.search(state.rt, unit.uow, unit.actor, filters)
    await audit.record_list_view(  # the read-access log, in the same unit as the read
        state.rt,
        unit.uow,
        "offline.listed",
        actor=unit.actor,
        target_type="offline_request",
        ids=[item["id"] for item in items],
        via="api",
        page=filters.page,
        total=total,
    )
    return {"items": items, "total": total, "page": filters.page, "per_page": filters.per_page}


class HandledIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    handled: bool = True


@router.post(
    "/offline-requests/{request_id}/handled", responses=errors(400, 404, 422), dependencies=[needs(P.OFFLINE_MANAGE)]
)
async def mark_handled(request_id: str, body: HandledIn, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    return await offline.set_handled(state.rt, unit.uow, unit.actor, request_id, body.handled)
