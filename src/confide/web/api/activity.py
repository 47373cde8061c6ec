"""Visitor Activity for the console: the page trail of a chat's visitor, for the visitor panel
(ADR 0019). ``CHATS_PARTICIPATE`` and the chat within the operator's reach; each read audited."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from confide.permissions.policy import Permission as P
from confide.visitor_activity import service as activity
from confide.web.api.deps import StateDep, WriteUnit
from confide.web.api.docs import errors
from confide.web.permits import needs

router = APIRouter(prefix="/api/v1", tags=["visitor activity"], responses=errors(401))


@router.get(
    "/conversations/{conversation_id}/activity", responses=errors(404), dependencies=[needs(P.CHATS_PARTICIPATE)]
)
async def chat_trail(conversation_id: str, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    """The pages the chat's visitor saw (most recent first); the read is audited in this unit."""
    return await activity.chat_trail(state.rt, unit.uow, unit.actor, conversation_id)
