"""Erasure (issue 8 point 5, ADR 0028): the preview of a person's erasure, the erasure itself (a
typed confirmation), the certificate as JSON, and a bulk filter's preview. Visitor ids travel in
the body, never in the URL."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from confide.core.errors import Invalid
from confide.erasure import bulk
from confide.erasure import service as erasure
from confide.permissions.policy import Permission as P
from confide.web.api.deps import ReadUnit, StateDep, WriteUnit
from confide.web.api.docs import errors
from confide.web.permits import needs

router = APIRouter(prefix="/api/v1", tags=["erasure"], responses=errors(401))
CONFIRM = "ERASE"


class PreviewIn(BaseModel):
    visitor_ids: list[str] = Field(min_length=1, max_length=erasure.MAX_SUBJECTS)


class EraseIn(PreviewIn):
    confirm: str = Field(description=f'the word "{CONFIRM}", typed')
    request_id: str | None = Field(default=None, max_length=64)
    reason: str = "request"


class BulkPreviewIn(BaseModel):
    site_id: str = Field(max_length=64)
    before: datetime


@router.post("/subjects/erase/preview", responses=errors(400, 403, 404, 422), dependencies=[needs(P.SUBJECTS_ERASE)])
async def erase_preview(body: PreviewIn, state: StateDep, unit: ReadUnit) -> dict[str, Any]:
    """Per table, how many rows erasing this person would remove (nothing is changed)."""
    counts = await erasure.preview(state.rt, unit.uow, unit.actor, unit.actor.workspace_id, body.visitor_ids)
    return {"visitor_ids": sorted(set(body.visitor_ids)), "tables": counts, "total": sum(counts.values())}


@router.post("/subjects/erase", status_code=201, responses=errors(400, 403, 404, 409, 422),
             dependencies=[needs(P.SUBJECTS_ERASE)])
async def erase_subject(body: EraseIn, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    """Erase the person for good; answers the certificate. Erasing them again answers the same one."""
    if body.confirm != CONFIRM:
        raise Invalid(f'type "{CONFIRM}" to confirm')
    cert = await erasure.erase(state.rt, unit.uow, unit.actor, unit.actor.workspace_id, body.visitor_ids,
                               request_id=body.request_id, reason=body.reason)
    return erasure.certificate_view(cert)


@router.get("/subjects/erasures/{certificate_id}", responses=errors(403, 404), dependencies=[needs(P.SUBJECTS_ERASE)])
async def erasure_certificate(certificate_id: str, unit: ReadUnit, download: bool = False) -> Any:
    """The erasure certificate (``?download=1``: as a file)."""
    view = erasure.certificate_view(await erasure.get_certificate(unit.uow, unit.actor, certificate_id))
    if not download:
        return view
    return Response(json.dumps(view, indent=2), media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="erasure-certificate-{view["id"]}.json"'})


@router.post(
    "/subjects/erase-bulk/preview", responses=errors(400, 403, 404, 422), dependencies=[needs(P.SUBJECTS_ERASE)]
)
async def erase_bulk_preview(body: BulkPreviewIn, state: StateDep, unit: ReadUnit) -> dict[str, Any]:
    """How many visitors of the site have had no activity since ``before``, and what would go."""
    return await bulk.bulk_preview(state.rt, unit.uow, unit.actor, body.site_id, body.before)
