"""Redaction at ingest (ADR 0021): a site's policy (administrators), and the originals of masked
text (``chats.view_redacted``, each view audited by the service)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from confide.permissions.policy import Permission as P
from confide.redaction import service as redaction
from confide.redaction.schemas import PolicyIn
from confide.web.api.deps import ReadUnit, StateDep, WriteUnit
from confide.web.api.docs import errors
from confide.web.permits import needs

router = APIRouter(prefix="/api/v1", tags=["redaction"], responses=errors(401))


@router.get("/sites/{site_id}/redaction", responses=errors(403, 404), dependencies=[needs(P.SETTINGS_READ)])
async def get_policy(site_id: str, unit: ReadUnit) -> dict[str, Any]:
    return await redaction.get_policy(unit.uow, unit.actor, site_id)


@router.put(
    "/sites/{site_id}/redaction", responses=errors(400, 403, 404, 422), dependencies=[needs(P.SETTINGS_MANAGE)]
)
async def set_policy(site_id: str, body: PolicyIn, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    return await redaction.set_policy(state.rt, unit.uow, unit.actor, site_id, body)


@router.get(
    "/conversations/{conversation_id}/redacted",
    responses=errors(403, 404),
    dependencies=[needs(P.CHATS_VIEW_REDACTED)],
)
async def conversation_originals(conversation_id: str, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    items = await redaction.originals_of_conversation(state.rt, unit.uow, unit.actor, conversation_id)
    return {"items": items}


@router.get(
    "/offline-requests/{request_id}/redacted",
    responses=errors(403, 404),
    dependencies=[needs(P.CHATS_VIEW_REDACTED)],
)
async def offline_originals(request_id: str, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    items = await redaction.originals_of_offline_request(state.rt, unit.uow, unit.actor, request_id)
    return {"items": items}
