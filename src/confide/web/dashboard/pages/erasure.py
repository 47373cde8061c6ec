"""The Erase flow (ADR 0028): ``/app/subjects/erase?visitor=…`` previews what would go (counts per
table), a typed confirmation erases, then the certificate (viewable, downloadable as JSON). The
subjects helper's Find a person page links here with the person's visitor ids."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from confide.core.errors import DomainError, Invalid
from confide.erasure import service as erasure
from confide.permissions.policy import Permission as P
from confide.web.api.deps import StateDep, operator_unit
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.forms import text
from confide.web.dashboard.templating import render
from confide.web.permits import needs

router = APIRouter(include_in_schema=False)
PATH = "/app/subjects/erase"
CONFIRM = "ERASE"


def _ids(values: list[str]) -> list[str]:
    return [v for v in values if isinstance(v, str) and v.strip()][: erasure.MAX_SUBJECTS]


@router.get(PATH, dependencies=[needs(P.SUBJECTS_ERASE)])
async def erase_preview(request: Request, actor: PageOperator, state: StateDep) -> Response:
    ids = _ids(request.query_params.getlist("visitor"))
    counts: dict[str, int] = {}
    problem = None
    if ids:
        try:
            async with operator_unit(request, write=False) as unit:
                counts = await erasure.preview(state.rt, unit.uow, unit.actor, unit.actor.workspace_id, ids)
        except DomainError as exc:
            problem = exc.message
    reference = request.query_params.get("request", "")[:64]  # from a request's page: the request it answers
    return render(request, "erasure.html", actor, nav="erasure", visitor_ids=ids, counts=counts, reference=reference,
                  total=sum(counts.values()), problem=problem, confirm_word=CONFIRM, reasons=erasure.STAFF_REASONS,
                  status_code=404 if problem else 200)


@router.post(PATH, dependencies=[needs(P.SUBJECTS_ERASE)])
async def erase_confirm(request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    ids = _ids([v for v in form.getlist("visitor") if isinstance(v, str)])
    if text(form, "confirm").strip() != CONFIRM:
        raise Invalid(f'type "{CONFIRM}" to confirm the erasure')
    async with operator_unit(request, write=True) as unit:
        cert = await erasure.erase(state.rt, unit.uow, unit.actor, unit.actor.workspace_id, ids,
                                   request_id=text(form, "request_id").strip() or None,
                                   reason=text(form, "reason") or "request")
        cert_id = cert.id
    return RedirectResponse(f"/app/subjects/erasures/{cert_id}", status_code=303)


@router.get("/app/subjects/erasures/{certificate_id}", dependencies=[needs(P.SUBJECTS_ERASE)])
async def erasure_certificate(certificate_id: str, request: Request, actor: PageOperator) -> Response:
    async with operator_unit(request, write=False) as unit:
        view = erasure.certificate_view(await erasure.get_certificate(unit.uow, unit.actor, certificate_id))
    return render(request, "erasure_certificate.html", actor, nav="erasure", cert=view)
