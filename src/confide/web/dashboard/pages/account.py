"""The operator's own account: change the password (also when a change is required at log-in) and
the sessions (each user ends their own; with ``users.manage``, anyone's in the workspace); and the
workspace's password and session rules (Settings -> Security -> Passwords). Thin: parse, one
service (or flow) call, render."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from confide.core.errors import DomainError
from confide.permissions.policy import Permission as P
from confide.users import account_rules as user_account_rules
from confide.users import operators as user_operators
from confide.users import sessions as user_sessions
from confide.users.account_schemas import AccountRulesIn
from confide.web.api.deps import StateDep, operator_unit
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.forms import errors, text
from confide.web.dashboard.templating import render
from confide.web.login_flow import change_own_password
from confide.web.permits import authenticated, needs

router = APIRouter(include_in_schema=False)

_SAVED = {
    "password": "Your password was changed; your other sessions have ended.",
    "ended": "The session has ended.",
    "ended-all": "The sessions have ended.",
    "rules": "Password and session rules saved.",
}


def _iso(value: Any) -> str:
    return value.isoformat() if value is not None else ""


# ---------------------------------------------------------------- password
@router.get("/app/account/password", dependencies=[authenticated()])
async def password_page(request: Request, actor: PageOperator) -> Response:
    async with operator_unit(request, write=False) as (uow, me):
        op = await user_operators.get_operator(uow, me.operator_id)
        found = await user_account_rules.account_rules(request.app.state.confide.rt, uow, me.workspace_id)
        rules = user_account_rules.account_rules_view(found)
    required = bool(op and op.must_change_password)
    return render(request, "account_password.html", actor, nav="account", required=required, rules=rules, errors=[])


@router.post("/app/account/password", dependencies=[authenticated()])
async def password_submit(request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    current, new, confirm = text(form, "current_password"), text(form, "new_password"), text(form, "confirm_password")
    problems: list[str] = []
    if not current or not new:
        problems.append("Enter your current password and a new one.")
    elif new != confirm:
        problems.append("The new password and its confirmation differ.")
    else:
        try:
            await change_own_password(state.rt, actor, current=current, new=new)
        except DomainError as exc:
            problems = errors(exc)
    if problems:
        async with state.rt.db.unit_of_work(readonly=True) as uow:
            op = await user_operators.get_operator(uow, actor.operator_id)
            found = await user_account_rules.account_rules(state.rt, uow, actor.workspace_id)
            rules = user_account_rules.account_rules_view(found)
        return render(
            request,
            "account_password.html",
            actor,
            status_code=422,
            nav="account",
            required=bool(op and op.must_change_password),
            rules=rules,
            errors=problems,
        )
    return RedirectResponse("/app/account/sessions?saved=password", status_code=303)


# ---------------------------------------------------------------- sessions
def _sessions_url(operator_id: str | None, saved: str) -> str:
    query = {"saved": saved, **({"operator": operator_id} if operator_id else {})}
    return "/app/account/sessions?" + urlencode(query)


@router.get("/app/account/sessions", dependencies=[authenticated()])
async def sessions_page(request: Request, actor: PageOperator) -> Response:
    target = request.query_params.get("operator") or None
    async with operator_unit(request, write=False) as (uow, me):
        rows = await user_sessions.list_sessions(uow, me, target)
        op = await user_operators.get_operator(uow, target or me.operator_id)
    sessions = [{**s, **{k: _iso(s[k]) for k in ("created_at", "last_seen_at", "expires_at")}} for s in rows]
    own = target in (None, actor.operator_id)
    return render(
        request,
        "account_sessions.html",
        actor,
        nav="account",
        sessions=sessions,
        own=own,
        target=None if own else target,
        target_name=op.name if op is not None else "",
        flash=_SAVED.get(request.query_params.get("saved", "")),
    )


@router.post("/app/account/sessions/end", dependencies=[authenticated()])
async def end_session(request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    target = text(form, "operator") or None
    async with operator_unit(request, write=True) as (uow, me):
        await user_sessions.end_session(state.rt, uow, me, text(form, "session_id"))
    return RedirectResponse(_sessions_url(target, "ended"), status_code=303)


@router.post("/app/account/sessions/end-others", dependencies=[authenticated()])
async def end_other_sessions(request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    target = text(form, "operator") or None
    async with operator_unit(request, write=True) as (uow, me):
        await user_sessions.end_other_sessions(state.rt, uow, me, target)
    return RedirectResponse(_sessions_url(target, "ended-all"), status_code=303)


# ---------------------------------------------------------------- Settings -> Security -> Passwords
@router.get("/app/settings/security/passwords", dependencies=[needs(P.SETTINGS_READ)])
async def rules_page(request: Request, actor: PageOperator, state: StateDep) -> Response:
    async with operator_unit(request, write=False) as (uow, me):
        rules = await user_account_rules.get_account_rules(state.rt, uow, me)
    return render(
        request,
        "settings_security_passwords.html",
        actor,
        nav="settings",
        tab="security-passwords",
        form={k: str(v) for k, v in rules.items()},
        rules=rules,
        errors=[],
        flash=_SAVED.get(request.query_params.get("saved", "")),
    )


@router.post("/app/settings/security/passwords", dependencies=[needs(P.SETTINGS_MANAGE)])
async def rules_submit(request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    fields = ("password_min_length", "password_max_age_days", "session_idle_timeout_min", "session_max_per_operator")
    values = {k: text(form, k).strip() for k in fields}
    try:
        data = AccountRulesIn.model_validate({k: v for k, v in values.items() if v != ""})
        async with operator_unit(request, write=True) as (uow, me):
            await user_account_rules.set_account_rules(state.rt, uow, me, data)
    except (ValidationError, DomainError) as exc:
        if isinstance(exc, DomainError) and exc.status == 403:
            raise
        async with operator_unit(request, write=False) as (uow, me):
            rules = await user_account_rules.get_account_rules(state.rt, uow, me)
        return render(
            request,
            "settings_security_passwords.html",
            actor,
            status_code=422,
            nav="settings",
            tab="security-passwords",
            form=values,
            rules=rules,
            errors=errors(exc),
        )
    return RedirectResponse("/app/settings/security/passwords?saved=rules", status_code=303)
