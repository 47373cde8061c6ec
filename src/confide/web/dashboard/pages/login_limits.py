"""Settings → Security → Login limits: allowed address ranges and weekly time windows, per role
and per operator (``settings.read`` to see, ``settings.manage`` to change). A form that does not
validate is shown again with what was typed and why; nothing is saved then."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from confide.auth.actors import OperatorActor
from confide.core.errors import DomainError
from confide.login_limits import service as login_limits
from confide.login_limits.rules import DAY_NAMES, DAYS, known_timezones
from confide.login_limits.schemas import MAX_WINDOWS, LoginLimitsIn
from confide.permissions.policy import Permission, allows
from confide.permissions.policy import Permission as P
from confide.web.api.deps import StateDep, operator_unit
from confide.web.client_address import client_address
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.forms import FormInvalid, sentence, text
from confide.web.dashboard.templating import error_page, render
from confide.web.permits import needs

router = APIRouter(include_in_schema=False)
PATH = "/app/settings/security/login-limits"
BLANK_WINDOWS = 2  # empty rows offered under the existing windows
_LABELS = {"ranges": "Allowed networks", "windows": "Window", "timezone": "Time zone", "days": "days"}


def _shape(view: dict[str, Any]) -> dict[str, Any]:
    """A subject's limits as its form shows them."""
    windows = [dict(w) for w in view["windows"]]
    return {"ranges": "\n".join(view["ranges"]), "timezone": view["timezone"], "windows": windows}


def _shape_from_form(form: FormData) -> dict[str, Any]:
    try:
        count = min(MAX_WINDOWS + BLANK_WINDOWS, max(0, int(text(form, "w-count") or 0)))
    except ValueError:
        count = 0
    windows = []
    for i in range(count):
        row = {
            "days": [d for d in form.getlist(f"w-{i}-days") if isinstance(d, str)][:7],
            "start": text(form, f"w-{i}-start").strip(),
            "end": text(form, f"w-{i}-end").strip(),
            "overnight": bool(text(form, f"w-{i}-overnight")),
        }
        if text(form, f"w-{i}-remove") or not (row["days"] or row["start"] or row["end"]):
            continue  # removed, or a blank row left blank
        windows.append(row)
    return {
        "ranges": text(form, "ranges")[:5000],
        "timezone": text(form, "timezone").strip() or "UTC",
        "windows": windows,
    }


def _messages(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = [str(p + 1) if isinstance(p, int) else _LABELS.get(str(p), str(p)) for p in err.get("loc", ())]
        msg = str(err.get("msg", "is not valid")).removeprefix("Value error, ")
        if err.get("type") == "too_long":
            msg = f"at most {(err.get('ctx') or {}).get('max_length')} entries"
        out.append(sentence(f"{' '.join(loc)}: {msg}" if loc else msg))
    return out


def _payload(shape: dict[str, Any]) -> LoginLimitsIn:
    ranges = [part.strip() for line in str(shape["ranges"]).splitlines() for part in line.split(",") if part.strip()]
    try:
        return LoginLimitsIn.model_validate(
            {"ranges": ranges, "timezone": shape["timezone"], "windows": shape["windows"]}
        )
    except ValidationError as exc:
        raise FormInvalid(_messages(exc)) from None


async def _page(
    request: Request,
    actor: OperatorActor,
    *,
    failed: tuple[str, dict[str, Any], list[str]] | None = None,
    status_code: int = 200,
) -> Response:
    try:
        async with operator_unit(request, write=False) as (uow, actor):
            data = await login_limits.overview(uow, actor)
    except DomainError as exc:
        if exc.status == 403:
            return render(request, "admin_only.html", actor, status_code=403, nav="settings")
        return error_page(request, actor, exc.status, sentence(exc.message), nav="settings")

    def form(subject: dict[str, Any]) -> dict[str, Any]:
        key = f"{subject['type']}-{subject['id']}"
        if failed is not None and failed[0] == key:
            shape, errors, is_open = failed[1], failed[2], True
        else:
            shape, errors, is_open = _shape(subject), [], False
        blank = {"days": [], "start": "", "end": "", "overnight": False}
        rows = [*shape["windows"], *([blank] * BLANK_WINDOWS)]
        return {
            "key": key,
            "subject": subject,
            "errors": errors,
            "open": is_open,
            "ranges": shape["ranges"],
            "timezone": shape["timezone"],
            "windows": rows,
        }

    saved = request.query_params.get("saved")
    context = {
        "nav": "settings",
        "tab": "login-limits",
        "flash": "Login limits saved." if saved == "1" and failed is None else None,
        "roles": [form(s) for s in data["roles"]],
        "operators": [form(s) for s in data["operators"]],
        "days": [(d, DAY_NAMES[d]) for d in DAYS],
        "timezones": sorted(known_timezones()),
        "my_address": client_address(request),
        "can_manage": allows(actor, Permission.SETTINGS_MANAGE),
    }
    if failed is not None and failed[0] == "":
        context["flash"], context["flash_kind"] = " ".join(failed[2]), "error"
    return render(request, "settings_login_limits.html", actor, status_code=status_code, **context)


@router.get(PATH, dependencies=[needs(P.SETTINGS_READ)])
async def login_limits_page(request: Request, actor: PageOperator) -> Response:
    return await _page(request, actor)


@router.post(PATH + "/{subject_type}/{subject_id}", dependencies=[needs(P.SETTINGS_MANAGE)])
async def login_limits_save(
    subject_type: str, subject_id: str, request: Request, actor: PageOperator, state: StateDep
) -> Response:
    shape = _shape_from_form(await request.form())
    key = f"{subject_type}-{subject_id}"[:100]
    try:
        body = _payload(shape)
        async with operator_unit(request, write=True) as (uow, actor):
            await login_limits.set_limits(
                state.rt, uow, actor, subject_type, subject_id, body, address=client_address(request)
            )
    except FormInvalid as exc:
        return await _page(request, actor, failed=(key, shape, exc.messages), status_code=422)
    except DomainError as exc:
        if exc.status == 403:
            return render(request, "admin_only.html", actor, status_code=403, nav="settings")
        if exc.status == 404:
            return error_page(request, actor, 404, sentence(exc.message), nav="settings")
        return await _page(request, actor, failed=(key, shape, [sentence(exc.message)]), status_code=exc.status)
    return RedirectResponse(f"{PATH}?saved=1#{key}", status_code=303)
