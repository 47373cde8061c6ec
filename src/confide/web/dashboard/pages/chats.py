"""Stored Chats: the filtered list (filters POSTed, see ``dashboard.filters``) and a transcript."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from confide.audit import service as audit
from confide.chats import service as chats
from confide.chats.schemas import StoredChatFilters
from confide.permissions.policy import Permission as P
from confide.web.api.deps import StateDep, operator_unit
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.filters import CHAT_FILTERS, filtered_list, has_personal, list_redirect, query_back
from confide.web.dashboard.templating import render
from confide.web.permits import needs

router = APIRouter(include_in_schema=False)
PATH = "/app/chats"


@router.get(PATH, dependencies=[needs(P.CHATS_READ)])
async def stored_chats(request: Request, actor: PageOperator, state: StateDep) -> Response:
    if has_personal(request.query_params):  # an old link: move its personal fields out of the URL
        return list_redirect(request, actor, request.query_params, CHAT_FILTERS, PATH)
    context = await filtered_list(
        request, actor, state, path=PATH, schema=StoredChatFilters, keys=CHAT_FILTERS, search=chats.search
    )
    if context["items"]:  # the read-access log: one row per list view, committed before the page is sent
        async with state.rt.db.unit_of_work() as uow:
            await audit.record_list_view(
                state.rt,
                uow,
                "chats.listed",
                actor=actor,
                target_type="conversation",
                ids=[item["id"] for item in context["items"]],
                via="stored_chats",
                page=context["pager"]["page"],
                total=context["pager"]["total"],
            )
    return render(request, "chats.html", actor, nav="chats", filtered=any(context["raw"].values()), **context)


@router.post(PATH, dependencies=[needs(P.CHATS_READ)])
async def stored_chats_search(request: Request, actor: PageOperator) -> Response:
    """The filter form: personal fields are kept server-side, the rest goes into the URL."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    return list_redirect(request, actor, form, CHAT_FILTERS, PATH)


@router.get(PATH + "/{conversation_id}", dependencies=[needs(P.CHATS_READ)])
async def stored_chat(conversation_id: str, request: Request, state: StateDep, actor: PageOperator) -> Response:
    # A write unit: the read-access log row commits with the read, before the page is sent.
    async with operator_unit(request, write=True) as unit:
        chat = await chats.transcript(state.rt, unit.uow, unit.actor, conversation_id)
        await audit.record(
            state.rt,
            unit.uow,
            "chats.viewed",
            actor=unit.actor,
            target_type="conversation",
            target_id=conversation_id,
            detail={"via": "stored_chats"},
        )
    back = query_back(request.query_params.get("back", ""), CHAT_FILTERS)
    back_url = PATH + (f"?{back}" if back else "")
    return render(request, "transcript.html", actor, nav="chats", chat=chat, back_url=back_url)
