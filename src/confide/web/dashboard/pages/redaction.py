"""Settings → Redaction: per site, what is masked at ingest (payment card numbers, IBANs, custom
patterns) and whether the originals are kept (``settings.read`` to see, ``settings.manage`` to
change). A form that does not validate (a pattern that does not compile, matches the empty string
or is too slow) is shown again with what was typed and why; nothing is saved then."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from confide.auth.actors import OperatorActor
from confide.core.errors import DomainError
from confide.permissions.policy import Permission, allows
from confide.permissions.policy import Permission as P
from confide.redaction import service as redaction
from confide.redaction.detectors import PATTERNS_MAX
from confide.redaction.schemas import PolicyIn
from confide.web.api.deps import StateDep, operator_unit
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.forms import FormInvalid, messages, sentence, text
from confide.web.dashboard.templating import error_page, render
from confide.web.permits import needs

router = APIRouter(include_in_schema=False)
PATH = "/app/settings/redaction"
ORIGINALS_PATH = "/app/chats/{conversation_id}/redacted"
BLANK_PATTERNS = 2


def _shape(view: dict[str, Any]) -> dict[str, Any]:
    return {
        "cards": view["cards"],
        "ibans": view["ibans"],
        "keep_originals": view["keep_originals"],
        "patterns": [dict(p) for p in view["patterns"]],
    }


def _shape_from_form(form: FormData) -> dict[str, Any]:
    try:
        count = min(PATTERNS_MAX + BLANK_PATTERNS, max(0, int(text(form, "p-count") or 0)))
    except ValueError:
        count = 0
    patterns = []
    for i in range(count):
        row = {
            "name": text(form, f"p-{i}-name").strip()[:100],
            "regex": text(form, f"p-{i}-regex")[:1000],
            "enabled": bool(text(form, f"p-{i}-enabled")),
        }
        if text(form, f"p-{i}-remove") or not (row["name"] or row["regex"]):
            continue
        patterns.append(row)
    return {
        "cards": bool(text(form, "cards")),
        "ibans": bool(text(form, "ibans")),
        "keep_originals": bool(text(form, "keep_originals")),
        "patterns": patterns,
    }


def _payload(shape: dict[str, Any]) -> PolicyIn:
    try:
        return PolicyIn.model_validate(shape)
    except ValidationError as exc:
        raise FormInvalid(messages(exc)) from None


async def _page(
    request: Request,
    actor: OperatorActor,
    *,
    failed: tuple[str, dict[str, Any], list[str]] | None = None,
    status_code: int = 200,
) -> Response:
    try:
        async with operator_unit(request, write=False) as (uow, actor):
            sites = await redaction.overview(uow, actor)
    except DomainError as exc:
        if exc.status == 403:
            return render(request, "admin_only.html", actor, status_code=403, nav="settings")
        return error_page(request, actor, exc.status, sentence(exc.message), nav="settings")

    def form(view: dict[str, Any]) -> dict[str, Any]:
        key = f"site-{view['site_id']}"
        if failed is not None and failed[0] == key:
            shape, errors, is_open = failed[1], failed[2], True
        else:
            shape, errors, is_open = _shape(view), [], False
        blank = {"name": "", "regex": "", "enabled": True}
        return {
            "key": key,
            "site": view["site"],
            "view": view,
            "errors": errors,
            "open": is_open,
            "shape": shape,
            "patterns": [*shape["patterns"], *([blank] * BLANK_PATTERNS)],
        }

    saved = request.query_params.get("saved")
    context = {
        "nav": "settings",
        "tab": "redaction",
        "flash": "Redaction saved." if saved == "1" and failed is None else None,
        "sites": [form(v) for v in sites],
        "can_manage": allows(actor, Permission.SETTINGS_MANAGE),
    }
    return render(request, "settings_redaction.html", actor, status_code=status_code, **context)


@router.get(PATH, dependencies=[needs(P.SETTINGS_READ)])
async def redaction_page(request: Request, actor: PageOperator) -> Response:
    return await _page(request, actor)


@router.post(PATH + "/{site_id}", dependencies=[needs(P.SETTINGS_MANAGE)])
async def redaction_save(site_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    shape = _shape_from_form(await request.form())
    key = f"site-{site_id}"[:100]
    try:
        body = _payload(shape)
        async with operator_unit(request, write=True) as (uow, actor):
            await redaction.set_policy(state.rt, uow, actor, site_id, body)
    except FormInvalid as exc:
        return await _page(request, actor, failed=(key, shape, exc.messages), status_code=422)
    except DomainError as exc:
        if exc.status == 403:
            return render(request, "admin_only.html", actor, status_code=403, nav="settings")
        if exc.status == 404:
            return error_page(request, actor, 404, sentence(exc.message), nav="settings")
        return await _page(request, actor, failed=(key, shape, [sentence(exc.message)]), status_code=exc.status)
    return RedirectResponse(f"{PATH}?saved=1#{key}", status_code=303)


@router.get(ORIGINALS_PATH, dependencies=[needs(P.CHATS_VIEW_REDACTED)])
async def chat_originals(conversation_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    """The originals of what was masked in one conversation (``chats.view_redacted``; the service
    audits the view in this write unit, before the page is sent)."""
    try:
        async with operator_unit(request, write=True) as (uow, actor):
            items = await redaction.originals_of_conversation(state.rt, uow, actor, conversation_id)
    except DomainError as exc:
        return error_page(request, actor, exc.status, sentence(exc.message), nav="chats")
    return render(
        request, "redacted_originals.html", actor, nav="chats", items=items, conversation_id=conversation_id
    )
