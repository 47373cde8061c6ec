"""Offline Requests: the filtered list and "mark handled" / "reopen"."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from confide.audit import service as audit
from confide.offline import service as offline
from confide.offline.schemas import OfflineFilters
from confide.permissions.policy import Permission as P
from confide.web.api.deps import StateDep, operator_unit
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.filters import OFFLINE_FILTERS, filtered_list, has_personal, list_redirect, query_back
from confide.web.dashboard.forms import text
from confide.web.dashboard.templating import render
from confide.web.permits import needs

router = APIRouter(include_in_schema=False)
PATH = "/app/offline"


@router.get(PATH, dependencies=[needs(P.OFFLINE_READ)])
async def offline_requests(request: Request, actor: PageOperator, state: StateDep) -> Response:
    if has_personal(request.query_params):  # an old link: move its personal fields out of the URL
        return list_redirect(request, actor, request.query_params, OFFLINE_FILTERS, PATH)
    context = await filtered_list(
        request,
        actor,
        state,
        path=PATH,
        schema=OfflineFilters,
        keys=OFFLINE_FILTERS,
        search=offline.search,
        defaults={"state": "open"},
    )
    if context["items"]:  # the read-access log: one row per list view, committed before the page is sent
        async with state.rt.db.unit_of_work() as uow:
            await audit.record_list_view(
                state.rt,
                uow,
                "offline.listed",
                actor=actor,
                target_type="offline_request",
                ids=[item["id"] for item in context["items"]],
                via="offline_requests",
                page=context["pager"]["page"],
                total=context["pager"]["total"],
            )
    notice = {"handled": "Marked as handled.", "reopened": "Reopened."}.get(request.query_params.get("done", ""))
    return render(request, "offline.html", actor, nav="offline", flash=notice, **context)


@router.post(PATH, dependencies=[needs(P.OFFLINE_READ)])
async def offline_requests_search(request: Request, actor: PageOperator) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    return list_redirect(request, actor, form, OFFLINE_FILTERS, PATH)


@router.post(PATH + "/{request_id}/handled", dependencies=[needs(P.OFFLINE_MANAGE)])
async def offline_set_handled(request_id: str, request: Request, state: StateDep, _: PageOperator) -> Response:
    form = await request.form()
    handled = text(form, "handled") != "0"
    back = query_back(text(form, "back"), OFFLINE_FILTERS)
    async with operator_unit(request, write=True) as unit:
        await offline.set_handled(state.rt, unit.uow, unit.actor, request_id, handled)
    query = "&".join(q for q in (back, urlencode({"done": "handled" if handled else "reopened"})) if q)
    return RedirectResponse(f"{PATH}?{query}", status_code=303)
