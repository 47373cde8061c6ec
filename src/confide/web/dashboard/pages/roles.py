"""Settings -> Roles: the built-in roles (read-only) and the workspace's custom roles, which those
who may manage roles create, edit and delete (when nobody holds them). A form that does not
validate is shown again with what was typed and why."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from confide import role_use
from confide.core.errors import DomainError
from confide.permissions.policy import Permission as P
from confide.users import roles
from confide.users.schemas import RoleIn
from confide.web.api.deps import StateDep, operator_unit
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.forms import errors
from confide.web.dashboard.forms import text as field
from confide.web.dashboard.templating import render
from confide.web.permits import needs

router = APIRouter(include_in_schema=False)
PATH = "/app/settings/roles"

# The catalogue as the form groups it: (heading, [(permission, label)]).
GROUPS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Chats",
        [
            (P.CHATS_READ, "Read stored chats and transcripts"),
            (P.CHATS_PARTICIPATE, "Take part in chats (the console)"),
            (P.CHATS_DELETE, "Delete chats"),
        ],
    ),
    (
        "Visitors and requests",
        [
            (P.VISITORS_READ, "See visitor activity"),
            (P.OFFLINE_READ, "Read offline requests"),
            (P.OFFLINE_MANAGE, "Handle offline requests"),
            (P.PROSPECTS_READ, "Read prospects"),
            (P.PROSPECTS_MANAGE, "Manage prospects"),
        ],
    ),
    (
        "Privacy",
        [
            (P.SUBJECTS_VIEW, "View subject requests"),
            (P.SUBJECTS_EXPORT, "Export a subject's data"),
            (P.SUBJECTS_ERASE, "Erase a subject's data"),
            (P.CONSENT_MANAGE, "Manage consent"),
            (P.RETENTION_MANAGE, "Manage retention"),
            (P.BREACHES_READ, "Read breaches"),
            (P.BREACHES_MANAGE, "Manage breaches"),
        ],
    ),
    (
        "Administration",
        [
            (P.USERS_READ, "See staff accounts"),
            (P.USERS_MANAGE, "Manage staff accounts"),
            (P.ROLES_MANAGE, "Manage roles"),
            (P.SETTINGS_READ, "Read settings"),
            (P.SETTINGS_MANAGE, "Change settings"),
            (P.AUDIT_READ, "Read the audit report"),
            (P.ACCOUNTS_REVIEW, "See the account review"),
            (P.ACCOUNTS_SIGN_OFF, "Sign an account review off"),
            (P.REPORTS_READ, "Read reports"),
            (P.INTEGRATIONS_MANAGE, "Manage integrations"),
        ],
    ),
]
SCOPES = {
    "workspace": "Every department",
    "departments": "Their departments",
    "own": "Their own and queued chats",
}
SAVED = {"new": "Role created.", "saved": "Role saved; its holders were logged out.", "deleted": "Role deleted."}


def _shape(form: FormData) -> dict[str, Any]:
    return {
        "name": field(form, "name").strip(),
        "description": field(form, "description").strip(),
        "scope": field(form, "scope") or "own",
        "permissions": [v for v in form.getlist("permissions") if isinstance(v, str)],
    }


async def _page(
    request: Request,
    actor: Any,
    *,
    failed: tuple[str, dict[str, Any], list[str]] | None = None,
    status_code: int = 200,
) -> Response:
    async with operator_unit(request, write=False) as (uow, me):
        listed = [r.as_dict() for r in await roles.list_roles(uow, me)]
    forms: dict[str, dict[str, Any]] = {}
    for r in listed:
        forms[r["key"]] = {**r, "errors": [], "open": False}
    forms["new"] = {"name": "", "description": "", "scope": "own", "permissions": [], "errors": [], "open": False}
    flash, flash_kind = SAVED.get(request.query_params.get("saved", "")), "success"
    if failed is not None:
        form_id, values, problems = failed
        if form_id in forms:
            forms[form_id] = {**forms[form_id], **values, "errors": problems, "open": True}
            flash = None
        else:
            flash, flash_kind = " ".join(problems), "error"
    return render(
        request,
        "settings_roles.html",
        actor,
        status_code=status_code,
        nav="roles",
        roles=listed,
        forms=forms,
        groups=GROUPS,
        scopes=SCOPES,
        flash=flash,
        flash_kind=flash_kind,
    )


async def _failed(request: Request, actor: Any, form_id: str, values: dict[str, Any], exc: Exception) -> Response:
    status_code = exc.status if isinstance(exc, DomainError) else 422
    return await _page(request, actor, failed=(form_id, values, errors(exc)), status_code=status_code)


@router.get(PATH, dependencies=[needs(P.SETTINGS_READ)])
async def roles_page(request: Request, actor: PageOperator) -> Response:
    return await _page(request, actor)


@router.post(PATH, dependencies=[needs(P.ROLES_MANAGE)])
async def role_create(request: Request, actor: PageOperator, state: StateDep) -> Response:
    shape = _shape(await request.form())
    try:
        body = RoleIn.model_validate(shape)
        async with operator_unit(request, write=True) as (uow, me):
            row = await roles.create_role(state.rt, uow, me, body)
    except (ValueError, DomainError) as exc:
        return await _failed(request, actor, "new", shape, exc)
    return RedirectResponse(f"{PATH}?saved=new#role-{row.id}", status_code=303)


@router.post(PATH + "/{role_id}", dependencies=[needs(P.ROLES_MANAGE)])
async def role_update(role_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    shape = _shape(await request.form())
    try:
        body = RoleIn.model_validate(shape)
        async with operator_unit(request, write=True) as (uow, me):
            await roles.update_role(state.rt, uow, me, role_id, body)
    except (ValueError, DomainError) as exc:
        return await _failed(request, actor, role_id, shape, exc)
    return RedirectResponse(f"{PATH}?saved=saved#role-{role_id}", status_code=303)


@router.post(PATH + "/{role_id}/delete", dependencies=[needs(P.ROLES_MANAGE)])
async def role_delete(role_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    try:
        async with operator_unit(request, write=True) as (uow, me):
            await role_use.delete_role(state.rt, uow, me, role_id)
    except DomainError as exc:
        return await _failed(request, actor, "", {}, exc)
    return RedirectResponse(f"{PATH}?saved=deleted", status_code=303)
