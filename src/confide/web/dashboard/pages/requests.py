"""Data-subject requests (ADR 0029): the back office's Requests list and detail page with its
actions, and the public request page of each site (``/privacy/request/<site key>``) with the
requester's code page (``/privacy/verify/<request id>``).

The list's filters are non-personal (type, state, channel, overdue, due before), so they travel in
the query string; the filter form POSTs and is redirected to that URL. The public pages carry no
cookie: a form is refused when the browser says it came from another site, a hidden honeypot field
catches naive robots, and requests are counted per client address like the widget's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from confide.core.errors import DomainError, RateLimited
from confide.permissions.access import site_by_key
from confide.permissions.policy import Permission as P
from confide.privacy_requests import intake, lifecycle
from confide.privacy_requests import views as request_views
from confide.privacy_requests.schemas import (
    CHANNELS,
    STAFF_CHANNELS,
    STATES,
    TYPES,
    CompleteIn,
    ExtendIn,
    ReasonIn,
    RequestFilters,
    RequestIn,
    StaffRequestIn,
)
from confide.subjects import delivery
from confide.subjects.schemas import FORMATS, ExportIn
from confide.web.api.deps import StateDep, operator_unit
from confide.web.api.privacy_requests import limit_address
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.forms import errors as form_errors
from confide.web.dashboard.forms import messages, text
from confide.web.dashboard.templating import error_page, render
from confide.web.origins import server_origin
from confide.web.permits import needs, public
from confide.web.security import form_from_own_site

router = APIRouter(include_in_schema=False)
PATH = "/app/requests"
TYPE_LABELS = {
    "access": "Access (Art. 15)",
    "portability": "Portability (Art. 20)",
    "erasure": "Erasure (Art. 17)",
    "rectification": "Rectification (Art. 16)",
    "restriction": "Restriction (Art. 18)",
    "objection": "Objection (Art. 21)",
}
STATE_LABELS = {"received": "Received", "verifying": "Verifying", "in_progress": "In progress", "done": "Done",
                "refused": "Refused"}
CHANNEL_LABELS = {"widget": "Chat widget", "web": "Request page", "email": "E-mail", "phone": "Phone",
                  "letter": "Letter", "other": "Other"}
DONE = {
    "created": "Request recorded. The one-month clock runs from its receipt.",
    "send_code": "A verification code was sent to the requester's e-mail address.",
    "verify": "The requester's identity is marked verified.",
    "start": "Work on the request has started.",
    "extend": "The due date was extended and the requester was told by e-mail.",
    "complete": "The request is done.",
    "refuse": "The request was refused.",
    "send_export": "The requester was e-mailed a single-use link to their export; it is linked to this request.",
}
_FILTER_KEYS = ("type", "state", "channel", "overdue", "due_before", "page")
_LABELS = {"TYPES": TYPE_LABELS, "STATES": STATE_LABELS, "CHANNELS": CHANNEL_LABELS}


def _filters(values: dict[str, str]) -> RequestFilters:
    clean: dict[str, Any] = {k: v for k, v in values.items() if k in _FILTER_KEYS and v}
    if "overdue" in clean:
        clean["overdue"] = clean["overdue"] in ("1", "true", "on")
    return RequestFilters.model_validate(clean)


def _query(values: dict[str, str]) -> str:
    return urlencode({k: v for k, v in values.items() if k in _FILTER_KEYS and v})


@router.get(PATH, dependencies=[needs(P.SUBJECTS_VIEW)])
async def request_list(request: Request, state: StateDep, actor: PageOperator) -> Response:
    raw = {k: v for k, v in request.query_params.items() if k in _FILTER_KEYS}
    problems: list[str] = []
    items: list[dict[str, Any]] = []
    total = 0
    try:
        filters = _filters(raw)
    except ValidationError as exc:
        problems, filters = messages(exc), RequestFilters()
    else:
        # A write unit: the read-access log row (the e-mails shown) commits with the read.
        async with operator_unit(request, write=True) as unit:
            items, total = await request_views.search(state.rt, unit.uow, unit.actor, filters, via="requests_list")
    pages = max(1, -(-total // filters.per_page))
    base = {k: v for k, v in raw.items() if k != "page"}
    prev_url = f"{PATH}?{_query({**base, 'page': str(filters.page - 1)})}" if filters.page > 1 else None
    next_url = f"{PATH}?{_query({**base, 'page': str(filters.page + 1)})}" if filters.page < pages else None
    return render(request, "requests.html", actor, nav="requests", items=items, total=total, raw=raw,
                  errors=problems, prev_url=prev_url, next_url=next_url, page=filters.page, pages=pages,
                  types=TYPES, states=STATES, channels=CHANNELS, staff_channels=STAFF_CHANNELS, labels=_LABELS,
                  flash=DONE.get(request.query_params.get("done", "")))


@router.post(PATH, dependencies=[needs(P.SUBJECTS_VIEW)])
async def request_filter(request: Request, _: PageOperator) -> Response:
    """The filter form: every filter is non-personal, so it goes into the URL as it is."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    query = _query(form)
    return RedirectResponse(PATH + (f"?{query}" if query else ""), status_code=303)


