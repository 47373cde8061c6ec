"""The widget's HTTP calls, made cross-origin from a business's site: the Origin must be allowed.

Every handler refuses a foreign Origin itself; ``WidgetCors`` adds the CORS headers to every
answer (errors included, so the widget can read a 409 or 422) for allowed origins only.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError

from confide.auth import visitor_tokens
from confide.chats.schemas import StartConversationIn
from confide.consent import widget as consent_widget
from confide.consent.schemas import WidgetChoiceIn, WidgetPrivacyIn
from confide.core.errors import Forbidden, Invalid, RateLimited
from confide.erasure import tombstones
from confide.offline import service as offline
from confide.offline.schemas import OfflineRequestIn
from confide.permissions.access import site_by_key
from confide.routing import service as routing
from confide.verified.schemas import IdentifyIn
from confide.visitor_activity import service as activity
from confide.visitor_activity.schemas import MAX_BODY, PageLeftIn, PageViewIn
from confide.web.api.deps import AnonymousRead, AnonymousWrite, StateDep
from confide.web.api.docs import errors
from confide.web.client_address import client_address
from confide.web.origins import origin_allowed
from confide.web.permits import visitor
from confide.workspaces.models import Site

_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
router = APIRouter(prefix="/api/v1/widget", tags=["widget"], responses=errors(400, 403, 404, 409, 422, 429))


def request_origin(request: Request) -> str | None:
    """The page's origin. Browsers omit ``Origin`` on same-origin GETs; ``Sec-Fetch-Site`` then
    vouches that the page is on this very host (a widget served from the business's own domain)."""
    origin = request.headers.get("origin")
    if origin:
        return origin
    if request.headers.get("sec-fetch-site") == "same-origin":
        return f"{request.url.scheme}://{request.headers.get('host', '')}"
    return None


def _check_origin(site: Site, request: Request) -> None:
    if not origin_allowed(request_origin(request), site.allowed_origins):
        raise Forbidden("origin not allowed")


@router.options("/{site_key}/{rest:path}", include_in_schema=False, dependencies=[visitor()])
async def preflight(site_key: str, rest: str, request: Request, uow: AnonymousRead) -> Response:
    site = await site_by_key(uow.session, site_key)
    _check_origin(site, request)
    response = Response(status_code=204)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = "600"
    return response


@router.get("/{site_key}/config", dependencies=[visitor()])
async def widget_config(site_key: str, request: Request, uow: AnonymousRead, lang: str | None = None) -> JSONResponse:
    """Public configuration of the widget for one site: form, purposes (with the exact notice text
    each checkbox shows, in ``lang`` when there is one), availability."""
    site = await site_by_key(uow.session, site_key)
    _check_origin(site, request)
    language = lang if lang and _LANG.match(lang) else None
    config: dict[str, Any] = await routing.widget_config(uow, site, language)
    return JSONResponse(config, headers={"Cache-Control": "no-store"})


@router.post("/{site_key}/conversations", status_code=201, dependencies=[visitor()])
async def start_conversation(
    site_key: str, body: StartConversationIn, request: Request, state: StateDep
) -> JSONResponse:
    """The visitor submitted the pre-chat form: returns a visitor token and the conversation.
    ``429`` when this client address started too many chats in the last hour."""
    rt = state.rt
    address = client_address(request)  # held in memory only, never logged
    if address is not None and not state.limits.conversations.allowed(address):
        raise RateLimited("too many chats were started from your address; try again later")
    async with rt.db.unit_of_work() as uow:
        site = await site_by_key(uow.session, site_key)
        _check_origin(site, request)
        result = await routing.start_chat(rt, uow, site, body)
    if address is not None:
        state.limits.conversations.record(address)
    return JSONResponse(result, status_code=201)


@router.post("/{site_key}/identity", dependencies=[visitor()])
async def identify(
    site_key: str, body: IdentifyIn, request: Request, state: StateDep, uow: AnonymousRead
) -> JSONResponse:
    """The widget, opened by a logged-in visitor, sends the identity its site signed: when it
    verifies and the person chatted before, a visitor token and their conversations (ADR 0022).
    A claim that does not verify answers ``{"verified": false}`` and is not stored."""
    site = await site_by_key(uow.session, site_key)
    _check_origin(site, request)
    result = await routing.identify(state.rt, uow, site, body.identity)
    return JSONResponse(result, headers={"Cache-Control": "no-store"})


@router.post("/{site_key}/offline-requests", status_code=201, dependencies=[visitor()])
async def leave_message(
    site_key: str, body: OfflineRequestIn, request: Request, state: StateDep, uow: AnonymousWrite
) -> JSONResponse:
    """ "Leave a message" when nobody is available."""
    site = await site_by_key(uow.session, site_key)
    _check_origin(site, request)
    row = await offline.create(state.rt, uow, site, body)
    return JSONResponse({"id": row.id}, status_code=201)


# ---- activity (Visitor Activity, issue 7 point 5)
_REPORT: TypeAdapter[PageViewIn | PageLeftIn] = TypeAdapter(PageViewIn | PageLeftIn)
_REPORT_SCHEMA = {
    "content": {
        ctype: {
            "schema": {
                "type": "object",
                "required": ["type", "token"],
                "properties": {
                    "type": {"type": "string", "enum": ["view", "left"]},
                    "token": {"type": "string"},
                    "url": {"type": "string", "maxLength": 2048},
                    "title": {"type": "string", "maxLength": 300},
                    "referrer": {"type": "string", "maxLength": 2048},
                    "previous": {
                        "type": "object",
                        "properties": {"view_id": {"type": "string"}, "seconds": {"type": "integer"}},
                    },
                },
            }
        }
        for ctype in ("application/json",)  # text/plain is read alike (a beacon's type)
    },
    "required": True,
}


@router.post(
    "/{site_key}/activity",
    dependencies=[visitor()],
    responses=errors(401),
    openapi_extra={"requestBody": _REPORT_SCHEMA},
)
async def report_activity(site_key: str, request: Request, state: StateDep, uow: AnonymousWrite) -> JSONResponse:
    """A page the visitor sees (``view``) or left (``left``, a ``sendBeacon`` on ``pagehide``), with
    the visitor token in the body (never in the URL). The body is JSON sent as ``text/plain`` (a
    beacon cannot send ``application/json`` cross-origin without a preflight). Stored only when the
    visitor consented to activity tracking or the site documented a legitimate interest; otherwise
    nothing is written and the answer says ``stored: false``."""
    site = await site_by_key(uow.session, site_key)
    _check_origin(site, request)
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise Invalid("report too large")
    try:
        body = _REPORT.validate_json(raw)
    except ValidationError:
        raise Invalid("not a valid activity report") from None
    actor = visitor_tokens.verify(state.rt.visitor_tokens, body.token, site_id=site.id)
    if not state.limits.visitor_activity.take(actor.visitor_id):
        raise RateLimited("too many page reports; try again later")
    await tombstones.refuse_erased(state.rt, uow, actor)  # an erased visitor's token: 410, nothing stored
    result = await activity.report(
        state.rt,
        uow,
        site,
        actor,
        body,
        address=client_address(request),
        user_agent=request.headers.get("user-agent"),
    )
    return JSONResponse(result, headers={"Cache-Control": "no-store"})


# ---- end activity


# ---- consent: the widget's Privacy view (the visitor token in the body, never in a URL)
@router.post("/{site_key}/privacy", dependencies=[visitor()], responses=errors(401))
async def privacy(
    site_key: str, body: WidgetPrivacyIn, request: Request, state: StateDep, uow: AnonymousRead
) -> JSONResponse:
    """The purposes with the visitor's current standing and each one's notice text; ``needs_answer``
    when a notice changed materially since the visitor consented (the widget asks again)."""
    site = await site_by_key(uow.session, site_key)
    _check_origin(site, request)
    await tombstones.refuse_erased_token(state.rt, uow, site.id, body.token)  # an erased visitor: 410
    view = await consent_widget.visitor_privacy(state.rt, uow, site, body)
    return JSONResponse(view, headers={"Cache-Control": "no-store"})


@router.post("/{site_key}/privacy/choices", dependencies=[visitor()], responses=errors(401))
async def privacy_choice(
    site_key: str, body: WidgetChoiceIn, request: Request, state: StateDep, uow: AnonymousWrite
) -> JSONResponse:
    """One click: grant or withdraw one purpose (one ledger row, under the notice shown)."""
    site = await site_by_key(uow.session, site_key)
    _check_origin(site, request)
    await tombstones.refuse_erased_token(state.rt, uow, site.id, body.token)  # nothing recorded for them again
    view = await consent_widget.visitor_choice(state.rt, uow, site, body)
    return JSONResponse(view, headers={"Cache-Control": "no-store"})
