"""A data-subject request's states after its receipt (ADR 0029): start, extension, completion or
refusal, and the export or erasure certificate that answers it.

States and the only transitions between them (anything else is a ``Conflict``, 409, with a sentence)::

    received --send_code--> verifying --(code or staff)--> verified          (intake)
    received | verifying --start (verified only)--> in_progress --complete--> done
    received | verifying | in_progress --refuse (reason)--> refused
    received | verifying | in_progress --extend (reason, at most 2 months in all)--> (same state)

Every action takes the request under its row lock (``records.load_for_update``), checks the state
it finds, and records its step in the timeline and the audit log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from confide.auth.actors import OperatorActor
from confide.core import clock, mail
from confide.core.db import UnitOfWork
from confide.core.errors import Conflict, Invalid
from confide.core.runtime import Runtime
from confide.permissions.policy import Permission, require
from confide.privacy_requests.deadlines import MAX_EXTENSION_MONTHS, due_date
from confide.privacy_requests.models import PrivacyRequest
from confide.privacy_requests.records import TYPE_NAMES, email_of, load_for_update, state_label, step
from confide.privacy_requests.schemas import OPEN_STATES
from confide.privacy_requests.views import linked_visitors, view


async def start(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, request_id: str) -> dict[str, Any]:
    row = await load_for_update(uow, actor, request_id, Permission.SUBJECTS_EXPORT)
    if row.state not in ("received", "verifying"):
        raise Conflict(f"the request cannot be started: it is {state_label(row)}")
    if row.verified_at is None:
        raise Conflict("verify the requester's identity first")
    row.state = "in_progress"
    row.assignee_id = row.assignee_id or actor.operator_id
    await uow.session.flush()
    await step(rt, uow, row, "started", actor=actor)
    return await view(rt, uow, row)


async def extend(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, request_id: str, *, months: int, reason: str
) -> dict[str, Any]:
    """Art. 12(3): up to two further months in all, with the reason; the requester is told by e-mail."""
    row = await load_for_update(uow, actor, request_id, Permission.SUBJECTS_EXPORT)
    if row.state not in OPEN_STATES:
        raise Conflict(f"the request cannot be extended: it is {state_label(row)}")
    if months < 1 or row.extended_months + months > MAX_EXTENSION_MONTHS:
        left = MAX_EXTENSION_MONTHS - row.extended_months
        raise Conflict(
            f"a request can be extended by at most {MAX_EXTENSION_MONTHS} months in all; {left} left"
            if left else "this request has been extended by the two months allowed already"
        )
    row.extended_months += months
    row.due_at = due_date(row.received_at, row.extended_months)
    await uow.session.flush()
    email = email_of(rt, row)
    if email is not None:
        mail.enqueue_mail(
            rt,
            uow,
            to=[email],
            subject="We need more time for your request",
            text=(
                f"We received your request for {TYPE_NAMES[row.type]} on {row.received_at:%d %B %Y}.\n\n"
                f"We need more time to answer it fully. We will answer by {row.due_at:%d %B %Y} at the latest.\n\n"
                f"The reason: {reason}\n\n"
                "The law allows this extension by up to two months for complex or numerous requests "
                "(Article 12(3) GDPR). You may lodge a complaint with a supervisory authority."
            ),
            workspace_id=row.workspace_id,
            subject_id=row.id,
        )
    await step(rt, uow, row, "extended", actor=actor, note=reason,
               detail={"months": months, "extended_months": row.extended_months, "notified": email is not None})
    return await view(rt, uow, row)


async def complete(
    rt: Runtime,
    uow: UnitOfWork,
    actor: OperatorActor,
    request_id: str,
    *,
    outcome: str,
    export_id: str | None = None,
    certificate_id: str | None = None,
) -> dict[str, Any]:
    """Done, with an outcome note. The seam for the other helpers: the subjects helper's export
    (``export_id``) and the erasure helper's certificate (``certificate_id``) are linked here. An
    erasure request also asks for ``subjects.erase``."""
    row = await load_for_update(uow, actor, request_id, Permission.SUBJECTS_EXPORT)
    if row.type == "erasure":
        require(actor, Permission.SUBJECTS_ERASE)
    if row.state != "in_progress":
        raise Conflict(f"only a request in progress can be completed; this one is {state_label(row)}")
    if not outcome.strip():
        raise Invalid("describe the outcome")
    row.state = "done"
    row.closed_at = clock.now()
    row.export_id = export_id or row.export_id  # recorded already when the export was sent (record_fulfilment)
    row.certificate_id = certificate_id or row.certificate_id
    await uow.session.flush()
    detail: dict[str, Any] = {"late": row.closed_at > row.due_at}
    if export_id:
        detail["export_id"] = export_id
    if certificate_id:
        detail["certificate_id"] = certificate_id
    await step(rt, uow, row, "done", actor=actor, note=outcome, detail=detail)
    return await view(rt, uow, row)


# Which requests an export sent to the person, or an erasure certificate, fulfils.
FULFILLED_BY = {"export": ("access", "portability"), "certificate": ("erasure",)}


async def record_fulfilment(
    rt: Runtime,
    uow: UnitOfWork,
    actor: OperatorActor | None,
    workspace_id: str,
    request_id: str,
    visitor_ids: Iterable[str],
    *,
    export_id: str | None = None,
    certificate_id: str | None = None,
) -> bool:
    """Link the export link sent to the person (``export_id``) or the erasure certificate
    (``certificate_id``) to the request it answers, with a timeline step, inside the caller's unit
    (the erasure's own transaction: a request in the wrong state refuses the erasure itself).
    ``False``: ``request_id`` names no request of the workspace (an erasure may cite an outside
    reference, a ticket number). At least one of ``visitor_ids`` (whom the export or the erasure
    was about) must be linked to the request: an export or an erasure of someone else answers
    nobody's request. The caller has checked the permission of what it did."""
    if (export_id is None) == (certificate_id is None):
        raise ValueError("give exactly one of export_id and certificate_id")
    row = await uow.session.scalar(
        select(PrivacyRequest)
        .where(PrivacyRequest.id == request_id, PrivacyRequest.workspace_id == workspace_id)
        .with_for_update()
    )
    if row is None:
        return False
    what = "export" if export_id is not None else "certificate"
    if row.type not in FULFILLED_BY[what]:
        done = "an export" if export_id is not None else "an erasure"
        raise Conflict(f"this is a request for {row.type}: {done} does not answer it")
    if row.state != "in_progress":
        raise Conflict(f"the request is {state_label(row)}: start work on it first")
    linked = (await linked_visitors(uow, [row.id]))[row.id]
    if not set(linked) & set(visitor_ids):
        raise Conflict("none of these visits is linked to the request (verify the requester's identity first)")
    detail: dict[str, Any]
    if export_id is not None:
        row.export_id = export_id
        kind, detail = "export_sent", {"export_id": export_id}
    else:
        row.certificate_id = certificate_id
        kind, detail = "erased", {"certificate_id": certificate_id}
    await uow.session.flush()
    await step(rt, uow, row, kind, actor=actor, detail=detail)
    return True


async def refuse(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, request_id: str, *, reason: str) -> dict[str, Any]:
    """Refused with the reason (Art. 12(4): manifestly unfounded, excessive, identity not shown)."""
    row = await load_for_update(uow, actor, request_id, Permission.SUBJECTS_EXPORT)
    if row.state not in OPEN_STATES:
        raise Conflict(f"the request cannot be refused: it is {state_label(row)}")
    if not reason.strip():
        raise Invalid("give the reason for the refusal")
    row.state = "refused"
    row.closed_at = clock.now()
    row.code_digest = row.code_expires_at = None
    await uow.session.flush()
    await step(rt, uow, row, "refused", actor=actor, note=reason)
    return await view(rt, uow, row)
