"""Directory first factors for the log-in pipeline (``web/login_flow``): LDAP / Active Directory
behind the ordinary log-in form, and OpenID Connect single sign-on. Each ends in
``complete_login(..., method="ldap" | "oidc")`` like the password does.

Both are split into steps so that no directory or provider is asked while a transaction is open
(and ldap3 never runs on the event loop): a read unit plans, the network call runs with no unit,
a short write unit records the outcome (``identity.service``).

The single sign-on round trip keeps its ``state``, ``nonce`` and PKCE verifier in a cookie sealed
with AES-GCM (``crypto.Sealer``, the dashboard's sealer under a context of its own), HttpOnly,
SameSite=Lax (the provider's redirect back is a cross-site navigation: a Strict cookie would not
come back with it), scoped to ``/login/sso/`` and valid for ten minutes. Any node opens it; none
keeps state for it. A code is good once: the provider refuses a replayed one.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from confide.auth.providers import oidc
from confide.core import clock
from confide.core.errors import DomainError, NotFound
from confide.core.runtime import Runtime
from confide.identity import service as identity
from confide.users import login as user_login
from confide.web.login_flow import LoginClient, LoginResult, complete_login
from confide.web.state import State

SSO_COOKIE = "confide_sso"
SSO_COOKIE_PATH = "/login/sso/"
SSO_TTL_S = 600
_CONTEXT = "oidc-login/v1"


async def directory_login(rt: Runtime, *, email: str, password: str, client: LoginClient) -> LoginResult | None:
    """The LDAP first factor, when it applies to this e-mail (None: the local password does, and
    counts the attempt itself). The attempt is counted against the same throttle as a password
    log-in, per typed e-mail and per client address, before the directory is asked (429, audited,
    and no directory call while it must wait); a refusal is audited and answered like a wrong
    password, no sooner than ``directory_login_floor_s`` after it began; a success lifts the counts."""
    started = time.monotonic()
    async with rt.db.unit_of_work(readonly=True) as uow:
        plan = await identity.ldap_plan(rt, uow, email=email)
    if plan is None:
        return None
    async with rt.db.unit_of_work() as uow:
        gate = await user_login.count_login_attempt(
            rt,
            uow,
            email=email,
            address=client.address,
            method="ldap",
            operator_id=plan.operator_id,
            workspace_id=plan.workspace_id,
        )
    outcome = await identity.ldap_check(plan, login=email, password=password)
    try:
        async with rt.db.unit_of_work() as uow:
            operator_id = await identity.record_ldap_login(rt, uow, plan, outcome, email=email)
            await user_login.login_passed(uow, gate)
    except DomainError:
        await asyncio.sleep(max(0.0, rt.settings.directory_login_floor_s - (time.monotonic() - started)))
        raise
    return await complete_login(rt, operator_id=operator_id, method="ldap", client=client)


async def login_context(request: Request) -> dict[str, Any]:
    """What the log-in page needs for its "Sign in with …" buttons."""
    state: State = request.app.state.confide
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        return {"sso_providers": await identity.sso_buttons(uow)}


def callback_url(rt: Runtime, request: Request, provider_id: str) -> str:
    """The redirect URI registered with the provider: under ``public_url`` when it is set."""
    base = rt.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
    return f"{base}/login/sso/{provider_id}/callback"


@dataclass(frozen=True)
class SsoStart:
    location: str  # the provider's authorization URL
    cookie: str  # the sealed round trip


async def sso_start(rt: Runtime, *, provider_id: str, redirect_uri: str, next_path: str) -> SsoStart:
    """Step 1 of single sign-on: where to send the browser, and the cookie it must bring back.
    NotFound for a provider that does not exist or is off; ``OidcRefused`` when discovery fails."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        plan = await identity.oidc_plan(rt, uow, provider_id)
    try:
        meta = await oidc.discover(plan.issuer)
    except oidc.OidcRefused as exc:
        async with rt.db.unit_of_work() as uow:
            raise await identity.record_oidc_refusal(rt, uow, plan, exc.code) from None
    request = oidc.new_login_request()
    url = oidc.authorization_url(
        meta, client_id=plan.client_id, redirect_uri=redirect_uri, scopes=plan.scopes, request=request
    )
    sealed = rt.filter_tokens.seal(
        {"p": plan.provider_id, "s": request.state, "n": request.nonce, "v": request.verifier, "next": next_path},
        context=_CONTEXT,
        ttl_s=SSO_TTL_S,
        now_epoch=clock.now().timestamp(),
    )
    return SsoStart(url, sealed)


@dataclass(frozen=True)
class SsoDone:
    result: LoginResult
    next_path: str


async def sso_finish(
    rt: Runtime,
    *,
    provider_id: str,
    params: dict[str, str],
    cookie: str | None,
    redirect_uri: str,
    client: LoginClient,
) -> SsoDone:
    """Step 2: the provider sent the browser back. Refused (audited, ``Unauthorized``) unless the
    sealed round trip is this provider's and its ``state`` is the one returned, the code is
    exchanged (with the PKCE verifier) and the ID token verifies with this log-in's ``nonce``."""
    async with rt.db.unit_of_work() as uow:  # per client address, like every log-in (429 when it must wait)
        gate = await user_login.count_login_attempt(rt, uow, email=None, address=client.address, method="oidc")
    sealed = rt.filter_tokens.open(cookie, context=_CONTEXT, now_epoch=clock.now().timestamp())
    plan: identity.OidcPlan | None = None
    try:
        async with rt.db.unit_of_work(readonly=True) as uow:
            plan = await identity.oidc_plan(rt, uow, provider_id)
    except NotFound:
        plan = None
    reason: str | None = None
    if plan is None:
        reason = "provider_off"
    elif not isinstance(sealed, dict) or not all(isinstance(sealed.get(k), str) for k in ("p", "s", "n", "v")):
        reason = "no_login_state"
    elif sealed["p"] != provider_id or params.get("state") != sealed["s"]:
        reason = "state_mismatch"
    elif params.get("error"):
        reason = "provider_error"
    elif not params.get("code") or len(params["code"]) > 2048:
        reason = "no_code"
    claims: dict[str, Any] | None = None
    if reason is None and plan is not None and isinstance(sealed, dict):
        try:
            meta = await oidc.discover(plan.issuer)
            token = await oidc.exchange_code(
                meta,
                client_id=plan.client_id,
                client_secret=plan.client_secret,
                code=params["code"],
                redirect_uri=redirect_uri,
                verifier=sealed["v"],
            )
            claims = await oidc.verify_id_token(meta, token, client_id=plan.client_id, nonce=sealed["n"])
        except oidc.OidcRefused as exc:
            reason = exc.code
    async with rt.db.unit_of_work() as uow:
        if reason is not None or plan is None or claims is None:
            raise await identity.record_oidc_refusal(rt, uow, plan, reason or "refused")
        operator_id = await identity.record_oidc_login(rt, uow, plan, claims)
        await user_login.login_passed(uow, gate)
    result = await complete_login(rt, operator_id=operator_id, method="oidc", client=client)
    next_path = sealed.get("next") if isinstance(sealed, dict) else None
    return SsoDone(result, next_path if isinstance(next_path, str) else "/app")
