"""Settings → Account review: every account's role, last login, method, two-factor state and
inactivity; when the next periodic review is due; sign-off; the review rules; CSV export."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from confide.auth.actors import OperatorActor
from confide.core import clock
from confide.core.errors import DomainError
from confide.permissions.policy import Permission as P
from confide.users import review
from confide.web.api.deps import StateDep, operator_unit
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.forms import errors, text
from confide.web.dashboard.templating import NO_STORE, render
from confide.web.permits import needs

router = APIRouter(include_in_schema=False)

PAGE = "/app/settings/account-review"
DONE = {"signed": "Review signed off.", "policy": "Review rules saved."}


async def _page(
    request: Request,
    actor: OperatorActor,
    *,
    policy_form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    async with operator_unit(request, write=False) as (uow, actor):
        data = await review.page_data(uow, actor)
    policy = data["policy"]
    form = policy_form or {
        "interval_days": str(policy["interval_days"]),
        "inactive_days": str(policy["inactive_days"] or ""),
        "errors": [],
    }
    return render(
        request,
        "settings_account_review.html",
        actor,
        status_code=status_code,
        nav="settings",
        tab="account-review",
        flash=DONE.get(request.query_params.get("done", "")) if policy_form is None else None,
        policy_form=form,
        **data,
    )


@router.get(PAGE, dependencies=[needs(P.ACCOUNTS_REVIEW)])
async def account_review_page(request: Request, actor: PageOperator) -> Response:
    return await _page(request, actor)


@router.get(PAGE + ".csv", dependencies=[needs(P.ACCOUNTS_REVIEW)])
async def account_review_csv(request: Request, actor: PageOperator, state: StateDep) -> Response:
    async with operator_unit(request, write=True) as (uow, actor):  # the export is audited
        body = await review.report_csv(state.rt, uow, actor)
    name = f"confide-accounts-{clock.now().strftime('%Y%m%d')}.csv"
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


@router.post(PAGE + "/sign-off", dependencies=[needs(P.ACCOUNTS_SIGN_OFF)])
async def account_review_sign_off(request: Request, actor: PageOperator, state: StateDep) -> Response:
    async with operator_unit(request, write=True) as (uow, actor):
        await review.sign_off(state.rt, uow, actor)
    return RedirectResponse(f"{PAGE}?done=signed", status_code=303)


@router.post(PAGE + "/policy", dependencies=[needs(P.USERS_MANAGE)])
async def account_review_policy(request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    shape = {"interval_days": text(form, "interval_days").strip(), "inactive_days": text(form, "inactive_days").strip()}
    try:
        body = review.PolicyIn.model_validate({k: v or None for k, v in shape.items() if k == "inactive_days" or v})
        async with operator_unit(request, write=True) as (uow, actor):
            await review.set_policy(state.rt, uow, actor, body)
    except (ValidationError, DomainError) as exc:
        if isinstance(exc, DomainError) and exc.status == 403:
            raise
        status = exc.status if isinstance(exc, DomainError) else 422
        return await _page(request, actor, policy_form={**shape, "errors": errors(exc)}, status_code=status)
    return RedirectResponse(f"{PAGE}?done=policy", status_code=303)
