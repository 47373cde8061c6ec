"""Find a person (``subjects.view``): one search form (POST, so no personal value sits in a URL),
results grouped per person with the rows held in each store, and from each person their export
(``subjects.export``): a download, or an e-mail to them with a single-use link. And the page the
person opens from that e-mail (``/subject-export/{token}``): the one-time code, then the download.

The token is in the path: the access log writes route templates only, the page sends
``Referrer-Policy: same-origin`` and loads nothing from other origins (strict CSP)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from confide.core.errors import DomainError
from confide.permissions.policy import Permission as P
from confide.rectification import service as rectification
from confide.restriction import notice
from confide.restriction import service as restriction
from confide.subjects import delivery, export, find
from confide.subjects.schemas import FORMATS, KINDS, ExportIn, FindIn
from confide.web.api.deps import StateDep, operator_unit
from confide.web.api.subjects import attachment
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.forms import messages, sentence, text
from confide.web.dashboard.templating import error_page, render
from confide.web.origins import server_origin
from confide.web.permits import needs, public
from confide.web.security import form_from_own_site

router = APIRouter(include_in_schema=False)
PATH = "/app/subjects"
LABELS = {"email": "E-mail address", "phone": "Phone number", "name": "Name", "visitor": "Visitor id",
          "verified": "Verified identity (the site's user id)", "word": "Words said in a chat"}
FORMAT_LABELS = {"json": "JSON (machine-readable)", "csv": "CSV (zip)", "xlsx": "Excel", "pdf": "PDF"}


def _page(request: Request, actor: Any, *, status_code: int = 200, **context: Any) -> Response:
    context.setdefault("by", "email")
    context.setdefault("value", "")
    context.setdefault("persons", None)
    context.setdefault("errors", [])
    context.setdefault("error_title", "The search was not run")
    return render(request, "subjects.html", actor, nav="subjects", status_code=status_code, kinds=KINDS,
                  labels=LABELS, formats=FORMATS, format_labels=FORMAT_LABELS, reasons=restriction.REASONS,
                  reason_labels=restriction.REASON_LABELS, field_labels=FIELD_LABELS,
                  rectify_reasons=rectification.REASONS, **context)


@router.get(PATH, dependencies=[needs(P.SUBJECTS_VIEW)])
async def subjects_page(request: Request, actor: PageOperator) -> Response:
    return _page(request, actor)


@router.post(PATH, dependencies=[needs(P.SUBJECTS_VIEW)])
async def subjects_search(request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    by, value = text(form, "by"), text(form, "value")
    try:
        query = FindIn(by=by, value=value)  # type: ignore[arg-type]
    except ValidationError as exc:
        return _page(request, actor, status_code=422, by=by, value=value[:320], errors=messages(exc))
    try:
        async with operator_unit(request, write=True) as unit:  # the read-access log commits with the read
            persons = await find.find(state.rt, unit.uow, unit.actor, query, via="page")
    except DomainError as exc:
        return _page(request, actor, status_code=exc.status, by=by, value=value, errors=[sentence(exc.message)])
    return _page(request, actor, by=query.by, value=query.value, persons=[p.view() for p in persons])


def _person(form: FormData) -> ExportIn:
    ids = [v for v in text(form, "visitor_ids").split(",") if v]
    prospects = [v for v in text(form, "prospect_ids").split(",") if v]
    return ExportIn(visitor_ids=ids, prospect_ids=prospects, searched_by=text(form, "searched_by") or "visitor",  # type: ignore[arg-type]
                    fmt=text(form, "fmt") or "json")  # type: ignore[arg-type]


@router.post(PATH + "/export", dependencies=[needs(P.SUBJECTS_EXPORT)])
async def subjects_export(request: Request, actor: PageOperator, state: StateDep) -> Response:
    try:
        body = _person(await request.form())
    except ValidationError as exc:
        return error_page(request, actor, 422, " ".join(messages(exc)), title="No export", nav="subjects")
    return attachment(await export.export_person(state.rt, actor, body, via="page"))


@router.post(PATH + "/send", dependencies=[needs(P.SUBJECTS_EXPORT)])
async def subjects_send(request: Request, actor: PageOperator, state: StateDep) -> Response:
    try:
        body = _person(await request.form())
    except ValidationError as exc:
        return error_page(request, actor, 422, " ".join(messages(exc)), title="Nothing was sent", nav="subjects")
    base = state.rt.settings.public_url or str(request.base_url)
    async with operator_unit(request, write=True) as unit:
        sent = await delivery.send_link(state.rt, unit.uow, unit.actor, body, base_url=base)
    return _page(request, actor, flash="The person was sent a link to their export (valid once, until "
                 f"{sent.expires_at[:16].replace('T', ' ')} UTC). The data itself is not in the e-mail.")


# ---------------------------------------------------------------- restriction (Art. 18, ADR 0031)
async def _restriction_action(request: Request, actor: Any, state: Any, *, lift: bool) -> Response:
    form = await request.form()
    ids = [v for v in text(form, "visitor_ids").split(",") if v]
    title = "The restriction was not lifted" if lift else "The processing was not restricted"
    try:
        async with operator_unit(request, write=True) as unit:
            if lift:
                done = await notice.lift_and_tell(state.rt, unit.uow, unit.actor, unit.actor.workspace_id, ids)
            else:
                done = await restriction.restrict(state.rt, unit.uow, unit.actor, unit.actor.workspace_id, ids,
                                                  reason=text(form, "reason"), request_id=text(form, "request_id"))
    except DomainError as exc:
        return error_page(request, actor, exc.status, sentence(exc.message), title=title, nav="subjects")
    if lift:
        flash = ("The restriction was lifted." + (" The person is told by e-mail." if done["told"] else
                 " No e-mail address is on record: tell the person another way.")
                 if done["lifted"] else "This person's processing was not restricted.")
    else:
        flash = ("Processing is restricted: the data is kept, nothing else is done with it."
                 if done["added"] else "This person's processing was restricted already; nothing changed.")
    # The person again, as found by their first visit id, so the page shows the new state.
    try:
        async with operator_unit(request, write=True) as unit:
            persons = await find.find(state.rt, unit.uow, unit.actor, FindIn(by="visitor", value=ids[0]), via="page")
    except DomainError:  # pragma: no cover - a privacy role may restrict but not search: show the message only
        return _page(request, actor, flash=flash)
    return _page(request, actor, flash=flash, by="visitor", value=ids[0], persons=[p.view() for p in persons])


@router.post(PATH + "/restrict", dependencies=[needs(P.SUBJECTS_RESTRICT)])
async def subjects_restrict(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _restriction_action(request, actor, state, lift=False)


@router.post(PATH + "/lift-restriction", dependencies=[needs(P.SUBJECTS_RESTRICT)])
async def subjects_lift_restriction(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _restriction_action(request, actor, state, lift=True)


FIELD_LABELS = {"name": "Name", "email": "E-mail address", "phone": "Phone number"}


@router.post(PATH + "/rectify", dependencies=[needs(P.SUBJECTS_RECTIFY)])
async def subjects_rectify(request: Request, actor: PageOperator, state: StateDep) -> Response:
    """Correct one field of the person everywhere it is held (Art. 16, ADR 0032). The page says
    which stores changed, never the value."""
    form = await request.form()
    ids = [v for v in text(form, "visitor_ids").split(",") if v]
    field = text(form, "field")
    try:
        async with operator_unit(request, write=True) as unit:
            done = await rectification.rectify(
                state.rt, unit.uow, unit.actor, unit.actor.workspace_id, ids, field, text(form, "value"),
                request_id=text(form, "request_id").strip() or None, reason=text(form, "reason") or "request")
    except DomainError as exc:
        return _page(request, actor, status_code=exc.status, errors=[sentence(exc.message)],
                     error_title="Nothing was corrected")
    stores = ", ".join(f"{name} ({n})" for name, n in done["tables"].items()) or "no store held it"
    return _page(request, actor, flash=f"{FIELD_LABELS.get(field, field)} corrected everywhere it was held: {stores}. "
                 f"The person's data keys were rotated ({done['keys_rotated']}); search again to see the person.")


# ---------------------------------------------------------------- the person's link
def _link_page(request: Request, token: str, *, status_code: int = 200, refused: str | None = None,
               errors: list[str] | None = None) -> Response:
    message = delivery.LinkUnusable.MESSAGES.get(refused or "", "") if refused else ""
    return render(request, "subject_export.html", None, status_code=status_code, refused=bool(refused),
                  message=message, token=token, errors=errors or [])


@router.get("/subject-export/{token}", dependencies=[public()])
async def link_page(token: str, request: Request, state: StateDep) -> Response:
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        try:
            await delivery.check_link(uow, token)
        except delivery.LinkUnusable as exc:
            return _link_page(request, "", status_code=exc.status, refused=exc.reason)
    return _link_page(request, token)


@router.post("/subject-export/{token}", dependencies=[public()])
async def link_download(token: str, request: Request, state: StateDep) -> Response:
    rt = state.rt
    own = server_origin(request.url.scheme, request.headers.get("host"), rt.settings.public_url)
    if not form_from_own_site(request.headers, own):
        return error_page(request, None, 403, "This form was sent from another site.", title="Refused")
    code = text(await request.form(), "code")
    try:
        delivered = await delivery.download(rt, token, code)
    except delivery.LinkUnusable as exc:
        return _link_page(request, "", status_code=exc.status, refused=exc.reason)
    except delivery.WrongCode as exc:
        return _link_page(request, token, status_code=422, errors=[sentence(exc.message)])
    return attachment(delivered)
