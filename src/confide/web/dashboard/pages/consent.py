"""Consent in the back office (ADR 0018).

- ``/app/consent``: the ledger's rows, newest first,
  filtered by purpose, granted/withdrawn, source, site and dates (none of them personal, so they
  travel in the URL); ``/app/consent/records/{id}``: one row with the exact notice it was given under.
- ``/app/settings/privacy``: the workspace's purposes,
  a new purpose, a purpose's settings, and a new notice version (never an edit of an old one).

The routes are declared ``needs(CONSENT_MANAGE)`` (one declared permission per route, as the
role matrix checks); ``consent.admin`` checks again and would also accept ``SUBJECTS_VIEW`` for
the ledger and ``SETTINGS_MANAGE`` for purposes, once a route can declare either of two.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from confide.auth.actors import OperatorActor
from confide.consent import admin as consent_admin
from confide.consent import notices as consent_notices
from confide.consent import purposes as K
from confide.consent.schemas import NoticeIn, PurposeIn, PurposePatch, RecordFilters
from confide.core.errors import DomainError
from confide.permissions.policy import Permission
from confide.web.api.deps import StateDep, operator_unit
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.filters import pager, parse_filters
from confide.web.dashboard.forms import errors, sentence, text
from confide.web.dashboard.templating import error_page, render
from confide.web.permits import needs
from confide.workspaces import service as workspaces

router = APIRouter(include_in_schema=False)
PATH = "/app/consent"
SETTINGS_PATH = "/app/settings/privacy"
KEYS = ("purpose", "state", "source", "site_id", "date_from", "date_to")


def _denied(request: Request, actor: OperatorActor, exc: DomainError, nav: str) -> Response:
    if exc.status == 403:
        return render(request, "admin_only.html", actor, status_code=403, nav=nav)
    return error_page(request, actor, exc.status, sentence(exc.message), nav=nav)


# ---------------------------------------------------------------- the ledger
@router.get(PATH, dependencies=[needs(Permission.CONSENT_MANAGE)])
async def consent_records(request: Request, actor: PageOperator) -> Response:
    params = dict(request.query_params)
    state = params.pop("state", "")
    if state in ("granted", "withdrawn"):
        params["granted"] = "true" if state == "granted" else "false"
    raw, filters, problems = parse_filters(RecordFilters, params, (*KEYS[:1], "granted", *KEYS[2:]))
    raw["state"] = state if state in ("granted", "withdrawn") else ""
    items: list[Any] = []
    total = 0
    try:
        async with operator_unit(request, write=False) as (uow, actor):
            consent_admin.require_ledger(actor)
            if filters is not None:
                items, total = await consent_admin.search_records(uow, actor, filters)
            purposes = await consent_notices.list_purposes(uow, actor.workspace_id)
            sites = await workspaces.list_sites(uow, actor)
    except DomainError as exc:
        return _denied(request, actor, exc, "consent")
    base = {k: v for k, v in raw.items() if v and k != "granted"}
    return render(
        request,
        "consent.html",
        actor,
        status_code=422 if problems else 200,
        nav="consent",
        items=items,
        raw=raw,
        errors=problems,
        purposes=purposes,
        sites=sites,
        site_names={s.id: s.name for s in sites},
        sources=K.SOURCES,
        filtered=any(v for k, v in raw.items() if k != "granted"),
        pager=pager(PATH, base, filters.page, filters.per_page, total) if filters else None,
    )


@router.get(PATH + "/records/{record_id}", dependencies=[needs(Permission.CONSENT_MANAGE)])
async def consent_record(record_id: str, request: Request, actor: PageOperator) -> Response:
    try:
        async with operator_unit(request, write=False) as (uow, actor):
            row, notice = await consent_admin.record_with_notice(uow, actor, record_id)
    except DomainError as exc:
        return _denied(request, actor, exc, "consent")
    return render(request, "consent_record.html", actor, nav="consent", r=row, notice=notice)


# ---------------------------------------------------------------- Settings → Privacy purposes
async def _settings(
    request: Request, actor: OperatorActor, *, problems: list[str] | None = None, open_id: str = "",
    status_code: int = 200,
) -> Response:
    try:
        async with operator_unit(request, write=False) as (uow, actor):
            consent_admin.require_manage(actor)
            purposes = await consent_notices.list_purposes(uow, actor.workspace_id)
            rows = [{"p": p, "notices": await consent_notices.notices_of(uow, p)} for p in purposes]
    except DomainError as exc:
        return _denied(request, actor, exc, "settings")
    saved = request.query_params.get("saved")
    return render(
        request,
        "settings_privacy.html",
        actor,
        status_code=status_code,
        nav="settings",
        tab="privacy",
        rows=rows,
        bases=[(b, K.BASIS_LABELS[b]) for b in K.LAWFUL_BASES],
        problems=problems or [],
        open_id=open_id,
        flash="Saved." if saved == "1" and not problems else None,
    )


@router.get(SETTINGS_PATH, dependencies=[needs(Permission.CONSENT_MANAGE)])
async def privacy_settings(request: Request, actor: PageOperator) -> Response:
    return await _settings(request, actor)


async def _save(request: Request, actor: OperatorActor, anchor: str, action: Any) -> Response:
    try:
        async with operator_unit(request, write=True) as (uow, actor):
            await action(uow, actor)
    except (ValidationError, DomainError) as exc:
        if isinstance(exc, DomainError) and exc.status in (403, 404):
            return _denied(request, actor, exc, "settings")
        status = exc.status if isinstance(exc, DomainError) else 422
        return await _settings(request, actor, problems=errors(exc), open_id=anchor, status_code=status)
    return RedirectResponse(f"{SETTINGS_PATH}?saved=1#{anchor}", status_code=303)


@router.post(SETTINGS_PATH, dependencies=[needs(Permission.CONSENT_MANAGE)])
async def privacy_create(request: Request, actor: PageOperator) -> Response:
    form = await request.form()

    async def action(uow: Any, who: OperatorActor) -> None:
        data = PurposeIn(
            key=text(form, "key"), name=text(form, "name"), lawful_basis=text(form, "lawful_basis") or "consent",
            description=text(form, "description"), retention_class=text(form, "retention_class") or "consent",
            recipients=text(form, "recipients"), notice=text(form, "notice"), language=text(form, "language") or "en",
        )
        await consent_admin.create_purpose(uow, who, data)

    return await _save(request, actor, "new-purpose", action)


@router.post(SETTINGS_PATH + "/{purpose_id}", dependencies=[needs(Permission.CONSENT_MANAGE)])
async def privacy_update(purpose_id: str, request: Request, actor: PageOperator) -> Response:
    form = await request.form()

    async def action(uow: Any, who: OperatorActor) -> None:
        patch = PurposePatch(
            name=text(form, "name") or None, lawful_basis=text(form, "lawful_basis") or None,
            description=text(form, "description"), retention_class=text(form, "retention_class"),
            recipients=text(form, "recipients"), enabled=form.get("enabled") == "on",
        )
        await consent_admin.update_purpose(uow, who, purpose_id, patch)

    return await _save(request, actor, f"p-{purpose_id[:40]}", action)


@router.post(SETTINGS_PATH + "/{purpose_id}/notices", dependencies=[needs(Permission.CONSENT_MANAGE)])
async def privacy_publish(purpose_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()

    async def action(uow: Any, who: OperatorActor) -> None:
        data = NoticeIn(text=text(form, "text"), language=text(form, "language") or "en",
                        material=form.get("material") == "on")
        await consent_admin.publish_notice(uow, who, purpose_id, data)

    return await _save(request, actor, f"p-{purpose_id[:40]}", action)
