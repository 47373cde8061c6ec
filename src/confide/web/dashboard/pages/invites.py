"""Invitations: Settings → Operators → Invite (``users.manage``), the list of invitations, and the
page an invited person opens from the e-mail (``/invite/{token}``) to create their account.

The token is in the path: the access log writes route templates only (``/invite/{token}``), and
the page loads nothing from other origins (``Referrer-Policy: same-origin``, strict CSP)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from confide.auth.actors import OperatorActor
from confide.core.errors import DomainError
from confide.permissions.policy import Permission as P
from confide.users import invites
from confide.web.api.deps import StateDep, operator_unit
from confide.web.client_address import client_address
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.forms import errors, messages, sentence, text
from confide.web.dashboard.second_step import after_first_factor
from confide.web.dashboard.templating import error_page, render
from confide.web.login_flow import LoginClient, complete_login
from confide.web.origins import server_origin
from confide.web.permits import needs, public
from confide.web.security import form_from_own_site
from confide.web.state import State
from confide.workspaces import service as workspaces

router = APIRouter(include_in_schema=False)

LIST = "/app/settings/invites"
SENT = {
    "sent": "Invitation sent.",
    "resent": "A new link was sent; the older one no longer works.",
    "revoked": "Invitation revoked.",
}
REFUSED = {
    "used": ("Invitation already used", "This invitation link has been used already. Log in with your e-mail address."),
    "expired": ("Invitation expired", "This invitation link has expired. Ask an administrator to invite you again."),
    "revoked": (
        "Invitation no longer valid",
        "This invitation link was replaced or withdrawn. Use the most recent invitation you received.",
    ),
    "unknown": ("Invitation not found", "This invitation link is not valid. Check that you copied all of it."),
}


def _base_url(request: Request, state: State) -> str:
    return (state.rt.settings.public_url or str(request.base_url)).rstrip("/")


def _blank() -> dict[str, Any]:
    return {"email": "", "name": "", "role": "operator", "department_ids": [], "errors": []}


async def _list_page(
    request: Request,
    actor: OperatorActor,
    *,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
    flash: str | None = None,
    flash_kind: str = "success",
) -> Response:
    async with operator_unit(request, write=False) as (uow, actor):
        listed = await invites.list_invites(uow, actor)
        departments = [workspaces.department_view(d) for d in await workspaces.list_departments(uow, actor)]
    dept_names = {d["id"]: d["name"] for d in departments}
    return render(
        request,
        "settings_invites.html",
        actor,
        status_code=status_code,
        nav="settings",
        tab="operators",
        invites=listed,
        departments=departments,
        dept_names=dept_names,
        new_invite=form or _blank(),
        flash=flash,
        flash_kind=flash_kind,
    )


@router.get(LIST, dependencies=[needs(P.USERS_MANAGE)])
async def invites_page(request: Request, actor: PageOperator) -> Response:
    return await _list_page(request, actor, flash=SENT.get(request.query_params.get("done", "")))


@router.post(LIST, dependencies=[needs(P.USERS_MANAGE)])
async def invite_submit(request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    shape = {
        "email": text(form, "email").strip(),
        "name": text(form, "name").strip(),
        "role": text(form, "role") or "operator",
        "department_ids": [v for v in form.getlist("department_ids") if isinstance(v, str)],
    }
    try:
        body = invites.InviteIn.model_validate(shape)
        async with operator_unit(request, write=True) as (uow, actor):
            await invites.invite(state.rt, uow, actor, body, base_url=_base_url(request, state))
    except (ValueError, DomainError) as exc:
        if isinstance(exc, DomainError) and exc.status == 403:
            raise  # the "administrators only" page
        status = exc.status if isinstance(exc, DomainError) else 422
        return await _list_page(request, actor, form={**shape, "errors": errors(exc)}, status_code=status)
    return RedirectResponse(f"{LIST}?done=sent", status_code=303)


@router.post(LIST + "/{invite_id}/revoke", dependencies=[needs(P.USERS_MANAGE)])
async def invite_revoke(invite_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    try:
        async with operator_unit(request, write=True) as (uow, actor):
            await invites.revoke(state.rt, uow, actor, invite_id)
    except DomainError as exc:
        if exc.status == 403:
            raise
        return await _list_page(request, actor, status_code=exc.status, flash=sentence(exc.message), flash_kind="error")
    return RedirectResponse(f"{LIST}?done=revoked", status_code=303)


@router.post(LIST + "/{invite_id}/resend", dependencies=[needs(P.USERS_MANAGE)])
async def invite_resend(invite_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    try:
        async with operator_unit(request, write=True) as (uow, actor):
            await invites.reinvite(state.rt, uow, actor, invite_id, base_url=_base_url(request, state))
    except DomainError as exc:
        if exc.status == 403:
            raise
        return await _list_page(request, actor, status_code=exc.status, flash=sentence(exc.message), flash_kind="error")
    return RedirectResponse(f"{LIST}?done=resent", status_code=303)


# ---------------------------------------------------------------- the invited person
def _refused(request: Request, reason: str) -> Response:
    title, message = REFUSED.get(reason, REFUSED["unknown"])
    status = 404 if reason == "unknown" else 410
    return render(request, "invite.html", None, status_code=status, refused=True, title=title, message=message)


@router.get("/invite/{token}", dependencies=[public()])
async def invite_page(token: str, request: Request, state: StateDep) -> Response:
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        try:
            found = await invites.check(uow, token)
        except invites.InviteUnusable as exc:
            return _refused(request, exc.reason)
    return render(
        request, "invite.html", None, refused=False, token=token, email=found.email, person_name=found.name, errors=[]
    )


@router.post("/invite/{token}", dependencies=[public()])
async def invite_accept(token: str, request: Request, state: StateDep) -> Response:
    rt = state.rt
    own = server_origin(request.url.scheme, request.headers.get("host"), rt.settings.public_url)
    if not form_from_own_site(request.headers, own):
        return error_page(request, None, 403, "This form was sent from another site.", title="Refused")
    form = await request.form()
    name, password, confirm = text(form, "name").strip(), text(form, "password"), text(form, "password_confirm")
    async with rt.db.unit_of_work(readonly=True) as uow:
        try:
            found = await invites.check(uow, token)
        except invites.InviteUnusable as exc:
            return _refused(request, exc.reason)

    def again(problems: list[str], status: int = 422) -> Response:
        return render(
            request,
            "invite.html",
            None,
            status_code=status,
            refused=False,
            token=token,
            email=found.email,
            person_name=name,
            errors=problems,
        )

    try:
        body = invites.AcceptIn(name=name, password=password)
    except ValidationError as exc:
        return again(messages(exc))
    if password != confirm:
        return again(["The two passwords are not the same."])
    try:
        invites.check_new_password(body.password)  # the password policy's call site (see invites.py)
    except DomainError as exc:
        return again([sentence(exc.message)])
    hashed = await rt.passwords.hash_async(body.password)  # off the loop, before the write unit
    try:
        async with rt.db.unit_of_work() as uow:
            operator_id = await invites.accept(rt, uow, token, body, password_hash=hashed)
    except invites.InviteUnusable as exc:  # used or revoked meanwhile (a second tab, a re-invite)
        return _refused(request, exc.reason)
    except DomainError as exc:
        return again([sentence(exc.message)], exc.status)
    client = LoginClient(address=client_address(request), user_agent=request.headers.get("user-agent"))
    result = await complete_login(rt, operator_id=operator_id, method="invite", client=client)
    # The session, or the second factor first (e.g. when the workspace requires one: enrolment).
    return after_first_factor(result, "/app", ttl_s=rt.settings.session_ttl_s, secure=rt.settings.cookie_secure)
