"""The live console shell (its ES modules talk to ``/ws/operator``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.templating import render
from confide.web.permits import authenticated

router = APIRouter(include_in_schema=False)


@router.get("/app", dependencies=[authenticated()])
async def console(request: Request, actor: PageOperator) -> Response:
    return render(request, "console.html", actor, nav="console")
