"""Single sign-on pages: ``/login/sso/{provider_id}`` sends the browser to the provider, and
``/login/sso/{provider_id}/callback`` finishes the log-in when it comes back (see
``web.directory_login``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from confide.auth.providers.oidc import OidcRefused
from confide.core.errors import DomainError
from confide.web.api.deps import StateDep
from confide.web.client_address import client_address
from confide.web.dashboard import second_step
from confide.web.dashboard.auth import safe_next
from confide.web.dashboard.forms import sentence
from confide.web.dashboard.templating import render
from confide.web.directory_login import (
    SSO_COOKIE,
    SSO_COOKIE_PATH,
    SSO_TTL_S,
    callback_url,
    login_context,
    sso_finish,
    sso_start,
)
from confide.web.login_flow import LoginClient
from confide.web.permits import public
from confide.web.security import set_session_cookie

router = APIRouter(include_in_schema=False)


async def _login_error(request: Request, status: int, message: str) -> Response:
    response = render(
        request,
        "login.html",
        None,
        status_code=status,
        next="/app",
        email="",
        error=sentence(message),
        **await login_context(request),
    )
    response.delete_cookie(SSO_COOKIE, path=SSO_COOKIE_PATH)
    return response


@router.get("/login/sso/{provider_id}", dependencies=[public()])
async def sso_begin(provider_id: str, request: Request, state: StateDep) -> Response:
    rt = state.rt
    target = safe_next(request.query_params.get("next"))
    try:
        start = await sso_start(
            rt, provider_id=provider_id, redirect_uri=callback_url(rt, request, provider_id), next_path=target
        )
    except DomainError as exc:
        return await _login_error(request, exc.status, exc.message)
    except OidcRefused:
        return await _login_error(request, 502, "The sign-in provider cannot be reached right now")
    response = RedirectResponse(start.location, status_code=303)
    response.set_cookie(
        SSO_COOKIE,
        start.cookie,
        max_age=SSO_TTL_S,
        httponly=True,
        samesite="lax",
        secure=rt.settings.cookie_secure,
        path=SSO_COOKIE_PATH,
    )
    return response


@router.get("/login/sso/{provider_id}/callback", dependencies=[public()])
async def sso_callback(provider_id: str, request: Request, state: StateDep) -> Response:
    rt = state.rt
    params = {k: v for k, v in request.query_params.items() if k in ("code", "state", "error") and len(v) <= 4096}
    client = LoginClient(
        address=client_address(request), user_agent=request.headers.get("user-agent")
    )
    try:
        done = await sso_finish(
            rt,
            provider_id=provider_id,
            params=params,
            cookie=request.cookies.get(SSO_COOKIE),
            redirect_uri=callback_url(rt, request, provider_id),
            client=client,
        )
    except DomainError as exc:
        return await _login_error(request, exc.status, exc.message)
    # The session cookie is SameSite=Strict and this request came from the provider's site: a
    # redirect would carry the cross-site origin along and the browser would not send the cookie.
    # A page of ours that moves on by itself makes the next request a same-site one.
    target = safe_next(done.next_path)
    ticket = done.result.second_factor
    if ticket is not None:  # the second factor first (ADR 0014): its ticket cookie is SameSite=Strict too
        response = render(request, "sso_done.html", None, next=second_step.second_step_url(ticket, target))
        second_step.set_ticket_cookie(response, ticket.token, secure=rt.settings.cookie_secure)
    else:
        response = render(request, "sso_done.html", None, next=target)
        set_session_cookie(
            response, done.result.token, ttl_s=rt.settings.session_ttl_s, secure=rt.settings.cookie_secure
        )
    response.delete_cookie(SSO_COOKIE, path=SSO_COOKIE_PATH)
    return response
