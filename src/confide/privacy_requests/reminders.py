"""Reminders to staff of data-subject requests falling due or overdue (ADR 0029): the scheduler's
job. Each open request gets one "due soon" and one "overdue" reminder per due date, claimed by a
conditional update so that no reminder is sent twice (two nodes, two ticks); an extension moves
the date, and the reminders come again for the new one."""

from __future__ import annotations

import weakref
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from confide.core import clock, mail
from confide.core.db import Database, UnitOfWork
from confide.core.runtime import Runtime
from confide.permissions.policy import Permission, allows
from confide.privacy_requests.models import PrivacyRequest
from confide.privacy_requests.records import step
from confide.privacy_requests.schemas import OPEN_STATES
from confide.users import operators as user_operators
from confide.users import sessions as user_sessions


async def _recipients(rt: Runtime, uow: UnitOfWork, row: PrivacyRequest) -> list[str]:
    staff = await user_operators.enabled_operators(uow, row.workspace_id)
    if row.assignee_id:
        mine = [email for op_id, email in staff if op_id == row.assignee_id]
        if mine:
            return mine
    if rt.settings.privacy_team_email:
        return [rt.settings.privacy_team_email]
    out = []
    for op_id, email in staff:
        actor = await user_sessions.actor_for(uow, op_id)
        if allows(actor, Permission.SUBJECTS_EXPORT):
            out.append(email)
    return out[:50]


async def _remind(rt: Runtime, uow: UnitOfWork, row: PrivacyRequest, threshold: str) -> bool:
    """Claim the reminder for ``threshold`` and this due date with one conditional update (so two
    nodes or two ticks never send it twice), then queue the mail in the same transaction."""
    column = PrivacyRequest.reminded_soon_for if threshold == "due_soon" else PrivacyRequest.reminded_overdue_for
    result: Any = await uow.session.execute(
        update(PrivacyRequest)
        .where(
            PrivacyRequest.id == row.id,
            PrivacyRequest.state.in_(OPEN_STATES),
            PrivacyRequest.due_at == row.due_at,
            or_(column.is_(None), column != PrivacyRequest.due_at),
        )
        .values({column: PrivacyRequest.due_at})
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:
        return False
    to = await _recipients(rt, uow, row)
    link = f"{rt.settings.base_url}/app/requests/{row.id}"
    if to:
        when = "is overdue" if threshold == "overdue" else f"is due on {row.due_at:%d %B %Y}"
        mail.enqueue_mail(
            rt,
            uow,
            to=to,
            subject=("Overdue: " if threshold == "overdue" else "Due soon: ") + f"a data-subject request ({row.type})",
            text=(
                f"A {row.type} request received on {row.received_at:%d %B %Y} {when}"
                + (f" (it was due on {row.due_at:%d %B %Y})" if threshold == "overdue" else "")
                + f".\n\nOpen it: {link}\n"
            ),
            workspace_id=row.workspace_id,
        )
    await step(rt, uow, row, "reminded", actor_type="system", detail={"threshold": threshold, "sent": len(to)})
    return True


async def send_reminders(rt: Runtime, uow: UnitOfWork, *, limit: int = 200) -> int:
    """Each open request due within ``privacy_request_remind_days`` gets one "due soon" reminder, and
    one "overdue" reminder once its due date has passed (each once per due date: an extension moves
    the date, and the reminders come again for the new one). Returns how many were sent."""
    now = clock.now()
    soon = now + timedelta(days=rt.settings.privacy_request_remind_days)
    rows = (
        await uow.session.scalars(
            select(PrivacyRequest)
            .where(
                PrivacyRequest.state.in_(OPEN_STATES),
                PrivacyRequest.due_at <= soon,
                or_(
                    and_(PrivacyRequest.due_at > now,
                         or_(PrivacyRequest.reminded_soon_for.is_(None),
                             PrivacyRequest.reminded_soon_for != PrivacyRequest.due_at)),
                    and_(PrivacyRequest.due_at <= now,
                         or_(PrivacyRequest.reminded_overdue_for.is_(None),
                             PrivacyRequest.reminded_overdue_for != PrivacyRequest.due_at)),
                ),
            )
            .order_by(PrivacyRequest.due_at)
            .limit(limit)
        )
    ).all()
    sent = 0
    for row in rows:
        if await _remind(rt, uow, row, "overdue" if row.due_at <= now else "due_soon"):
            sent += 1
    return sent


REMIND_EVERY = timedelta(minutes=1)


_last_scan: weakref.WeakKeyDictionary[Database, datetime] = weakref.WeakKeyDictionary()


async def scheduled_reminders(rt: Runtime, uow: UnitOfWork) -> int:
    """The scheduler's job (one node at a time, ``worker/scheduler.py``): at most one scan a minute
    per process; each reminder is claimed by a conditional update, so none is ever sent twice."""
    now = clock.now()
    last = _last_scan.get(rt.db)
    if last is not None and timedelta(0) <= now - last < REMIND_EVERY:
        return 0
    _last_scan[rt.db] = now
    return await send_reminders(rt, uow)