@router.post(PATH + "/new", dependencies=[needs(P.SUBJECTS_EXPORT)])
async def request_create(request: Request, state: StateDep, actor: PageOperator) -> Response:
    form = await request.form()
    values: dict[str, Any] = {k: text(form, k).strip() for k in ("type", "channel", "email", "details", "site_id",
                                                                 "received_at")}
    values = {k: v for k, v in values.items() if v or k == "details"}
    try:
        data = StaffRequestIn.model_validate(values)
    except ValidationError as exc:
        return error_page(request, actor, 422, " ".join(messages(exc)), title="The request was not recorded",
                          nav="requests")
    async with operator_unit(request, write=True) as unit:
        made = await intake.create_by_staff(state.rt, unit.uow, unit.actor, data)
    return RedirectResponse(f"{PATH}/{made['id']}?done=created", status_code=303)


@router.get(PATH + "/{request_id}", dependencies=[needs(P.SUBJECTS_VIEW)])
async def request_page(request_id: str, request: Request, state: StateDep, actor: PageOperator) -> Response:
    async with operator_unit(request, write=True) as unit:
        req = await request_views.open_request(state.rt, unit.uow, unit.actor, request_id, via="request_page")
    return render(request, "request.html", actor, nav="requests", r=req, labels=_LABELS, formats=FORMATS,
                  flash=DONE.get(request.query_params.get("done", "")))


async def _act(request: Request, state: StateDep, actor: PageOperator, request_id: str, action: str) -> Response:
    form = await request.form()
    try:
        async with operator_unit(request, write=True) as unit:
            rt, uow, who = state.rt, unit.uow, unit.actor
            if action == "send_code":
                await intake.send_code(rt, uow, who, request_id)
            elif action == "verify":
                await intake.verify_by_staff(rt, uow, who, request_id, ReasonIn(reason=text(form, "reason")).reason)
            elif action == "start":
                await lifecycle.start(rt, uow, who, request_id)
            elif action == "extend":
                ext = ExtendIn(reason=text(form, "reason"), months=int(text(form, "months") or "1"))
                await lifecycle.extend(rt, uow, who, request_id, months=ext.months, reason=ext.reason)
            elif action == "complete":
                done = CompleteIn(outcome=text(form, "outcome"))
                await lifecycle.complete(rt, uow, who, request_id, outcome=done.outcome)
            elif action == "send_export":  # access / portability: the export, linked to the request
                body = ExportIn(visitor_ids=[v for v in text(form, "visitor_ids").split(",") if v],
                                searched_by="email", fmt=text(form, "fmt") or "json",  # type: ignore[arg-type]
                                request_id=request_id)
                base = rt.settings.public_url or str(request.base_url)
                await delivery.send_link(rt, uow, who, body, base_url=base)
            else:
                await lifecycle.refuse(rt, uow, who, request_id, reason=ReasonIn(reason=text(form, "reason")).reason)
    except (ValidationError, ValueError) as exc:
        return error_page(request, actor, 422, " ".join(form_errors(exc)), title="Nothing was changed",
                          nav="requests")
    except DomainError as exc:
        if exc.status == 404:
            raise
        return error_page(request, actor, exc.status, " ".join(form_errors(exc)), title="Nothing was changed",
                          nav="requests")
    return RedirectResponse(f"{PATH}/{request_id}?done={action}", status_code=303)


