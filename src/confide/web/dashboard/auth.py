"""Who is looking at a page: the logged-in operator (or a redirect to the log-in page), and the
log-in / log-out pages themselves. Cookie and same-origin rules come from ``web.security``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from confide.auth.actors import OperatorActor
from confide.core.errors import DomainError, Unauthorized
from confide.users import sessions as user_sessions
from confide.users.schemas import LoginIn
from confide.web.api.deps import StateDep, current_operator
from confide.web.client_address import client_address
from confide.web.dashboard.forms import sentence, text
from confide.web.dashboard.second_step import after_first_factor
from confide.web.dashboard.templating import error_page, render
from confide.web.directory_login import directory_login, login_context
from confide.web.login_flow import LoginClient, password_login
from confide.web.origins import server_origin
from confide.web.permits import public
from confide.web.security import clear_session_cookie, form_from_own_site

router = APIRouter(include_in_schema=False)


def safe_next(value: object) -> str:
    """Only a relative path on this server ("/…", never "//host" or "/\\host")."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 2000:
        return "/app"
    if value.startswith(("//", "/\\")) or any(ch in value for ch in "\\\r\n\t\x00"):
        return "/app"
    try:
        parts = urlsplit(value)
    except ValueError:
        return "/app"
    if parts.scheme or parts.netloc:
        return "/app"
    return value


async def page_operator(request: Request) -> OperatorActor:
    """The logged-in operator, or a 303 to the log-in page that comes back here afterwards."""
    try:
        return await current_operator(request)
    except user_sessions.PasswordChangeRequired:
        raise HTTPException(status_code=303, headers={"Location": "/app/account/password"}) from None
    except Unauthorized:
        target = "/app"
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(status_code=303, headers={"Location": "/login?" + urlencode({"next": target})}) from None


PageOperator = Annotated[OperatorActor, Depends(page_operator)]


@router.get("/", dependencies=[public()])
async def root() -> Response:
    return RedirectResponse("/app", status_code=303)


@router.get("/login", dependencies=[public()])
async def login_page(request: Request) -> Response:
    target = safe_next(request.query_params.get("next"))
    try:
        await current_operator(request)
    except user_sessions.PasswordChangeRequired:
        return RedirectResponse("/app/account/password", status_code=303)
    except Unauthorized:
        pass
    else:
        return RedirectResponse(target, status_code=303)
    flash = "You have been logged out." if request.query_params.get("bye") else None
    return render(
        request, "login.html", None, next=target, email="", error=None, flash=flash, **await login_context(request)
    )


@router.post("/login", dependencies=[public()])
async def login_submit(request: Request, state: StateDep) -> Response:
    form = await request.form()
    email, password = text(form, "email").strip(), text(form, "password")
    target = safe_next(text(form, "next"))
    own = server_origin(request.url.scheme, request.headers.get("host"), state.rt.settings.public_url)
    if not form_from_own_site(request.headers, own):
        return error_page(request, None, 403, "This log-in form was sent from another site.", title="Refused")
    rt = state.rt
    try:
        body = LoginIn(email=email, password=password)
        client = LoginClient(address=client_address(request), user_agent=request.headers.get("user-agent"))
        result = await directory_login(
            rt, email=body.email, password=body.password, client=client
        ) or await password_login(rt, email=body.email, password=body.password, client=client)
    except ValidationError:
        return render(
            request,
            "login.html",
            None,
            status_code=422,
            next=target,
            email=email,
            error="Enter your e-mail address and your password.",
            **await login_context(request),
        )
    except DomainError as exc:
        return render(
            request,
            "login.html",
            None,
            status_code=exc.status,
            next=target,
            email=email,
            error=sentence(exc.message),
            **await login_context(request),
        )
    # The session, or the second factor first (two_factor/, ADR 0014).
    return after_first_factor(result, target, ttl_s=rt.settings.session_ttl_s, secure=rt.settings.cookie_secure)


@router.post("/logout", dependencies=[public()])
async def logout(request: Request, state: StateDep) -> Response:
    try:
        actor: OperatorActor | None = await current_operator(request)
    except Unauthorized:
        actor = None
    if actor is not None:
        async with state.rt.db.unit_of_work() as uow:
            await user_sessions.logout(state.rt, uow, actor)
    response = RedirectResponse("/login?bye=1", status_code=303)
    clear_session_cookie(response, secure=state.rt.settings.cookie_secure)
    return response
