"""Visitor Activity (issue 7 point 5, ADR 0019): the filtered list of page views, one visitor's
trail, and a site's tracking settings (Settings -> Sites -> Visitor activity).

The filters are POSTed; the visitor and the page words are personal data and are sealed out of
the URL like Stored Chats' (``dashboard.filters``, ADR 7). Every trail shown is a read of personal
data and is audited (``visitor_activity.viewed``) in the unit that reads it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from confide.core.errors import DomainError
from confide.permissions.policy import Permission as P
from confide.visitor_activity import service as activity
from confide.visitor_activity.schemas import ActivityFilters, ActivitySettingsIn
from confide.web.api.deps import StateDep, operator_unit
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.filters import filtered_list, has_personal, list_redirect, query_back
from confide.web.dashboard.forms import messages, sentence, text
from confide.web.dashboard.templating import error_page, render
from confide.web.denials import record_denial
from confide.web.permits import needs

router = APIRouter(include_in_schema=False)
PATH = "/app/activity"
ACTIVITY_FILTERS = ("date_from", "date_to", "site_id", "visitor", "url")


@router.get(PATH, dependencies=[needs(P.VISITORS_READ)])
async def activity_list(request: Request, actor: PageOperator, state: StateDep) -> Response:
    if has_personal(request.query_params):  # an old link: move its personal fields out of the URL
        return list_redirect(request, actor, request.query_params, ACTIVITY_FILTERS, PATH)
    context = await filtered_list(
        request, actor, state, path=PATH, schema=ActivityFilters, keys=ACTIVITY_FILTERS, search=activity.search
    )
    if context["items"]:  # the read-access log, committed before the page is sent
        async with state.rt.db.unit_of_work() as uow:
            await activity.note_listed(state.rt, uow, actor, context["items"])
    site_names = {s["id"]: s["name"] for s in context["sites"]}
    return render(request, "activity.html", actor, nav="activity", site_names=site_names, **context)


@router.post(PATH, dependencies=[needs(P.VISITORS_READ)])
async def activity_search(request: Request, actor: PageOperator) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    return list_redirect(request, actor, form, ACTIVITY_FILTERS, PATH)


@router.get(PATH + "/visitors/{visitor_id}", dependencies=[needs(P.VISITORS_READ)])
async def activity_trail(visitor_id: str, request: Request, state: StateDep, actor: PageOperator) -> Response:
    async with operator_unit(request, write=True) as unit:  # the audit row commits with the read
        trail = await activity.visitor_trail(state.rt, unit.uow, unit.actor, visitor_id)
    back = query_back(request.query_params.get("back", ""), ACTIVITY_FILTERS)
    return render(
        request, "activity_trail.html", actor, nav="activity", trail=trail, back_url=PATH + (f"?{back}" if back else "")
    )


# -- Settings -> Sites -> Visitor activity
SETTINGS_PATH = "/app/settings/sites/{site_id}/activity"


@router.get(SETTINGS_PATH, dependencies=[needs(P.SETTINGS_READ)])
async def activity_settings(site_id: str, request: Request, actor: PageOperator) -> Response:
    async with operator_unit(request, write=False) as (uow, me):
        data = await activity.settings_for(uow, me, site_id)
    saved = "Visitor activity settings saved." if request.query_params.get("saved") else None
    return render(request, "settings_activity.html", actor, nav="settings", tab="sites", flash=saved,
                  form=data["settings"], site=data["site"], errors=[])


@router.post(SETTINGS_PATH, dependencies=[needs(P.SETTINGS_MANAGE)])
async def activity_settings_save(site_id: str, request: Request, state: StateDep, actor: PageOperator) -> Response:
    form = await request.form()
    values = {k: text(form, k) for k in ("basis", "justification", "ip_mode", "ua_mode")}
    try:
        body = ActivitySettingsIn.model_validate(values)
        async with operator_unit(request, write=True) as (uow, me):
            await activity.save_settings(state.rt, uow, me, site_id, body)
    except (ValidationError, DomainError) as exc:
        if isinstance(exc, DomainError) and exc.status == 403:
            await record_denial(request, exc)
            return render(request, "admin_only.html", actor, status_code=403, nav="settings")
        if isinstance(exc, DomainError) and exc.status == 404:
            return error_page(request, actor, 404, sentence(exc.message), nav="settings")
        problems = messages(exc) if isinstance(exc, ValidationError) else [sentence(exc.message)]
        async with operator_unit(request, write=False) as (uow, me):
            data = await activity.settings_for(uow, me, site_id)
        return render(request, "settings_activity.html", actor, nav="settings", tab="sites", status_code=422,
                      form=values, site=data["site"], errors=problems)
    return RedirectResponse(SETTINGS_PATH.format(site_id=site_id) + "?saved=1", status_code=303)
