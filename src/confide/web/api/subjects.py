"""Data-subject rights: find a person (POST: no personal value in a URL), download their export,
and send it to them as an expiring, single-use link (ADR 0026)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from confide.permissions.policy import Permission as P
from confide.subjects import delivery, export, find
from confide.subjects.schemas import ExportIn, FindIn
from confide.web.api.deps import OperatorDep, StateDep, WriteUnit
from confide.web.api.docs import errors
from confide.web.permits import needs

router = APIRouter(prefix="/api/v1/subjects", tags=["subjects"], responses=errors(401))


def attachment(delivered: export.Delivered) -> Response:
    return Response(
        delivered.data,
        media_type=delivered.content_type,
        headers={"Content-Disposition": f'attachment; filename="{delivered.filename}"', "Cache-Control": "no-store"},
    )


@router.post("/find", responses=errors(400, 403, 422), dependencies=[needs(P.SUBJECTS_VIEW)])
async def find_person(body: FindIn, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    """Everyone matching one e-mail, phone, name, visitor id or verified identity, grouped per
    person, with the count of rows held in each store. Each result is in the read-access log."""
    persons = await find.find(state.rt, unit.uow, unit.actor, body, via="api")
    return {"persons": [p.view() for p in persons], "searched_by": body.by}


@router.post("/export", responses=errors(400, 403, 404, 422), dependencies=[needs(P.SUBJECTS_EXPORT)])
async def export_person(body: ExportIn, state: StateDep, actor: OperatorDep) -> Response:
    """One person's export as a download (``fmt``: json; csv, xlsx and pdf with the renderer)."""
    return attachment(await export.export_person(state.rt, actor, body, via="api"))


@router.post("/send", status_code=202, responses=errors(400, 403, 404, 422), dependencies=[needs(P.SUBJECTS_EXPORT)])
async def send_export(body: ExportIn, request: Request, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    """E-mail the person a link to their export (valid 7 days by default, once, with a one-time
    code in the same e-mail), at the address on record."""
    base = state.rt.settings.public_url or str(request.base_url)
    sent = await delivery.send_link(state.rt, unit.uow, unit.actor, body, base_url=base)
    return {"sent": True, "link_id": sent.link_id, "expires_at": sent.expires_at}
