"""Settings (administrators): sites (with their recent refused origins), departments, operators,
canned replies. A form that does not validate is shown again with what was typed and why.
Someone who may read the settings but not change them (``settings.read`` without
``settings.manage``: the Auditor) gets the same pages read-only, with no form for sites,
departments or canned replies (``can_manage``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from confide import directory
from confide.auth.actors import OperatorActor
from confide.core.errors import DomainError
from confide.permissions.policy import Permission as P
from confide.permissions.policy import allows
from confide.users import accounts as user_accounts
from confide.users.schemas import OperatorIn, OperatorPatch
from confide.web.api.deps import StateDep, operator_unit
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.forms import FormInvalid, errors, messages, rows, sentence, text
from confide.web.dashboard.templating import DAY_NAMES, error_page, render
from confide.web.denials import record_denial
from confide.web.permits import needs
from confide.web.state import State
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import (
    DAYS,
    CannedReplyIn,
    DepartmentIn,
    DepartmentPatch,
    SiteIn,
    SitePatch,
)

router = APIRouter(include_in_schema=False)


@dataclass
class Failed:
    """A form that did not validate: which one, what was typed, and why."""

    form_id: str
    values: dict[str, Any]
    errors: list[str] = field(default_factory=list)


SAVED = {
    "site": "Site saved.",
    "site-new": "Site created.",
    "dept": "Department saved.",
    "dept-new": "Department created.",
    "op": "Operator saved.",
    "op-new": "Operator created.",
    "op-disabled": "Operator disabled; their sessions ended.",
    "op-enabled": "Operator enabled.",
    "canned-new": "Canned reply added.",
    "canned-deleted": "Canned reply deleted.",
}


async def _settings_data(request: Request, tab: str) -> dict[str, Any]:
    async with operator_unit(request, write=False) as (uow, actor):
        data: dict[str, Any] = dict(
            await directory.settings_overview(uow, actor, operators=tab == "operators", canned=tab == "canned")
        )
        data["refused"] = await workspaces.refused_origins(uow, actor) if tab == "sites" else {}
        return data


async def _settings_page(
    request: Request,
    state: State,
    actor: OperatorActor,
    tab: str,
    *,
    failed: Failed | None = None,
    status_code: int = 200,
) -> Response:
    try:
        data = await _settings_data(request, tab)
    except DomainError as exc:
        if exc.status == 403:
            await record_denial(request, exc)  # audit: access.denied
            return render(request, "admin_only.html", actor, status_code=403, nav="settings")
        return error_page(request, actor, exc.status, sentence(exc.message), nav="settings")
    flash = SAVED.get(request.query_params.get("saved", "")) if failed is None else None
    site_names = {s["id"]: s["name"] for s in data["sites"]}
    dept_names = {
        d["id"]: f"{d['name']} ({site_names.get(d['site_id'], '?')})" if len(site_names) > 1 else d["name"]
        for d in data["departments"]
    }

    def pick(form_id: str, default: dict[str, Any]) -> dict[str, Any]:
        if failed is not None and failed.form_id == form_id:
            return {**failed.values, "errors": failed.errors, "open": True}
        return {**default, "errors": [], "open": False}

    context: dict[str, Any] = {
        "tab": tab,
        "nav": "settings",
        # Without settings.manage (an auditor) sites, departments and canned replies are shown read-only:
        # the templates read this flag and show no form for them.
        "can_manage": allows(actor, P.SETTINGS_MANAGE),
        "flash": flash,
        "site_names": site_names,
        "dept_names": dept_names,
        **data,
    }
    if tab == "sites":
        base = (state.rt.settings.public_url or str(request.base_url)).rstrip("/")
        context["base_url"] = base
        context["timezones"] = sorted(available_timezones())
        context["site_forms"] = [
            {
                "site": s,
                "form": pick(f"site-{s['id']}", _site_shape(s)),
                # data-color: the launcher has the site's colour from the first paint, with no request.
                "snippet": f'<script src="{base}/widget.js" data-site="{s["site_key"]}" data-color="{s["color"]}"'
                " async></script>",
                "refused": data["refused"].get(s["id"], []),
            }
            for s in data["sites"]
        ]
        context["new_site"] = pick("site-new", _site_shape(None))
    elif tab == "departments":
        context["dept_forms"] = [
            {"dept": d, "form": pick(f"dept-{d['id']}", {**d, "offer_timeout_s": str(d["offer_timeout_s"])})}
            for d in data["departments"]
        ]
        context["new_dept"] = pick(
            "dept-new", {"site_id": "", "name": "", "strategy": "round_robin", "offer_timeout_s": "30"}
        )
    elif tab == "operators":
        context["op_forms"] = [
            {
                "op": o,
                "form": pick(
                    f"op-{o['id']}",
                    {
                        "name": o["name"],
                        "role": o["role"],
                        "max_chats": str(o["max_chats"]),
                        "department_ids": o["department_ids"],
                    },
                ),
            }
            for o in data["operators"]
        ]
        context["new_op"] = pick(
            "op-new", {"email": "", "name": "", "role": "operator", "max_chats": "5", "department_ids": []}
        )
    elif tab == "canned":
        context["new_canned"] = pick("canned-new", {"shortcut": "", "title": "", "text": "", "department_id": ""})
    if failed is not None and not any(failed.form_id == f for f in _form_ids(context)):
        context["flash"], context["flash_kind"] = " ".join(failed.errors), "error"
    return render(request, f"settings_{tab}.html", actor, status_code=status_code, **context)


def _form_ids(context: Mapping[str, Any]) -> list[str]:
    ids = ["site-new", "dept-new", "op-new", "canned-new"]
    ids += [f"site-{f['site']['id']}" for f in context.get("site_forms", [])]
    ids += [f"dept-{f['dept']['id']}" for f in context.get("dept_forms", [])]
    ids += [f"op-{f['op']['id']}" for f in context.get("op_forms", [])]
    return ids


def _saved(path: str, key: str, anchor: str = "") -> Response:
    return RedirectResponse(f"{path}?saved={key}" + (f"#{anchor}" if anchor else ""), status_code=303)


async def _failed(
    request: Request, state: State, actor: OperatorActor, tab: str, form_id: str, values: dict[str, Any], exc: Exception
) -> Response:
    status_code = exc.status if isinstance(exc, DomainError) else 422
    if status_code == 403:
        await record_denial(request, exc)  # audit: access.denied
        return render(request, "admin_only.html", actor, status_code=403, nav="settings")
    return await _settings_page(
        request, state, actor, tab, failed=Failed(form_id, values, errors(exc)), status_code=status_code
    )


@router.get("/app/settings", dependencies=[needs(P.SETTINGS_READ)])
async def settings_sites(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _settings_page(request, state, actor, "sites")


@router.get("/app/settings/departments", dependencies=[needs(P.SETTINGS_READ)])
async def settings_departments(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _settings_page(request, state, actor, "departments")


@router.get("/app/settings/operators", dependencies=[needs(P.SETTINGS_READ)])
async def settings_operators(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _settings_page(request, state, actor, "operators")


@router.get("/app/settings/canned", dependencies=[needs(P.SETTINGS_READ)])
async def settings_canned(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _settings_page(request, state, actor, "canned")


# -- sites
def _site_shape(view: Mapping[str, Any] | None) -> dict[str, Any]:
    """A site as the form shows it (text in inputs); ``None``: the blank form for a new site."""
    if view is None:
        view = {
            "name": "",
            "allowed_origins": [],
            "privacy_policy_url": "",
            "greeting": "",
            "color": "#2563eb",
            "timezone": "UTC",
            "business_hours": None,
            "prechat_fields": workspaces.DEFAULT_PRECHAT,
            "purposes": [],
        }
    hours = view.get("business_hours") or {}
    return {
        "name": view["name"],
        "origins": "\n".join(view["allowed_origins"]),
        "privacy_policy_url": view["privacy_policy_url"],
        "greeting": view["greeting"],
        "color": view["color"],
        "timezone": view["timezone"],
        "always_open": not view.get("business_hours"),
        "hours": {d: ", ".join(f"{a}-{b}" for a, b in hours.get(d, [])) for d in DAYS},
        "fields": [
            {
                "key": f.get("key", ""),
                "label": f.get("label", ""),
                "type": f.get("type", "text"),
                "required": bool(f.get("required")),
                "options": ", ".join(f.get("options") or []),
            }
            for f in view["prechat_fields"]
        ],
        "purposes": [
            {"key": p.get("key", ""), "label": p.get("label", ""), "version": p.get("version", "1")}
            for p in view["purposes"]
        ],
    }


def _site_shape_from_form(form: FormData) -> dict[str, Any]:
    return {
        "name": text(form, "name").strip(),
        "origins": text(form, "origins"),
        "privacy_policy_url": text(form, "privacy_policy_url").strip(),
        "greeting": text(form, "greeting").strip(),
        "color": text(form, "color").strip(),
        "timezone": text(form, "timezone").strip(),
        "always_open": bool(text(form, "always_open")),
        "hours": {d: text(form, f"hours-{d}").strip() for d in DAYS},
        "fields": rows(form, "pf", ("key", "label", "type", "options"), flags=("required",)),
        "purposes": rows(form, "pp", ("key", "label", "version")),
    }


_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–—]\s*(\d{1,2}):(\d{2})\s*$")


def _span(day: str, text: str) -> list[str]:
    """ "9:00-17:00" -> ["09:00", "17:00"]; the schema checks the times themselves."""
    match = _SPAN.match(text)
    if not match:
        raise ValueError(f"Opening hours on {DAY_NAMES[day]}: “{text.strip()[:40]}” is not a span like 09:00-17:00.")
    h1, m1, h2, m2 = match.groups()
    return [f"{int(h1):02d}:{m1}", f"{int(h2):02d}:{m2}"]


def _site_payload(shape: Mapping[str, Any]) -> dict[str, Any]:
    """The form as SiteIn/SitePatch data; validates it as a whole site (FormInvalid lists every problem)."""
    problems: list[str] = []
    hours: dict[str, list[list[str]]] | None = None
    if not shape["always_open"]:
        hours = {}
        for day, text in shape["hours"].items():
            spans = []
            for part in (p for p in text.split(",") if p.strip()):
                try:
                    spans.append(_span(day, part))
                except ValueError as exc:
                    problems.append(str(exc))
            if spans:
                hours[day] = spans
        if not hours and not problems:
            problems.append("Opening hours: enter the hours of at least one day, or choose “Always open”.")
    payload = {
        "name": shape["name"],
        "allowed_origins": [line.strip() for line in str(shape["origins"]).splitlines() if line.strip()],
        "prechat_fields": [
            {
                "key": f["key"],
                "label": f["label"],
                "type": f["type"] or "text",
                "required": f["required"],
                "options": [o.strip() for o in f["options"].split(",") if o.strip()],
            }
            for f in shape["fields"]
        ],
        "purposes": [{"key": p["key"], "label": p["label"], "version": p["version"] or "1"} for p in shape["purposes"]],
        "privacy_policy_url": shape["privacy_policy_url"],
        "greeting": shape["greeting"],
        "color": shape["color"] or "#2563eb",
        "timezone": shape["timezone"] or "UTC",
        "business_hours": hours or None,
    }
    try:
        SiteIn.model_validate(payload)  # the whole site must be valid (unique keys, URL scheme, zone)
    except ValidationError as exc:
        problems += messages(exc)
    if problems:
        raise FormInvalid(problems)
    return payload


@router.post("/app/settings/sites", dependencies=[needs(P.SETTINGS_MANAGE)])
async def settings_site_create(request: Request, actor: PageOperator, state: StateDep) -> Response:
    shape = _site_shape_from_form(await request.form())
    try:
        body = SiteIn.model_validate(_site_payload(shape))
        async with operator_unit(request, write=True) as (uow, actor):
            site = await workspaces.admin_create_site(uow, actor, body)
    except (ValueError, DomainError) as exc:
        return await _failed(request, state, actor, "sites", "site-new", shape, exc)
    return _saved("/app/settings", "site-new", f"site-{site.id}")


@router.post("/app/settings/sites/{site_id}", dependencies=[needs(P.SETTINGS_MANAGE)])
async def settings_site_update(site_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    shape = _site_shape_from_form(await request.form())
    try:
        patch = SitePatch.model_validate({**_site_payload(shape), "always_open": shape["always_open"]})
        async with operator_unit(request, write=True) as (uow, actor):
            await workspaces.update_site(uow, actor, site_id, patch)
    except (ValueError, DomainError) as exc:
        return await _failed(request, state, actor, "sites", f"site-{site_id}", shape, exc)
    return _saved("/app/settings", "site", f"site-{site_id}")


# -- departments
def _dept_shape(form: FormData) -> dict[str, Any]:
    return {
        "site_id": text(form, "site_id"),
        "name": text(form, "name").strip(),
        "strategy": text(form, "strategy"),
        "offer_timeout_s": text(form, "offer_timeout_s").strip(),
    }


@router.post("/app/settings/departments", dependencies=[needs(P.SETTINGS_MANAGE)])
async def settings_department_create(request: Request, actor: PageOperator, state: StateDep) -> Response:
    shape = _dept_shape(await request.form())
    try:
        body = DepartmentIn.model_validate(shape)
        async with operator_unit(request, write=True) as (uow, actor):
            dept = await workspaces.admin_create_department(uow, actor, body)
    except (ValueError, DomainError) as exc:
        return await _failed(request, state, actor, "departments", "dept-new", shape, exc)
    return _saved("/app/settings/departments", "dept-new", f"dept-{dept.id}")


@router.post("/app/settings/departments/{department_id}", dependencies=[needs(P.SETTINGS_MANAGE)])
async def settings_department_update(
    department_id: str, request: Request, actor: PageOperator, state: StateDep
) -> Response:
    shape = _dept_shape(await request.form())
    try:
        patch = DepartmentPatch.model_validate({k: shape[k] for k in ("name", "strategy", "offer_timeout_s")})
        async with operator_unit(request, write=True) as (uow, actor):
            await workspaces.update_department(uow, actor, department_id, patch)
    except (ValueError, DomainError) as exc:
        return await _failed(request, state, actor, "departments", f"dept-{department_id}", shape, exc)
    return _saved("/app/settings/departments", "dept", f"dept-{department_id}")


# -- operators
def _operator_shape(form: FormData) -> dict[str, Any]:
    return {
        "email": text(form, "email").strip(),
        "name": text(form, "name").strip(),
        "role": text(form, "role"),
        "max_chats": text(form, "max_chats").strip(),
        "department_ids": [v for v in form.getlist("department_ids") if isinstance(v, str)],
    }


@router.post("/app/settings/operators", dependencies=[needs(P.USERS_MANAGE)])
async def settings_operator_create(request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    shape = _operator_shape(form)
    try:
        body = OperatorIn.model_validate({**shape, "password": text(form, "password")})
        hashed = await state.rt.passwords.hash_async(body.password)  # off the loop, before the unit
        async with operator_unit(request, write=True) as (uow, actor):
            op = await user_accounts.admin_create_operator(state.rt, uow, actor, body, password_hash=hashed)
    except (ValueError, DomainError) as exc:
        return await _failed(request, state, actor, "operators", "op-new", shape, exc)
    return _saved("/app/settings/operators", "op-new", f"op-{op.id}")


@router.post("/app/settings/operators/{operator_id}", dependencies=[needs(P.USERS_MANAGE)])
async def settings_operator_update(
    operator_id: str, request: Request, actor: PageOperator, state: StateDep
) -> Response:
    form = await request.form()
    shape = _operator_shape(form)
    data: dict[str, Any] = {k: shape[k] for k in ("name", "role", "max_chats", "department_ids")}
    if text(form, "password"):
        data["password"] = text(form, "password")
    try:
        patch = OperatorPatch.model_validate(data)
        hashed = await state.rt.passwords.hash_async(patch.password) if patch.password else None
        async with operator_unit(request, write=True) as (uow, actor):
            await user_accounts.update_operator(state.rt, uow, actor, operator_id, patch, password_hash=hashed)
    except (ValueError, DomainError) as exc:
        return await _failed(request, state, actor, "operators", f"op-{operator_id}", shape, exc)
    return _saved("/app/settings/operators", "op", f"op-{operator_id}")


@router.post("/app/settings/operators/{operator_id}/disabled", dependencies=[needs(P.USERS_MANAGE)])
async def settings_operator_disable(
    operator_id: str, request: Request, actor: PageOperator, state: StateDep
) -> Response:
    disabled = text(await request.form(), "disabled") == "1"
    try:
        async with operator_unit(request, write=True) as (uow, actor):
            await user_accounts.update_operator(state.rt, uow, actor, operator_id, OperatorPatch(disabled=disabled))
    except DomainError as exc:
        return await _failed(request, state, actor, "operators", "", {}, exc)
    return _saved("/app/settings/operators", "op-disabled" if disabled else "op-enabled", f"op-{operator_id}")


# -- canned replies
@router.post("/app/settings/canned", dependencies=[needs(P.SETTINGS_MANAGE)])
async def settings_canned_create(request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    shape = {
        "shortcut": text(form, "shortcut").strip().lstrip("/"),
        "title": text(form, "title").strip(),
        "text": text(form, "text").strip(),
        "department_id": text(form, "department_id"),
    }
    try:
        body = CannedReplyIn.model_validate({**shape, "department_id": shape["department_id"] or None})
        async with operator_unit(request, write=True) as (uow, actor):
            await workspaces.create_canned_reply(uow, actor, body)
    except (ValueError, DomainError) as exc:
        return await _failed(request, state, actor, "canned", "canned-new", shape, exc)
    return _saved("/app/settings/canned", "canned-new")


@router.post("/app/settings/canned/{reply_id}/delete", dependencies=[needs(P.SETTINGS_MANAGE)])
async def settings_canned_delete(reply_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    try:
        async with operator_unit(request, write=True) as (uow, actor):
            await workspaces.delete_canned_reply(uow, actor, reply_id)
    except DomainError as exc:
        return await _failed(request, state, actor, "canned", "", {}, exc)
    return _saved("/app/settings/canned", "canned-deleted")
