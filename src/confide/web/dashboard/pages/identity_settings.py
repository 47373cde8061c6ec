"""Settings → Verified identity: each site's identity-verification secret (ADR 0022).
``settings.read`` sees whether a site has one; ``settings.manage`` generates (or regenerates) it,
shown once on the answer page and never again, or removes it. Every change is audited."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from confide.auth.actors import OperatorActor
from confide.core.errors import DomainError
from confide.permissions.policy import Permission, allows
from confide.permissions.policy import Permission as P
from confide.verified import service as verified
from confide.web.api.deps import StateDep, operator_unit
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.forms import sentence
from confide.web.dashboard.templating import error_page, render
from confide.web.permits import needs

router = APIRouter(include_in_schema=False)
PATH = "/app/settings/identity"


async def _page(request: Request, actor: OperatorActor, *, secret: tuple[str, str] | None = None) -> Response:
    try:
        async with operator_unit(request, write=False) as (uow, actor):
            sites = await verified.overview(uow, actor)
    except DomainError as exc:
        if exc.status == 403:
            return render(request, "admin_only.html", actor, status_code=403, nav="settings")
        return error_page(request, actor, exc.status, sentence(exc.message), nav="settings")
    flash = {"removed": "Verification turned off for that site."}.get(request.query_params.get("done", ""))
    response = render(
        request,
        "settings_identity.html",
        actor,
        nav="settings",
        tab="identity",
        sites=sites,
        new_secret=secret,
        can_manage=allows(actor, Permission.SETTINGS_MANAGE),
        flash=flash,
    )
    response.headers["Cache-Control"] = "no-store"  # the page may show a new secret, once
    return response


@router.get(PATH, dependencies=[needs(P.SETTINGS_READ)])
async def identity_page(request: Request, actor: PageOperator) -> Response:
    return await _page(request, actor)


async def _change(request: Request, actor: OperatorActor, state: StateDep, site_id: str, *, remove: bool) -> Response:
    try:
        async with operator_unit(request, write=True) as (uow, actor):
            if remove:
                await verified.remove_secret(state.rt, uow, actor, site_id)
                secret = None
            else:
                secret = await verified.rotate_secret(state.rt, uow, actor, site_id)
    except DomainError as exc:
        if exc.status == 403:
            return render(request, "admin_only.html", actor, status_code=403, nav="settings")
        return error_page(request, actor, exc.status, sentence(exc.message), nav="settings")
    if secret is None:
        return RedirectResponse(f"{PATH}?done=removed", status_code=303)
    return await _page(request, actor, secret=(site_id, secret))


@router.post(PATH + "/{site_id}/secret", dependencies=[needs(P.SETTINGS_MANAGE)])
async def identity_rotate(site_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _change(request, actor, state, site_id, remove=False)


@router.post(PATH + "/{site_id}/remove", dependencies=[needs(P.SETTINGS_MANAGE)])
async def identity_remove(site_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _change(request, actor, state, site_id, remove=True)
