"""Consent surfaces outside the widget: the operator's record of a consent statement made in the
chat (JSON), and the one-click withdrawal link of marketing e-mail (a small public page: GET shows
what will be withdrawn and a button; POST withdraws, which also serves RFC 8058's one-click POST)."""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from confide.consent import links as consent_links
from confide.consent import statements
from confide.consent.schemas import StatementIn
from confide.core.errors import NotFound
from confide.permissions.policy import Permission as P
from confide.web.api.deps import AnonymousRead, AnonymousWrite, StateDep, WriteUnit
from confide.web.api.docs import errors
from confide.web.permits import needs, public

router = APIRouter(tags=["consent"])


@router.post(
    "/api/v1/conversations/{conversation_id}/consent-statements",
    status_code=201,
    responses=errors(401, 403, 404, 409, 422),
    dependencies=[needs(P.CHATS_PARTICIPATE)],
)
async def consent_statement(
    conversation_id: str, body: StatementIn, state: StateDep, unit: WriteUnit
) -> dict[str, Any]:
    """Record what the visitor said in the chat about a purpose, referring to their message."""
    row = await statements.record_statement(state.rt, unit.uow, unit.actor, conversation_id, body)
    return {"id": row.id, "purpose": row.purpose, "granted": row.granted, "notice_version": row.notice_version}


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title>
<link rel="stylesheet" href="/static/confide.css"></head>
<body class="login-body"><main class="login-main"><section class="card login-card" aria-labelledby="t">
<h1 id="t">{title}</h1>{body}</section></main></body></html>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status,
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _invalid() -> HTMLResponse:
    return _page("Link not valid", "<p>This link is not valid. Please use the link from your e-mail as it is.</p>", 404)


@router.get("/consent/withdraw/{token}", include_in_schema=False, dependencies=[public()])
async def withdraw_page(token: str, state: StateDep, uow: AnonymousRead) -> HTMLResponse:
    try:
        view = await consent_links.link_view(state.rt, uow, token)
    except NotFound:
        return _invalid()
    name = html.escape(view["name"])
    if not view["granted"]:
        return _page("Already stopped", f"<p>You do not receive <strong>{name}</strong> from us.</p>")
    return _page(
        "Stop these e-mails",
        f"<p>You are about to withdraw your consent to <strong>{name}</strong>. One click, no log-in.</p>"
        f'<form method="post" action="/consent/withdraw/{html.escape(token)}">'
        '<button type="submit" class="btn btn-primary" data-testid="withdraw">Withdraw my consent</button></form>',
    )


@router.post("/consent/withdraw/{token}", include_in_schema=False, dependencies=[public()])
async def withdraw(token: str, request: Request, state: StateDep, uow: AnonymousWrite) -> HTMLResponse:
    """The confirm form's POST, or a mail client's one-click POST (``List-Unsubscribe=One-Click``)."""
    try:
        await consent_links.withdraw_by_link(state.rt, uow, token)
    except NotFound:
        return _invalid()
    return _page("Consent withdrawn", "<p>Done: you will not receive these e-mails any more.</p>")
