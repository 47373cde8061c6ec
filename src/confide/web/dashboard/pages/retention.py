"""Retention and the record of processing in the back office (ADR 0030).

- ``/app/retention`` (``retention.manage``): each category's period, the configured default, the
  workspace's and each site's override (a number of days, "forever", or empty for "as the level
  above"); the legal holds, placing one (a person by visitor id, or a conversation, with a reason)
  and lifting one (with a reason). Every change is audited by the service.
- ``/app/privacy/ropa`` (``consent.manage``: the record of processing is the privacy officer's
  document; the service also accepts ``settings.read``, but a route declares one permission):
  the record on a page, with downloads in Markdown, CSV and PDF (a 409 with a sentence when the
  PDF's font is not installed).

A form that does not validate (negative or huge days, not a number, an unknown category or site, a
missing reason) is shown again with why, status 422 (or 404 for a foreign id); nothing is saved.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from confide.auth.actors import OperatorActor
from confide.core.errors import DomainError
from confide.permissions.policy import Permission as P
from confide.retention import service as retention
from confide.retention.categories import MAX_DAYS
from confide.retention.schemas import HoldIn, LiftIn, PolicyIn
from confide.ropa import model as ropa
from confide.ropa import render as ropa_render
from confide.web.api.deps import StateDep, get_state, operator_unit
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.forms import FormInvalid, errors, sentence, text
from confide.web.dashboard.templating import error_page, render
from confide.web.permits import needs

router = APIRouter(include_in_schema=False)
PATH = "/app/retention"
ROPA_PATH = "/app/privacy/ropa"
FIELDS = ("scope", "category", "days", "target_type", "target_id", "reason")
FLASHES = {"policy": "Retention period saved.", "hold": "Legal hold placed.", "lifted": "Legal hold lifted."}


def _days(raw: str) -> int | None:
    """A period as typed: a whole number of days, "forever" (0), or empty (remove the override)."""
    value = raw.strip().lower()
    if value == "":
        return None
    if value in ("forever", "keep forever", "0"):
        return 0
    if not value.isdigit() or len(value) > 6:
        raise FormInvalid([f"Days: enter a whole number of days from 1 to {MAX_DAYS}, \"forever\", or leave it "
                           "empty to use the level above."])
    return int(value)


def _denied(request: Request, actor: OperatorActor, exc: DomainError) -> Response:
    if exc.status == 403:
        return render(request, "admin_only.html", actor, status_code=403, nav="retention")
    return error_page(request, actor, exc.status, sentence(exc.message), nav="retention")


async def _page(
    request: Request, actor: OperatorActor, *, problems: list[str] | None = None, status_code: int = 200,
    typed: dict[str, str] | None = None,
) -> Response:
    state = get_state(request)
    try:
        async with operator_unit(request, write=True) as (uow, actor):  # the holds list is read-audited
            view = await retention.overview(state.rt, uow, actor)
    except DomainError as exc:
        return _denied(request, actor, exc)
    flash = FLASHES.get(request.query_params.get("saved", "")) if problems is None else None
    return render(request, "retention.html", actor, status_code=status_code, nav="retention", view=view,
                  errors=problems or [], flash=flash, typed={k: "" for k in FIELDS} | (typed or {}))


@router.get(PATH, dependencies=[needs(P.RETENTION_MANAGE)])
async def retention_page(request: Request, actor: PageOperator) -> Response:
    return await _page(request, actor)


async def _submit(request: Request, actor: OperatorActor, state: StateDep, what: str, work: Any) -> Response:
    form = await request.form()
    typed = {k: text(form, k)[:600] for k in FIELDS}
    try:
        async with operator_unit(request, write=True) as (uow, actor):
            await work(uow, actor, form)
    except (FormInvalid, ValidationError) as exc:
        return await _page(request, actor, problems=errors(exc), status_code=422, typed=typed)
    except DomainError as exc:
        if exc.status == 403:
            return _denied(request, actor, exc)
        return await _page(request, actor, problems=errors(exc), status_code=exc.status, typed=typed)
    return RedirectResponse(f"{PATH}?saved={what}", status_code=303)


@router.post(PATH + "/policy", dependencies=[needs(P.RETENTION_MANAGE)])
async def retention_policy_save(request: Request, actor: PageOperator, state: StateDep) -> Response:
    async def work(uow: Any, actor: OperatorActor, form: Any) -> None:
        data = PolicyIn.model_validate(
            {"scope": text(form, "scope"), "category": text(form, "category"), "days": _days(text(form, "days"))}
        )
        await retention.set_policy(state.rt, uow, actor, data)

    return await _submit(request, actor, state, "policy", work)


@router.post(PATH + "/holds", dependencies=[needs(P.RETENTION_MANAGE)])
async def retention_hold_place(request: Request, actor: PageOperator, state: StateDep) -> Response:
    async def work(uow: Any, actor: OperatorActor, form: Any) -> None:
        data = HoldIn.model_validate({k: text(form, k) for k in ("target_type", "target_id", "reason")})
        await retention.place_hold(state.rt, uow, actor, data)

    return await _submit(request, actor, state, "hold", work)


@router.post(PATH + "/holds/{hold_id}/lift", dependencies=[needs(P.RETENTION_MANAGE)])
async def retention_hold_lift(hold_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    async def work(uow: Any, actor: OperatorActor, form: Any) -> None:
        data = LiftIn.model_validate({"reason": text(form, "reason")})
        await retention.lift_hold(state.rt, uow, actor, hold_id, data)

    return await _submit(request, actor, state, "lifted", work)


# ---------------------------------------------------------------- the record of processing
async def _record(request: Request, actor: OperatorActor, state: StateDep) -> dict[str, Any]:
    async with operator_unit(request, write=False) as (uow, actor):
        return await ropa.for_actor(state.rt, uow, actor)


@router.get(ROPA_PATH, dependencies=[needs(P.CONSENT_MANAGE)])
async def ropa_page(request: Request, actor: PageOperator, state: StateDep) -> Response:
    try:
        record = await _record(request, actor, state)
    except DomainError as exc:
        return _denied(request, actor, exc)
    return render(request, "ropa.html", actor, nav="retention", record=record, formats=ropa_render.FORMATS)


@router.get(ROPA_PATH + "/download/{fmt}", dependencies=[needs(P.CONSENT_MANAGE)])
async def ropa_download(fmt: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    if fmt not in ropa_render.FORMATS:
        return error_page(request, actor, 404, "Formats: md, csv or pdf.", nav="retention")
    try:
        record = await _record(request, actor, state)
        data, content_type, name = await asyncio.to_thread(ropa_render.render, record, fmt)
    except DomainError as exc:
        return _denied(request, actor, exc)
    except ropa_render.PdfUnavailable as exc:
        return error_page(request, actor, 409, sentence(str(exc)), nav="retention")
    return Response(data, media_type=content_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})
