"""Prospects: the filtered list (the text filter sealed out of URLs, ADR 7), creating one (by hand or
from an offline request), a prospect's page with its edit form, delete, the person's objection, and
the per-site settings (Settings → Prospects)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from confide.audit import service as audit
from confide.permissions.policy import Permission as P
from confide.prospects import service as prospects
from confide.prospects.schemas import ProspectFilters, ProspectIn, ProspectPatch, ProspectSettingsIn
from confide.web.api.deps import StateDep, operator_unit
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.filters import PROSPECT_FILTERS, filtered_list, has_personal, list_redirect, query_back
from confide.web.dashboard.forms import messages, text
from confide.web.dashboard.templating import error_page, render
from confide.web.permits import needs

router = APIRouter(include_in_schema=False)
PATH = "/app/prospects"
SETTINGS_PATH = "/app/settings/prospects"
STATUSES = (("new", "New"), ("contacted", "Contacted"), ("qualified", "Qualified"), ("won", "Won"), ("lost", "Lost"))
SOURCES = (("chat", "Chat"), ("offline_request", "Offline request"), ("manual", "Entered by hand"),
           ("automatic", "Automatic"))
DONE = {
    "created": "Prospect added.",
    "saved": "Prospect saved.",
    "deleted": "Prospect deleted.",
    "objection": "The objection is recorded: no prospect will be created automatically for this e-mail address.",
}
_CREATE_KEYS = ("offline_request_id", "conversation_id", "site_id", "department_id", "name", "email", "phone",
                "company", "status", "value", "currency", "owner_id", "notes")
_EDIT_KEYS = ("version", "status", "value", "currency", "owner_id", "notes", "name", "email", "phone", "company")


def _form_values(form: FormData, keys: tuple[str, ...], *, keep_empty: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The submitted fields; an empty field is left out, except those in ``keep_empty`` (cleared)."""
    out: dict[str, Any] = {}
    for key in keys:
        if key not in form:
            continue
        value = text(form, key).strip()
        if value or key in keep_empty:
            out[key] = value or None
    return out


def _parse(model: type[BaseModel], values: dict[str, Any]) -> Any:
    return model.model_validate(values)


@router.get(PATH, dependencies=[needs(P.PROSPECTS_READ)])
async def prospect_list(request: Request, actor: PageOperator, state: StateDep) -> Response:
    if has_personal(request.query_params):  # an old link: move its personal fields out of the URL
        return list_redirect(request, actor, request.query_params, PROSPECT_FILTERS, PATH)
    context = await filtered_list(
        request, actor, state, path=PATH, schema=ProspectFilters, keys=PROSPECT_FILTERS, search=prospects.search
    )
    if context["items"]:  # the read-access log: one row per prospect shown, committed before the page is sent
        async with state.rt.db.unit_of_work() as uow:
            for item in context["items"]:
                await audit.record(state.rt, uow, "prospects.viewed", actor=actor, target_type="prospect",
                                   target_id=item["id"], detail={"via": "prospects_list"})
    flash = DONE.get(request.query_params.get("done", ""))
    return render(request, "prospects.html", actor, nav="prospects", flash=flash, statuses=STATUSES,
                  sources=SOURCES, **context)


