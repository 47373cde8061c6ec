"""Data-subject requests over JSON (ADR 0029): the back office's API (``/api/v1/privacy-requests``:
read with ``subjects.view``, act with ``subjects.export``) and the widget's two calls (make a
request, enter the e-mailed code), cross-origin from the business's site like the rest of the widget.

Filters are non-personal (type, state, channel, overdue, due date): they may sit in a query string.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from confide.auth import visitor_tokens
from confide.core.errors import RateLimited
from confide.permissions.access import site_by_key
from confide.permissions.policy import Permission as P
from confide.privacy_requests import intake, lifecycle
from confide.privacy_requests import views as request_views
from confide.privacy_requests.schemas import (
    CodeIn,
    CompleteIn,
    ExtendIn,
    ReasonIn,
    RequestFilters,
    RequestIn,
    StaffRequestIn,
)
from confide.web.api.deps import AnonymousWrite, StateDep, WriteUnit
from confide.web.api.docs import errors
from confide.web.api.widget import _check_origin
from confide.web.client_address import client_address
from confide.web.permits import needs, visitor

router = APIRouter(tags=["privacy requests"], responses=errors(401))
BASE = "/api/v1/privacy-requests"


@router.get(BASE, responses=errors(403, 422), dependencies=[needs(P.SUBJECTS_VIEW)])
async def list_requests(
    filters: Annotated[RequestFilters, Query()], state: StateDep, unit: WriteUnit
) -> dict[str, Any]:
    """Soonest due first. The e-mail addresses shown are recorded in the read-access log."""
    items, total = await request_views.search(state.rt, unit.uow, unit.actor, filters, via="api_list")
    return {"items": items, "total": total, "page": filters.page, "per_page": filters.per_page}


@router.post(BASE, status_code=201, responses=errors(400, 403, 404, 422), dependencies=[needs(P.SUBJECTS_EXPORT)])
async def create_request(body: StaffRequestIn, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    """A request received by e-mail, phone, letter or otherwise; the clock runs from ``received_at``."""
    return await intake.create_by_staff(state.rt, unit.uow, unit.actor, body)


@router.get(BASE + "/{request_id}", responses=errors(403, 404), dependencies=[needs(P.SUBJECTS_VIEW)])
async def get_request(request_id: str, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    """The request with its timeline (the view is recorded)."""
    return await request_views.open_request(state.rt, unit.uow, unit.actor, request_id, via="api")


_ACT = errors(400, 403, 404, 409, 422)  # 400: an unparsable body


@router.post(BASE + "/{request_id}/send-code", responses=_ACT, dependencies=[needs(P.SUBJECTS_EXPORT)])
async def send_code(request_id: str, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    """E-mail a (new) verification code to the request's address."""
    return await intake.send_code(state.rt, unit.uow, unit.actor, request_id)


@router.post(BASE + "/{request_id}/verify", responses=_ACT, dependencies=[needs(P.SUBJECTS_EXPORT)])
async def verify(request_id: str, body: ReasonIn, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    """Staff vouch for the requester's identity, with the reason (how they checked)."""
    return await intake.verify_by_staff(state.rt, unit.uow, unit.actor, request_id, body.reason)


@router.post(BASE + "/{request_id}/start", responses=_ACT, dependencies=[needs(P.SUBJECTS_EXPORT)])
async def start(request_id: str, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    return await lifecycle.start(state.rt, unit.uow, unit.actor, request_id)


@router.post(BASE + "/{request_id}/extend", responses=_ACT, dependencies=[needs(P.SUBJECTS_EXPORT)])
async def extend(request_id: str, body: ExtendIn, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    """Up to two further months in all (Art. 12(3)); the requester is told by e-mail, with the reason."""
    return await lifecycle.extend(state.rt, unit.uow, unit.actor, request_id, months=body.months, reason=body.reason)


@router.post(BASE + "/{request_id}/complete", responses=_ACT, dependencies=[needs(P.SUBJECTS_EXPORT)])
async def complete(request_id: str, body: CompleteIn, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    """Done, with the outcome (an erasure request also asks for ``subjects.erase``)."""
    return await lifecycle.complete(state.rt, unit.uow, unit.actor, request_id, outcome=body.outcome,
                                    export_id=body.export_id, certificate_id=body.certificate_id)


@router.post(BASE + "/{request_id}/refuse", responses=_ACT, dependencies=[needs(P.SUBJECTS_EXPORT)])
async def refuse(request_id: str, body: ReasonIn, state: StateDep, unit: WriteUnit) -> dict[str, Any]:
    return await lifecycle.refuse(state.rt, unit.uow, unit.actor, request_id, reason=body.reason)


# ---------------------------------------------------------------- the widget's Privacy view
WIDGET = "/api/v1/widget/{site_key}/privacy-requests"


def limit_address(request: Request, state: StateDep) -> str | None:
    """Requests made per client address per hour (the widget and the public page share the count)."""
    address = client_address(request)  # in memory only, never logged
    if address is not None and not state.limits.privacy_requests.allowed(address):
        raise RateLimited("too many requests were made from your address; try again later")
    return address


@router.post(WIDGET, status_code=201, dependencies=[visitor()], responses=errors(400, 403, 404, 409, 422, 429))
async def widget_request(
    site_key: str, body: RequestIn, request: Request, state: StateDep, uow: AnonymousWrite
) -> JSONResponse:
    """The visitor makes a request (type, e-mail, details) from the Privacy view; their visitor token
    (in the body) links it to them. A code goes to the e-mail address; they enter it next."""
    address = limit_address(request, state)
    site = await site_by_key(uow.session, site_key)
    _check_origin(site, request)
    visitor_id = None
    if body.token:
        visitor_id = visitor_tokens.verify(state.rt.visitor_tokens, body.token, site_id=site.id).visitor_id
    row = await intake.create_by_requester(state.rt, uow, site, body, channel="widget", visitor_id=visitor_id)
    if address is not None:
        state.limits.privacy_requests.record(address)
    return JSONResponse({**request_views.summary(row), "verify": "code_sent"}, status_code=201,
                        headers={"Cache-Control": "no-store"})


@router.post(WIDGET + "/{request_id}/verify", dependencies=[visitor()], responses=errors(400, 403, 404, 409, 422))
async def widget_verify(
    site_key: str, request_id: str, body: CodeIn, request: Request, state: StateDep, uow: AnonymousWrite
) -> JSONResponse:
    """The code from the e-mail. Wrong: 422 with the attempts left; expired or used up: ask again."""
    site = await site_by_key(uow.session, site_key)
    _check_origin(site, request)
    row = await intake.verify_code(state.rt, uow, request_id, body.code, site_id=site.id)
    return JSONResponse(request_views.summary(row), headers={"Cache-Control": "no-store"})


@router.post(WIDGET + "/{request_id}/resend", dependencies=[visitor()], responses=errors(400, 403, 404, 409, 429))
async def widget_resend(
    site_key: str, request_id: str, request: Request, state: StateDep, uow: AnonymousWrite
) -> JSONResponse:
    limit_address(request, state)
    site = await site_by_key(uow.session, site_key)
    _check_origin(site, request)
    await intake.resend_code_by_requester(state.rt, uow, request_id, site_id=site.id)
    return JSONResponse({"verify": "code_sent"}, headers={"Cache-Control": "no-store"})
