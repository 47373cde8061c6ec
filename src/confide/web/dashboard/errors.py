"""The dashboard's one exception handler: a ``DomainError`` that a page did not turn into a form
message becomes an error page with its status (403 from Settings: the "administrators only" page)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from confide.auth.actors import OperatorActor
from confide.core.errors import DomainError
from confide.web.dashboard.forms import sentence
from confide.web.dashboard.templating import error_page, render
from confide.web.denials import record_denial

_AREAS = (("/app/chats", "chats"), ("/app/offline", "offline"), ("/app/prospects", "prospects"),
          ("/app/requests", "requests"), ("/app/settings", "settings"), ("/app/audit", "audit"),
          ("/app", "console"))
_NOT_FOUND = {"chats": ("Chat not found", "This chat does not exist or you may not see it.")}


def area_of(path: str) -> str:
    return next((nav for prefix, nav in _AREAS if path.startswith(prefix)), "")


async def page_error(request: Request, exc: DomainError) -> Response:
    actor = getattr(request.state, "operator", None)
    me = actor if isinstance(actor, OperatorActor) else None
    nav = area_of(request.url.path)
    await record_denial(request, exc)  # access.denied for a 403 (audit log)
    if exc.status == 403 and nav == "settings":
        return render(request, "admin_only.html", me, status_code=403, nav=nav)
    if exc.status == 404:
        title, message = _NOT_FOUND.get(nav, ("Not found", "This page does not exist or you may not see it."))
        return error_page(request, me, 404, message, title=title, nav=nav)
    return error_page(request, me, exc.status, sentence(exc.message), nav=nav)
