"""Two-factor pages: the second step of a log-in (``/login/two-factor``, and enrolment when the
workspace requires it), the operator's own factors (``/app/account/two-factor``) and the workspace's
requirement (Settings → Security → Two-factor). Passkey ceremonies go through small JSON endpoints
driven by ``static/two_factor.js`` (no inline script)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from confide.core.db import UnitOfWork
from confide.core.errors import DomainError, Invalid
from confide.permissions.policy import Permission, allows
from confide.permissions.policy import Permission as P
from confide.two_factor import service as two_factor
from confide.two_factor.webauthn_rp import RelyingParty
from confide.web.api.deps import StateDep, operator_unit
from confide.web.dashboard.auth import PageOperator, safe_next
from confide.web.dashboard.forms import sentence, text
from confide.web.dashboard.second_step import PATH, TICKET_COOKIE, clear_ticket_cookie
from confide.web.dashboard.templating import error_page, render
from confide.web.login_flow import SecondFactorResult, complete_second_factor
from confide.web.origins import server_origin
from confide.web.permits import authenticated, needs, public
from confide.web.security import form_from_own_site, from_own_site, set_session_cookie
from confide.web.state import State

router = APIRouter(include_in_schema=False)

ACCOUNT = "/app/account/two-factor"
SETTINGS = "/app/settings/security/two-factor"
MAX_JSON = 80 * 1024
SAVED = {
    "totp": "Authenticator app set up. Your other sessions were ended.",
    "totp-removed": "Authenticator app removed. Your other sessions were ended.",
    "totp-cancelled": "Set-up cancelled.",
    "passkey": "Passkey added. Your other sessions were ended.",
    "passkey-removed": "Passkey removed. Your other sessions were ended.",
    "policy": "Two-factor requirement saved.",
}


def _own(request: Request, state: State) -> str | None:
    return server_origin(request.url.scheme, request.headers.get("host"), state.rt.settings.public_url)


def relying_party(request: Request, state: State) -> RelyingParty:
    """Our origin as the browser sees it (``public_url`` when set), and its host name as the RP id."""
    origin = _own(request, state)
    host = urlsplit(origin).hostname if origin else None
    if not origin or not host:
        raise Invalid("passkeys need the server's public address (CONFIDE_PUBLIC_URL)")
    return RelyingParty(rp_id=host, origin=origin)


async def _json_body(request: Request, state: State) -> dict[str, Any]:
    """A JSON object from our own pages (Origin checked even without a session cookie), bounded."""
    if not from_own_site(request.headers, _own(request, state)):
        raise Invalid("this request was sent from another site")
    raw = await request.body()
    if len(raw) > MAX_JSON:
        raise Invalid("this request is too large")
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise Invalid("this request is not valid JSON") from None
    if not isinstance(body, dict):
        raise Invalid("this request is not valid JSON")
    return body


def _credential(body: dict[str, Any]) -> str:
    value = body.get("credential")
    if not isinstance(value, dict):
        raise Invalid("this passkey answer is malformed")
    return json.dumps(value)


def _json_error(exc: DomainError) -> JSONResponse:
    return JSONResponse({"detail": sentence(exc.message), "code": exc.code}, status_code=exc.status)


def _options(text_json: str) -> Response:
    return Response(text_json, media_type="application/json", headers={"Cache-Control": "no-store"})


def _session_response(response: Response, state: State, token: str) -> Response:
    set_session_cookie(response, token, ttl_s=state.rt.settings.session_ttl_s, secure=state.rt.settings.cookie_secure)
    return response


# ================================================================ the second step of a log-in
def _expired(request: Request, target: str, message: str) -> Response:
    response = render(
        request, "login.html", None, status_code=401, next=target, email="", error=sentence(message), flash=None
    )
    clear_ticket_cookie(response)
    return response


def _signed_in(state: State, done: SecondFactorResult, target: str, request: Request) -> Response:
    if done.recovery_codes:
        response = render(request, "two_factor_codes.html", None, codes=done.recovery_codes, next=target, at_login=True)
    else:
        response = RedirectResponse(target, status_code=303)
    clear_ticket_cookie(response)
    return _session_response(response, state, done.token)


@router.get(PATH, dependencies=[public()])
async def second_step_page(request: Request, state: StateDep) -> Response:
    target = safe_next(request.query_params.get("next"))
    try:
        async with state.rt.db.unit_of_work(readonly=True) as uow:
            view = await two_factor.view_ticket(uow, request.cookies.get(TICKET_COOKIE))
    except two_factor.TicketExpired as exc:
        return _expired(request, target, exc.message)
    if view.stage == two_factor.ENROL:
        return RedirectResponse(f"{PATH}/enrol?" + urlencode({"next": target}), status_code=303)
    return render(request, "login_two_factor.html", None, next=target, view=view, error=None)


@router.post(PATH, dependencies=[public()])
async def second_step_submit(request: Request, state: StateDep) -> Response:
    form = await request.form()
    target = safe_next(text(form, "next"))
    if not form_from_own_site(request.headers, _own(request, state)):
        return error_page(request, None, 403, "This form was sent from another site.", title="Refused")
    token, code = request.cookies.get(TICKET_COOKIE), text(form, "code")
    rt = state.rt

    async def step(uow: UnitOfWork) -> two_factor.Passed:
        return await two_factor.verify_code(rt, uow, token, code)

    try:
        done = await complete_second_factor(rt, step)
    except two_factor.TicketExpired as exc:
        return _expired(request, target, exc.message)
    except DomainError as exc:
        async with rt.db.unit_of_work(readonly=True) as uow:
            try:
                view = await two_factor.view_ticket(uow, token)
            except two_factor.TicketExpired as gone:
                return _expired(request, target, gone.message)
        return render(
            request,
            "login_two_factor.html",
            None,
            status_code=exc.status,
            next=target,
            view=view,
            error=sentence(exc.message),
        )
    return _signed_in(state, done, target, request)


async def _ticket_json(
    request: Request, state: State, call: Callable[[UnitOfWork, dict[str, Any]], Awaitable[str]]
) -> Response:
    """A JSON step of a ceremony on the ticket (options): one write unit."""
    try:
        body = await _json_body(request, state)
        async with state.rt.db.unit_of_work() as uow:
            return _options(await call(uow, body))
    except DomainError as exc:
        return _json_error(exc)


@router.post(PATH + "/passkey/options", dependencies=[public()])
async def second_step_passkey_options(request: Request, state: StateDep) -> Response:
    token = request.cookies.get(TICKET_COOKIE)
    return await _ticket_json(
        request,
        state,
        lambda uow, _body: two_factor.passkey_login_options(uow, token, relying_party(request, state)),
    )


async def _finish_json(
    request: Request, state: State, make: Callable[[dict[str, Any]], Callable[[UnitOfWork], Awaitable[Any]]]
) -> Response:
    try:
        body = await _json_body(request, state)
        target = safe_next(body.get("next"))
        done = await complete_second_factor(state.rt, make(body))
    except DomainError as exc:
        return _json_error(exc)
    response = JSONResponse({"redirect": target, "recovery_codes": done.recovery_codes})
    response.headers["Cache-Control"] = "no-store"
    clear_ticket_cookie(response)
    return _session_response(response, state, done.token)


@router.post(PATH + "/passkey", dependencies=[public()])
async def second_step_passkey(request: Request, state: StateDep) -> Response:
    token, rt = request.cookies.get(TICKET_COOKIE), state.rt

    def make(body: dict[str, Any]) -> Callable[[UnitOfWork], Awaitable[two_factor.Passed]]:
        raw, rp = _credential(body), relying_party(request, state)
        return lambda uow: two_factor.verify_passkey(rt, uow, token, raw, rp)

    return await _finish_json(request, state, make)


# -- enrolment at log-in (the workspace requires a second factor and the operator has none)
@router.get(PATH + "/enrol", dependencies=[public()])
async def enrol_page(request: Request, state: StateDep) -> Response:
    target = safe_next(request.query_params.get("next"))
    try:
        async with state.rt.db.unit_of_work() as uow:
            setup = await two_factor.enrol_view(state.rt, uow, request.cookies.get(TICKET_COOKIE))
    except two_factor.TicketExpired as exc:
        return _expired(request, target, exc.message)
    return render(request, "login_two_factor_enrol.html", None, next=target, setup=setup, error=None)


@router.post(PATH + "/enrol", dependencies=[public()])
async def enrol_submit(request: Request, state: StateDep) -> Response:
    form = await request.form()
    target = safe_next(text(form, "next"))
    if not form_from_own_site(request.headers, _own(request, state)):
        return error_page(request, None, 403, "This form was sent from another site.", title="Refused")
    token, code, rt = request.cookies.get(TICKET_COOKIE), text(form, "code"), state.rt

    async def step(uow: UnitOfWork) -> two_factor.Passed:
        return await two_factor.enrol_totp_at_login(rt, uow, token, code)

    try:
        done = await complete_second_factor(rt, step)
    except two_factor.TicketExpired as exc:
        return _expired(request, target, exc.message)
    except DomainError as exc:
        try:
            async with rt.db.unit_of_work() as uow:
                setup = await two_factor.enrol_view(rt, uow, token)
        except two_factor.TicketExpired as gone:
            return _expired(request, target, gone.message)
        return render(
            request,
            "login_two_factor_enrol.html",
            None,
            status_code=exc.status,
            next=target,
            setup=setup,
            error=sentence(exc.message),
        )
    return _signed_in(state, done, target, request)


@router.post(PATH + "/enrol/passkey/options", dependencies=[public()])
async def enrol_passkey_options(request: Request, state: StateDep) -> Response:
    token = request.cookies.get(TICKET_COOKIE)
    return await _ticket_json(
        request,
        state,
        lambda uow, _body: two_factor.enrol_passkey_options_at_login(uow, token, relying_party(request, state)),
    )


@router.post(PATH + "/enrol/passkey", dependencies=[public()])
async def enrol_passkey(request: Request, state: StateDep) -> Response:
    token, rt = request.cookies.get(TICKET_COOKIE), state.rt

    def make(body: dict[str, Any]) -> Callable[[UnitOfWork], Awaitable[two_factor.Passed]]:
        raw, label, rp = _credential(body), str(body.get("label") or ""), relying_party(request, state)
        return lambda uow: two_factor.enrol_passkey_at_login(rt, uow, token, raw, label, rp)

    return await _finish_json(request, state, make)


# ================================================================ the operator's own factors
async def _account_page(
    request: Request, state: State, actor: Any, *, error: str | None = None, status_code: int = 200
) -> Response:
    async with operator_unit(request, write=False) as (uow, me):
        found = await two_factor.factors(uow, me.operator_id)
        setup = await two_factor.pending_setup(state.rt, uow, me)
        required = await two_factor.is_required(uow, me.operator_id)
    flash = SAVED.get(request.query_params.get("saved", "")) if error is None else error
    return render(
        request,
        "account_two_factor.html",
        actor,
        status_code=status_code,
        nav="account",
        factors=found,
        setup=setup,
        required=required,
        flash=flash,
        flash_kind="error" if error else "success",
    )


@router.get(ACCOUNT, dependencies=[authenticated()])
async def account_page(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _account_page(request, state, actor)


async def _account_action(
    request: Request,
    state: State,
    actor: Any,
    call: Callable[[UnitOfWork, Any], Awaitable[Any]],
    *,
    saved: str,
    renew: bool,
) -> Response:
    if request.method == "POST":
        await request.form()
    try:
        async with operator_unit(request, write=True) as (uow, me):
            result = await call(uow, me)
            token = await two_factor.renew_session(state.rt, uow, me) if renew else None
    except DomainError as exc:
        return await _account_page(request, state, actor, error=sentence(exc.message), status_code=exc.status)
    if isinstance(result, list) and result:  # recovery codes: shown once, now
        response = render(
            request, "two_factor_codes.html", actor, codes=result, next=ACCOUNT, at_login=False, nav="account"
        )
    else:
        response = RedirectResponse(f"{ACCOUNT}?saved={saved}" if saved else ACCOUNT, status_code=303)
    return _session_response(response, state, token) if token else response


@router.post(ACCOUNT + "/totp/start", dependencies=[authenticated()])
async def account_totp_start(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _account_action(
        request, state, actor, lambda uow, me: two_factor.start_totp(state.rt, uow, me), saved="", renew=False
    )


@router.post(ACCOUNT + "/totp/cancel", dependencies=[authenticated()])
async def account_totp_cancel(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _account_action(
        request, state, actor, lambda uow, me: two_factor.cancel_totp(uow, me), saved="totp-cancelled", renew=False
    )


@router.post(ACCOUNT + "/totp/confirm", dependencies=[authenticated()])
async def account_totp_confirm(request: Request, actor: PageOperator, state: StateDep) -> Response:
    code = text(await request.form(), "code")
    return await _account_action(
        request,
        state,
        actor,
        lambda uow, me: two_factor.confirm_totp(state.rt, uow, me, code),
        saved="totp",
        renew=True,
    )


@router.post(ACCOUNT + "/totp/remove", dependencies=[authenticated()])
async def account_totp_remove(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _account_action(
        request,
        state,
        actor,
        lambda uow, me: two_factor.remove_totp(state.rt, uow, me),
        saved="totp-removed",
        renew=True,
    )


@router.post(ACCOUNT + "/recovery", dependencies=[authenticated()])
async def account_recovery(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _account_action(
        request,
        state,
        actor,
        lambda uow, me: two_factor.regenerate_recovery_codes(state.rt, uow, me),
        saved="",
        renew=False,
    )


@router.post(ACCOUNT + "/passkeys/{passkey_id}/remove", dependencies=[authenticated()])
async def account_passkey_remove(passkey_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _account_action(
        request,
        state,
        actor,
        lambda uow, me: two_factor.remove_passkey(state.rt, uow, me, passkey_id),
        saved="passkey-removed",
        renew=True,
    )


@router.post(ACCOUNT + "/passkeys/options", dependencies=[authenticated()])
async def account_passkey_options(request: Request, actor: PageOperator, state: StateDep) -> Response:
    try:
        await _json_body(request, state)
        rp = relying_party(request, state)
        async with operator_unit(request, write=True) as (uow, me):
            return _options(await two_factor.passkey_registration_options(uow, me, rp))
    except DomainError as exc:
        return _json_error(exc)


@router.post(ACCOUNT + "/passkeys", dependencies=[authenticated()])
async def account_passkey_add(request: Request, actor: PageOperator, state: StateDep) -> Response:
    try:
        body = await _json_body(request, state)
        raw, label, rp = _credential(body), str(body.get("label") or ""), relying_party(request, state)
        async with operator_unit(request, write=True) as (uow, me):
            _, codes = await two_factor.register_passkey(state.rt, uow, me, raw, label, rp)
            token = await two_factor.renew_session(state.rt, uow, me)
    except DomainError as exc:
        return _json_error(exc)
    response = JSONResponse({"redirect": f"{ACCOUNT}?saved=passkey", "recovery_codes": codes})
    response.headers["Cache-Control"] = "no-store"
    return _session_response(response, state, token)


# ================================================================ Settings → Security → Two-factor
async def _settings_page(
    request: Request, actor: Any, *, error: str | None = None, status_code: int = 200, chosen: Any = None
) -> Response:
    try:
        async with operator_unit(request, write=False) as (uow, me):
            policy = chosen or await two_factor.read_policy(uow, me)
            can_manage = allows(me, Permission.SETTINGS_MANAGE)
            role_choices = await two_factor.role_choices(uow, me.workspace_id)
    except DomainError as exc:
        if exc.status == 403:
            return render(request, "admin_only.html", actor, status_code=403, nav="settings")
        raise
    flash = SAVED.get(request.query_params.get("saved", "")) if error is None else error
    return render(
        request,
        "settings_two_factor.html",
        actor,
        status_code=status_code,
        nav="settings",
        tab="security-two-factor",
        policy=policy,
        roles=role_choices,
        can_manage=can_manage,
        flash=flash,
        flash_kind="error" if error else "success",
    )


@router.get(SETTINGS, dependencies=[needs(P.SETTINGS_READ)])
async def settings_two_factor(request: Request, actor: PageOperator) -> Response:
    return await _settings_page(request, actor)


@router.post(SETTINGS, dependencies=[needs(P.SETTINGS_MANAGE)])
async def settings_two_factor_save(request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    mode = text(form, "mode")
    roles = [v for v in form.getlist("roles") if isinstance(v, str)][:50]
    try:
        if mode not in ("off", "all", "roles"):
            raise Invalid("choose who must use a second factor")
        if mode == "roles" and not roles:
            raise Invalid("choose at least one role, or another option")
        async with operator_unit(request, write=True) as (uow, me):
            await two_factor.set_policy(
                state.rt, uow, me, require_all=mode == "all", roles=roles if mode == "roles" else []
            )
    except DomainError as exc:
        if exc.status == 403:
            return render(request, "admin_only.html", actor, status_code=403, nav="settings")
        chosen = two_factor.PolicyView(mode == "all", [r for r in roles if isinstance(r, str)])
        return await _settings_page(request, actor, error=sentence(exc.message), status_code=exc.status, chosen=chosen)
    return RedirectResponse(f"{SETTINGS}?saved=policy", status_code=303)
