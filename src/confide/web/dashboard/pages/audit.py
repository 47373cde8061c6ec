"""The Audit Report (``/app/audit``, ``Permission.AUDIT_READ``): the workspace's audit rows, newest
first, filtered and paged; the CSV export of the filtered rows (streamed in batches, at most
``report.EXPORT_MAX_ROWS``); and the chain's verification, run on demand (it walks every row).

The filter form is POSTed, as on Stored Chats (``dashboard.filters``): the actor and target ids
(pseudonymous, still personal data) are sealed into the opaque ``q`` bound to the operator who
searched; only the action, target type, outcome, dates and page travel in the URL. Operators'
names are looked up at render time in the users service, never stored in the log.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from confide.audit import report
from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock
from confide.core.runtime import Runtime
from confide.permissions.policy import Permission, require
from confide.users import operators as user_operators
from confide.web.api.deps import StateDep
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.filters import FILTER_TTL_S, pager, parse_filters
from confide.web.dashboard.forms import text
from confide.web.dashboard.templating import NO_STORE, render
from confide.web.permits import needs

router = APIRouter(include_in_schema=False)
PATH = "/app/audit"
KEYS = ("actor_id", "action", "target_type", "target_id", "outcome", "date_from", "date_to")
SEALED = frozenset({"actor_id", "target_id"})  # never in a URL
STORE_KEY = "q"
EXPIRED = "This search has expired; enter the actor or target again."
OUTCOMES = (("ok", "OK"), ("failed", "Failed"), ("denied", "Denied"))


def _context(actor: OperatorActor) -> str:
    return f"audit:{actor.operator_id}"


def _query(rt: Runtime, actor: OperatorActor, params: Mapping[str, str]) -> str:
    """The report's query: public filters as they are, sealed ones in ``q``."""
    pairs = {k: str(params.get(k, "")).strip() for k in KEYS if k not in SEALED}
    pairs = {k: v for k, v in pairs.items() if v}
    sealed = {k: str(params.get(k, "")).strip() for k in SEALED}
    sealed = {k: v for k, v in sealed.items() if v}
    if sealed:
        pairs[STORE_KEY] = rt.filter_tokens.seal(
            sealed, context=_context(actor), ttl_s=FILTER_TTL_S, now_epoch=clock.now().timestamp()
        )
    return urlencode(pairs)


def _params(rt: Runtime, actor: OperatorActor, query: Mapping[str, str]) -> tuple[dict[str, str], str, list[str]]:
    """The filters of a request (the sealed ones opened), the ``q`` still valid, and errors."""
    params = {k: v for k, v in query.items() if k not in SEALED}
    ref = params.get(STORE_KEY, "")
    if not ref:
        return params, "", []
    stored = rt.filter_tokens.open(ref, context=_context(actor), now_epoch=clock.now().timestamp())
    if not isinstance(stored, dict):
        return params, "", [EXPIRED]
    params.update({str(k): str(v) for k, v in stored.items() if k in SEALED})
    return params, ref, []


async def _report(
    request: Request,
    actor: OperatorActor,
    rt: Runtime,
    query: Mapping[str, str],
    *,
    verification: audit.Verification | None = None,
) -> Response:
    require(actor, Permission.AUDIT_READ)
    if any(query.get(k) for k in SEALED):  # an old link: move the ids out of the URL
        clean = _query(rt, actor, query)
        return RedirectResponse(PATH + (f"?{clean}" if clean else ""), status_code=303)
    params, ref, errors = _params(rt, actor, query)
    raw, filters, problems = parse_filters(report.AuditFilters, params, KEYS)
    errors += problems
    items: list[dict[str, Any]] = []
    total = 0
    async with rt.db.unit_of_work(readonly=True) as uow:
        choices = await report.actions(uow, actor)
        if filters is not None:
            items, total = await report.search(uow, actor, filters)
        ids = {i["actor_id"] for i in items if i["actor_type"] == "operator" and i["actor_id"]}
        ids |= {i["target_id"] for i in items if i["target_type"] == "operator" and i["target_id"]}
        names = await user_operators.operator_names(uow, ids)
    base = {k: v for k, v in raw.items() if v and k not in SEALED} | ({STORE_KEY: ref} if ref else {})
    return render(
        request,
        "audit.html",
        actor,
        status_code=422 if problems else 200,
        nav="audit",
        items=items,
        names=names,
        raw=raw,
        errors=errors,
        actions=choices,
        areas=report.areas(choices),
        outcomes=OUTCOMES,
        filtered=any(raw.values()),
        pager=pager(PATH, base, filters.page, filters.per_page, total) if filters else None,
        back=urlencode(base | ({"page": str(filters.page)} if filters else {})),
        export_query=urlencode(base),
        verification=verification,
    )


@router.get(PATH, dependencies=[needs(Permission.AUDIT_READ)])
async def audit_report(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _report(request, actor, state.rt, request.query_params)


@router.post(PATH, dependencies=[needs(Permission.AUDIT_READ)])
async def audit_report_search(request: Request, actor: PageOperator, state: StateDep) -> Response:
    require(actor, Permission.AUDIT_READ)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    query = _query(state.rt, actor, form)
    return RedirectResponse(PATH + (f"?{query}" if query else ""), status_code=303)


@router.post(PATH + "/verify", dependencies=[needs(Permission.AUDIT_READ)])
async def audit_verify(request: Request, actor: PageOperator, state: StateDep) -> Response:
    """Walk the whole chain now (on demand: it reads every row, in batches) and show the result
    with the report. The check itself is audited."""
    require(actor, Permission.AUDIT_READ)
    rt = state.rt
    async with rt.db.unit_of_work(readonly=True) as uow:
        result = await audit.verify(rt, uow)
    async with rt.db.unit_of_work() as uow:
        await audit.record(
            rt,
            uow,
            "audit.verified",
            actor=actor,
            outcome="ok" if result.ok else "failed",
            target_type="audit_log",
            detail={"rows": result.checked, "broken_seq": result.first_broken_seq},
        )
    return await _report(request, actor, rt, _safe_back(text(await request.form(), "back")), verification=result)


def _safe_back(value: str) -> dict[str, str]:
    """The list's query sent back by the verify form: only the known public keys, ``q`` and page."""
    allowed = {*(k for k in KEYS if k not in SEALED), "page", STORE_KEY}
    return {k: v for k, v in parse_qsl(value or "")[:20] if k in allowed}


@router.get(PATH + "/export.csv", dependencies=[needs(Permission.AUDIT_READ)])
async def audit_export(request: Request, actor: PageOperator, state: StateDep) -> Response:
    """The filtered rows as CSV (ids and codes only, as stored), newest first, streamed."""
    require(actor, Permission.AUDIT_READ)
    rt = state.rt
    params, _ref, errors = _params(rt, actor, request.query_params)
    _raw, filters, problems = parse_filters(report.AuditFilters, params, KEYS)
    if errors or problems or filters is None:
        return await _report(request, actor, rt, request.query_params)
    async with rt.db.unit_of_work() as uow:  # committed before the first byte is sent
        await audit.record(
            rt,
            uow,
            "audit.exported",
            actor=actor,
            target_type="audit_log",
            detail={k: True for k in KEYS if params.get(k)},
        )

    async def body() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(report.CSV_COLUMNS)
        async for cells in report.export_rows(rt.db, actor, filters):
            writer.writerow(cells)
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    filename = f"confide-audit-{clock.now().strftime('%Y%m%dT%H%M%SZ')}.csv"
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(body(), media_type="text/csv; charset=utf-8", headers=headers)
