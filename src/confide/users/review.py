"""Account review (issue 6, point 9): a report of every account, a periodic review signed off by a
permitted person, and accounts disabled automatically after a period without a login.

- ``account_report`` (``accounts.review``): each account's role, last login and its method,
  two-factor state, days since the last login (or since the account was created, if never), and
  whether it is disabled; ``report_csv`` exports it (audited: it holds names and addresses).
- ``policy`` / ``set_policy``: per workspace, the review interval (90 days by default) and the
  number of days without a login after which an account is disabled (off by default).
- ``sign_off`` (``accounts.sign_off``): records who signed, when, and every account's state at that
  moment (ids and codes only) in ``account_reviews``; audited ``accounts.review_signed``.
- ``disable_inactive``: the scheduler's job (one node at a time): disables the accounts past the
  workspace's limit, ends their sessions at once (the ``revoke`` event reaches open consoles),
  audits ``users.auto_disabled`` and tells the account and the administrators by e-mail. It never
  disables the last enabled account that can manage users, so a workspace cannot lock itself out.
"""

from __future__ import annotations

import csv
import html
import io
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto, mail
from confide.core.db import UnitOfWork
from confide.core.runtime import Runtime
from confide.permissions.policy import Permission, allows, require
from confide.realtime import events
from confide.users import operators as user_operators
from confide.users import sessions as user_sessions
from confide.users.account_models import AccountReview, ReviewPolicy
from confide.users.models import Operator

DEFAULT_INTERVAL_DAYS = 90


async def two_factor_state(uow: UnitOfWork, operator_id: str) -> str:
    """An account's two-factor state as a code: ``none``, ``totp``, ``passkey`` or ``totp+passkey``."""
    from confide.two_factor import service as two_factor  # it sits above users/ in the layers

    return await two_factor.two_factor_state(uow, operator_id)


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interval_days: Annotated[int, Field(ge=1, le=3650)] = DEFAULT_INTERVAL_DAYS
    inactive_days: Annotated[int, Field(ge=1, le=3650)] | None = None  # None: off


def _days_since(then: datetime, now: datetime) -> int:
    return max(0, (now - then).days)


async def _rows(uow: UnitOfWork, workspace_id: str) -> list[dict[str, Any]]:
    now = clock.now()
    ops = (
        await uow.session.scalars(
            select(Operator).where(Operator.workspace_id == workspace_id).order_by(Operator.created_at, Operator.id)
        )
    ).all()
    states = {op.id: await two_factor_state(uow, op.id) for op in ops}
    return [
        {
            "id": op.id,
            "name": op.name,
            "email": op.email,
            "role": op.role,
            "last_login_at": clock.iso(op.last_login_at),
            "last_login_method": op.last_login_method or "",
            "two_factor": states[op.id],
            "inactive_days": _days_since(op.last_login_at or op.created_at, now),
            "never_logged_in": op.last_login_at is None,
            "disabled": op.disabled,
            "created_at": clock.iso(op.created_at),
        }
        for op in ops
    ]


async def account_report(uow: UnitOfWork, actor: OperatorActor) -> list[dict[str, Any]]:
    require(actor, Permission.ACCOUNTS_REVIEW)
    return await _rows(uow, actor.workspace_id)


