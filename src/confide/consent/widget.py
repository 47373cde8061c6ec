"""The widget's Privacy view (ADR 0018): every enabled purpose with its current notice and the
visitor's standing, and one click there to grant or withdraw a purpose. The visitor is named by a
genuine, unexpired visitor token of the very site that asks."""

from __future__ import annotations

from typing import Any

from confide.auth import visitor_tokens
from confide.auth.actors import VisitorActor
from confide.consent import purposes as K
from confide.consent.ledger import record, states
from confide.consent.notices import current_notice, list_purposes, offered_purposes
from confide.consent.schemas import WidgetChoiceIn, WidgetPrivacyIn
from confide.core.db import UnitOfWork
from confide.core.errors import NotFound, Unauthorized
from confide.core.runtime import Runtime
from confide.workspaces.models import Site


async def privacy_view(uow: UnitOfWork, site: Site, subject_id: str, language: str | None = None) -> dict[str, Any]:
    """What the widget's Privacy view lists: every enabled purpose of the workspace (the ones the
    visitor may change first) with its current notice and the visitor's standing."""
    purposes = [p for p in await list_purposes(uow, site.workspace_id) if p.enabled]
    offered = {p.key for p in await offered_purposes(uow, site)}
    all_states = await states(uow, site.workspace_id, subject_id)
    items = []
    for p in purposes:
        if p.lawful_basis == K.CONSENT and p.key not in offered:
            continue
        notice = await current_notice(uow, p, language)
        st = all_states[p.key]
        items.append({
            "key": p.key,
            "name": p.name,
            "basis": p.lawful_basis,
            "required": p.required,
            "description": p.description,
            "granted": (st.granted is not False) if p.lawful_basis != K.CONSENT else bool(st.granted) and st.valid,
            "needs_answer": p.lawful_basis == K.CONSENT and bool(st.granted) and not st.valid,
            "notice": {"id": notice.id, "version": notice.version, "language": notice.language, "text": notice.text}
            if notice else None,
        })
    return {"purposes": items, "needs_answer": any(i["needs_answer"] for i in items)}


def _visitor(rt: Runtime, site: Site, token: object) -> VisitorActor:
    """The visitor a widget call names: a genuine, unexpired token of this very site."""
    who = visitor_tokens.verify(rt.visitor_tokens, token, site_id=site.id)
    if who.workspace_id != site.workspace_id:
        raise Unauthorized("invalid or expired visitor token")
    return who


async def visitor_privacy(rt: Runtime, uow: UnitOfWork, site: Site, data: WidgetPrivacyIn) -> dict[str, Any]:
    who = _visitor(rt, site, data.token)
    return await privacy_view(uow, site, who.visitor_id, data.language)


async def visitor_choice(rt: Runtime, uow: UnitOfWork, site: Site, data: WidgetChoiceIn) -> dict[str, Any]:
    """One click in the widget's Privacy view: grant or withdraw one purpose the view lists."""
    who = _visitor(rt, site, data.token)
    listed = {p["key"] for p in (await privacy_view(uow, site, who.visitor_id, data.language))["purposes"]}
    if data.purpose not in listed:
        raise NotFound("purpose not found")
    await record(rt, uow, workspace_id=site.workspace_id, subject_id=who.visitor_id, purpose=data.purpose,
                 granted=data.granted, source=K.WIDGET, notice_id=data.notice_id, language=data.language,
                 site_id=site.id, actor=who)
    return await privacy_view(uow, site, who.visitor_id, data.language)