@router.post(PATH, dependencies=[needs(P.PROSPECTS_READ)])
async def prospect_search(request: Request, actor: PageOperator) -> Response:
    """The filter form: the text filter is sealed, the rest goes into the URL."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    return list_redirect(request, actor, form, PROSPECT_FILTERS, PATH)


@router.post(PATH + "/new", dependencies=[needs(P.PROSPECTS_MANAGE)])
async def prospect_create(request: Request, state: StateDep, actor: PageOperator) -> Response:
    form = await request.form()
    try:
        data = _parse(ProspectIn, _form_values(form, _CREATE_KEYS))
    except ValidationError as exc:
        return error_page(request, actor, 422, " ".join(messages(exc)), title="The prospect was not added",
                          nav="prospects")
    async with operator_unit(request, write=True) as unit:
        created = await prospects.create(state.rt, unit.uow, unit.actor, data)
    return RedirectResponse(f"{PATH}/{created['id']}?done=created", status_code=303)


@router.get(PATH + "/{prospect_id}", dependencies=[needs(P.PROSPECTS_READ)])
async def prospect_page(prospect_id: str, request: Request, state: StateDep, actor: PageOperator) -> Response:
    # A write unit: the read-access log row commits with the read, before the page is sent.
    async with operator_unit(request, write=True) as unit:
        prospect = await prospects.open_prospect(state.rt, unit.uow, unit.actor, prospect_id, via="prospect_page")
        owners = await prospects.owner_choices(unit.uow, unit.actor)
    back = query_back(request.query_params.get("back", ""), PROSPECT_FILTERS)
    return render(request, "prospect.html", actor, nav="prospects", p=prospect, owners=owners, statuses=STATUSES,
                  back=back, back_url=PATH + (f"?{back}" if back else ""),
                  flash=DONE.get(request.query_params.get("done", "")))


@router.post(PATH + "/{prospect_id}", dependencies=[needs(P.PROSPECTS_MANAGE)])
async def prospect_edit(prospect_id: str, request: Request, state: StateDep, actor: PageOperator) -> Response:
    form = await request.form()
    values = _form_values(form, _EDIT_KEYS, keep_empty=frozenset({"value", "owner_id", "notes", "name", "email",
                                                                   "phone", "company"}))
    try:
        patch = _parse(ProspectPatch, values)
    except ValidationError as exc:
        return error_page(request, actor, 422, " ".join(messages(exc)), title="The prospect was not saved",
                          nav="prospects")
    async with operator_unit(request, write=True) as unit:
        await prospects.update(state.rt, unit.uow, unit.actor, prospect_id, patch)
    back = query_back(text(form, "back"), PROSPECT_FILTERS)
    query = urlencode({"done": "saved", **({"back": back} if back else {})})
    return RedirectResponse(f"{PATH}/{prospect_id}?{query}", status_code=303)


@router.post(PATH + "/{prospect_id}/delete", dependencies=[needs(P.PROSPECTS_MANAGE)])
async def prospect_delete(prospect_id: str, request: Request, state: StateDep, _: PageOperator) -> Response:
    form = await request.form()
    async with operator_unit(request, write=True) as unit:
        await prospects.remove(state.rt, unit.uow, unit.actor, prospect_id)
    back = query_back(text(form, "back"), PROSPECT_FILTERS)
    query = "&".join(q for q in (back, urlencode({"done": "deleted"})) if q)
    return RedirectResponse(f"{PATH}?{query}", status_code=303)


@router.post(PATH + "/{prospect_id}/objection", dependencies=[needs(P.PROSPECTS_MANAGE)])
async def prospect_objection(prospect_id: str, request: Request, state: StateDep, _: PageOperator) -> Response:
    async with operator_unit(request, write=True) as unit:
        await prospects.object_for_prospect(state.rt, unit.uow, unit.actor, prospect_id)
    return RedirectResponse(f"{PATH}/{prospect_id}?done=objection", status_code=303)


@router.get(SETTINGS_PATH, dependencies=[needs(P.SETTINGS_READ)])
async def prospect_settings(request: Request, state: StateDep, actor: PageOperator) -> Response:
    async with operator_unit(request, write=False) as unit:
        rows = await prospects.list_settings(unit.uow, unit.actor)
    flash = "Prospect settings saved." if request.query_params.get("saved") else None
    return render(request, "settings_prospects.html", actor, nav="settings", rows=rows, flash=flash)


@router.post(SETTINGS_PATH + "/{site_id}", dependencies=[needs(P.SETTINGS_MANAGE)])
async def prospect_settings_save(site_id: str, request: Request, state: StateDep, actor: PageOperator) -> Response:
    form = await request.form()
    try:
        data = ProspectSettingsIn(
            auto_create=text(form, "auto_create") == "1",
            basis=text(form, "basis") or "consent",  # validated by the model
            interest_note=text(form, "interest_note"),
            currency=text(form, "currency").strip().upper() or "EUR",
        )
    except ValidationError as exc:
        return error_page(request, actor, 422, " ".join(messages(exc)), title="The settings were not saved",
                          nav="settings")
    async with operator_unit(request, write=True) as unit:
        await prospects.update_settings(state.rt, unit.uow, unit.actor, site_id, data)
    return RedirectResponse(f"{SETTINGS_PATH}?saved=1#site-{site_id}", status_code=303)