CSV_COLUMNS = (
    "id",
    "name",
    "email",
    "role",
    "last_login_at",
    "last_login_method",
    "two_factor",
    "inactive_days",
    "disabled",
    "created_at",
)


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else ("yes" if value is True else "no" if value is False else str(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def report_csv(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> str:
    """The report as CSV (a write unit: the export is audited)."""
    rows = await account_report(uow, actor)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    await audit.record(rt, uow, "accounts.review_exported", actor=actor, detail={"accounts": len(rows)})
    return out.getvalue()


# ---------------------------------------------------------------- policy and sign-off
async def _policy_row(uow: UnitOfWork, workspace_id: str) -> ReviewPolicy | None:
    return await uow.session.get(ReviewPolicy, workspace_id)


async def _last_review(uow: UnitOfWork, workspace_id: str) -> AccountReview | None:
    return await uow.session.scalar(
        select(AccountReview)
        .where(AccountReview.workspace_id == workspace_id)
        .order_by(AccountReview.signed_at.desc(), AccountReview.id.desc())
        .limit(1)
    )


async def policy(uow: UnitOfWork, actor: OperatorActor) -> dict[str, Any]:
    """The workspace's review rules and when the next review is due (now, if none was signed)."""
    require(actor, Permission.ACCOUNTS_REVIEW)
    row = await _policy_row(uow, actor.workspace_id)
    interval = row.interval_days if row else DEFAULT_INTERVAL_DAYS
    last = await _last_review(uow, actor.workspace_id)
    due = last.signed_at + timedelta(days=interval) if last else None
    now = clock.now()
    return {
        "interval_days": interval,
        "inactive_days": row.inactive_days if row else None,
        "last_signed_at": clock.iso(last.signed_at) if last else None,
        "last_signed_by": await user_operators.operator_name(uow, last.signed_by) if last else None,
        "next_due_at": clock.iso(due),
        "due": due is None or due <= now,
        "days_until_due": (due - now).days if due is not None and due > now else 0,
    }


async def set_policy(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, data: PolicyIn) -> ReviewPolicy:
    """Change the interval and the automatic disabling (it disables accounts: ``users.manage``)."""
    require(actor, Permission.USERS_MANAGE)
    row = await uow.session.get(ReviewPolicy, actor.workspace_id, with_for_update=True)
    if row is None:
        row = ReviewPolicy(workspace_id=actor.workspace_id, updated_at=clock.now())
        uow.session.add(row)
    row.interval_days, row.inactive_days, row.updated_at = data.interval_days, data.inactive_days, clock.now()
    await uow.session.flush()
    await audit.record(
        rt,
        uow,
        "accounts.review_policy_changed",
        actor=actor,
        target_type="workspace",
        target_id=actor.workspace_id,
        detail={"interval_days": data.interval_days, "inactive_days": data.inactive_days},
    )
    return row


def _snapshot(row: dict[str, Any]) -> dict[str, Any]:
    """What a sign-off keeps of an account: its id and codes, no name and no address."""
    return {
        "id": row["id"],
        "role": row["role"],
        "disabled": row["disabled"],
        "two_factor": row["two_factor"],
        "last_login_method": row["last_login_method"] or None,
        "inactive_days": row["inactive_days"],
    }


async def sign_off(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> AccountReview:
    require(actor, Permission.ACCOUNTS_SIGN_OFF)
    accounts = [_snapshot(r) for r in await _rows(uow, actor.workspace_id)]
    review = AccountReview(
        id=crypto.new_id(),
        workspace_id=actor.workspace_id,
        signed_by=actor.operator_id,
        signed_at=clock.now(),
        account_count=len(accounts),
        accounts=accounts,
    )
    uow.session.add(review)
    await uow.session.flush()
    await audit.record(
        rt,
        uow,
        "accounts.review_signed",
        actor=actor,
        target_type="account_review",
        target_id=review.id,
        detail={"accounts": len(accounts), "disabled": sum(1 for a in accounts if a["disabled"])},
    )
    return review


async def list_reviews(uow: UnitOfWork, actor: OperatorActor, *, limit: int = 20) -> list[dict[str, Any]]:
    require(actor, Permission.ACCOUNTS_REVIEW)
    rows = (
        await uow.session.scalars(
            select(AccountReview)
            .where(AccountReview.workspace_id == actor.workspace_id)
            .order_by(AccountReview.signed_at.desc(), AccountReview.id.desc())
            .limit(limit)
        )
    ).all()
    names = await user_operators.operator_names(uow, [r.signed_by for r in rows])
    return [
        {
            "id": r.id,
            "signed_at": clock.iso(r.signed_at),
            "signed_by": names.get(r.signed_by, "a former account"),
            "account_count": r.account_count,
            "disabled_count": sum(1 for a in r.accounts if a.get("disabled")),
        }
        for r in rows
    ]


# ---------------------------------------------------------------- automatic disabling (the scheduler's job)
async def disable_inactive(rt: Runtime, uow: UnitOfWork) -> int:
    """Disable every account past its workspace's ``inactive_days``; returns how many."""
    now = clock.now()
    policies = (await uow.session.scalars(select(ReviewPolicy).where(ReviewPolicy.inactive_days.is_not(None)))).all()
    total = 0
    for pol in policies:
        assert pol.inactive_days is not None
        total += await _disable_in_workspace(rt, uow, pol.workspace_id, pol.inactive_days, now)
    return total


async def _disable_in_workspace(rt: Runtime, uow: UnitOfWork, workspace_id: str, days: int, now: datetime) -> int:
    cutoff = now - timedelta(days=days)
    seen = func.coalesce(Operator.last_login_at, Operator.created_at)
    stale = list(
        (
            await uow.session.scalars(
                select(Operator)
                .where(Operator.workspace_id == workspace_id, Operator.disabled.is_(False), seen < cutoff)
                .order_by(Operator.id)
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            )
        ).all()
    )
    if not stale:
        return 0
    enabled = (
        await uow.session.scalars(
            select(Operator).where(Operator.workspace_id == workspace_id, Operator.disabled.is_(False))
        )
    ).all()
    managers = [op for op in enabled if allows(await user_sessions.actor_for(uow, op.id), Permission.USERS_MANAGE)]
    stale_ids = {op.id for op in stale}
    if managers and all(m.id in stale_ids for m in managers):
        # Keep the manager seen most recently: somebody must be able to enable the others again.
        keep = max(managers, key=lambda m: (m.last_login_at or m.created_at, m.id))
        stale = [op for op in stale if op.id != keep.id]
        stale_ids.discard(keep.id)
    for op in stale:
        op.disabled, op.status = True, "offline"
        await user_sessions.revoke_sessions(uow, op.id)
        events.publish(rt, uow, events.Revoke(op.id))
        await audit.record(
            rt,
            uow,
            "users.auto_disabled",
            actor_type="system",
            workspace_id=workspace_id,
            target_type="operator",
            target_id=op.id,
            detail={"inactive_days": _days_since(op.last_login_at or op.created_at, now), "limit_days": days},
        )
        _tell_account(rt, uow, op, days)
    admins = [m for m in managers if m.id not in stale_ids]
    if stale and admins:
        _tell_admins(rt, uow, workspace_id, [m.email for m in admins], [op.name for op in stale], days)
    await uow.session.flush()
    return len(stale)


def _tell_account(rt: Runtime, uow: UnitOfWork, op: Operator, days: int) -> None:
    text = (
        f"Hello {op.name},\n\n"
        f"Your Confide account has been disabled because nobody logged in to it for {days} days.\n"
        "If you still need it, ask an administrator of your team to enable it again.\n"
    )
    mail.enqueue_mail(
        rt,
        uow,
        to=[op.email],
        subject="Your Confide account has been disabled",
        text=text,
        html="".join(f"<p>{html.escape(line)}</p>" for line in text.strip().split("\n") if line),
        workspace_id=op.workspace_id,
        subject_id=op.id,
    )


def _tell_admins(rt: Runtime, uow: UnitOfWork, workspace_id: str, to: list[str], names: list[str], days: int) -> None:
    listing = "\n".join(f"- {n}" for n in names)
    text = (
        f"{len(names)} Confide account(s) had no login for {days} days and have been disabled:\n\n{listing}\n\n"
        "Settings → Account review shows every account; Settings → Operators enables one again.\n"
    )
    body = (
        f"<p>{len(names)} Confide account(s) had no login for {days} days and have been disabled:</p><ul>"
        + "".join(f"<li>{html.escape(n)}</li>" for n in names)
        + "</ul><p>Settings → Account review shows every account; Settings → Operators enables one again.</p>"
    )
    for address in to:  # one message each: administrators do not see each other's addresses
        mail.enqueue_mail(
            rt,
            uow,
            to=[address],
            subject="Inactive Confide accounts disabled",
            text=text,
            html=body,
            workspace_id=workspace_id,
        )


async def page_data(uow: UnitOfWork, actor: OperatorActor) -> dict[str, Any]:
    """Everything the Account review page shows (``accounts.review``), and what the caller may do."""
    return {
        "policy": await policy(uow, actor),
        "accounts": await account_report(uow, actor),
        "reviews": await list_reviews(uow, actor),
        "can_sign_off": allows(actor, Permission.ACCOUNTS_SIGN_OFF),
        "can_set_policy": allows(actor, Permission.USERS_MANAGE),
    }