def _action_route(action: str) -> None:
    async def handler(request_id: str, request: Request, state: StateDep, actor: PageOperator) -> Response:
        return await _act(request, state, actor, request_id, action)

    handler.__name__ = f"request_{action}"
    router.add_api_route(f"{PATH}/{{request_id}}/{action.replace('_', '-')}", handler, methods=["POST"],
                         dependencies=[needs(P.SUBJECTS_EXPORT)])


for _action in ("send_code", "verify", "start", "extend", "complete", "refuse", "send_export"):
    _action_route(_action)


# ---------------------------------------------------------------- the public request page
PUBLIC = "/privacy/request/{site_key}"
VERIFY = "/privacy/verify/{request_id}"
HONEYPOT = "website"


def _own(request: Request, state: StateDep) -> str | None:
    return server_origin(request.url.scheme, request.headers.get("host"), state.rt.settings.public_url)


def _public(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    for key, value in (("errors", []), ("values", {}), ("resent", False), ("r", None), ("site", None)):
        context.setdefault(key, value)
    return render(request, name, None, status_code=status_code, types=TYPES, labels=_LABELS, **context)


@router.get(PUBLIC, dependencies=[public()])
async def public_form(site_key: str, request: Request, state: StateDep) -> Response:
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        site = await site_by_key(uow.session, site_key)
    return _public(request, "request_public.html", site=site, values={}, step="form")


@router.post(PUBLIC, dependencies=[public()])
async def public_submit(site_key: str, request: Request, state: StateDep) -> Response:
    if not form_from_own_site(request.headers, _own(request, state)):
        return error_page(request, None, 403, "This form was sent from another site.", title="Refused")
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        site = await site_by_key(uow.session, site_key)
    form = await request.form()
    values = {k: text(form, k) for k in ("type", "email", "details")}
    if text(form, HONEYPOT):  # a robot filled the field people cannot see: answered alike, nothing stored
        return _public(request, "request_public.html", site=site, step="sent", request_id=None)
    try:
        data = RequestIn.model_validate(values)
    except ValidationError as exc:
        return _public(request, "request_public.html", 422, site=site, values=values, step="form",
                       errors=messages(exc))
    try:
        address = limit_address(request, state)
    except RateLimited as exc:
        return _public(request, "request_public.html", 429, site=site, values=values, step="form",
                       errors=form_errors(exc))
    async with state.rt.db.unit_of_work() as uow:
        row = await intake.create_by_requester(state.rt, uow, site, data, channel="web")
        request_id = row.id
    if address is not None:
        state.limits.privacy_requests.record(address)
    return RedirectResponse(VERIFY.format(request_id=request_id), status_code=303)


@router.get(VERIFY, dependencies=[public()])
async def verify_form(request_id: str, request: Request, state: StateDep) -> Response:
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        req = await request_views.public_summary(uow, request_id)
    return _public(request, "request_public.html", step="verified" if req["verified"] else "verify", r=req)


@router.post(VERIFY, dependencies=[public()])
async def verify_submit(request_id: str, request: Request, state: StateDep) -> Response:
    if not form_from_own_site(request.headers, _own(request, state)):
        return error_page(request, None, 403, "This form was sent from another site.", title="Refused")
    form = await request.form()
    resend = text(form, "resend") == "1"
    try:
        async with state.rt.db.unit_of_work() as uow:
            if resend:
                await intake.resend_code_by_requester(state.rt, uow, request_id)
            else:
                await intake.verify_code(state.rt, uow, request_id, text(form, "code")[:20])
    except DomainError as exc:
        if exc.status == 404:
            raise
        async with state.rt.db.unit_of_work(readonly=True) as uow:
            req = await request_views.public_summary(uow, request_id)
        return _public(request, "request_public.html", exc.status, step="verify", r=req, errors=form_errors(exc))
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        req = await request_views.public_summary(uow, request_id)
    return _public(request, "request_public.html", step="verify" if resend else "verified", r=req,
                   resent=resend)
