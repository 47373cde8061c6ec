"""Stored Chats and Offline Requests."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from confide.chats import service as chats
from confide.chats.schemas import StoredChatFilters
from confide.offline import service as offline
from confide.offline.schemas import OfflineFilters
from confide.web.api.deps import OperatorDep, StateDep

router = APIRouter(prefix="/api/v1", tags=["back office"])


@router.get("/conversations")
async def stored_chats(
    filters: Annotated[StoredChatFilters, Query()], actor: OperatorDep, state: StateDep
) -> dict[str, Any]:
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        items, total = await chats.search(state.rt, uow, actor, filters)
    return {"items": items, "total": total, "page": filters.page, "per_page": filters.per_page}


@router.get("/conversations/{conversation_id}")
async def transcript(conversation_id: str, actor: OperatorDep, state: StateDep) -> dict[str, Any]:
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        return await chats.transcript(state.rt, uow, actor, conversation_id)


@router.get("/offline-requests")
async def offline_requests(
    filters: Annotated[OfflineFilters, Query()], actor: OperatorDep, state: StateDep
) -> dict[str, Any]:
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        items, total = await offline.search(state.rt, uow, actor, filters)
    return {"items": items, "total": total, "page": filters.page, "per_page": filters.per_page}


class HandledIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    handled: bool = True


@router.post("/offline-requests/{request_id}/handled")
async def mark_handled(request_id: str, body: HandledIn, actor: OperatorDep, state: StateDep) -> dict[str, Any]:
    async with state.rt.db.unit_of_work() as uow:
        return await offline.set_handled(state.rt, uow, actor, request_id, body.handled)
