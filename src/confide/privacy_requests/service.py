"""Data-subject requests (Art. 12-22): receipt, identity verification, the one-month clock and its
extension, the states, completion or refusal, the overdue list and the reminders (ADR 0029).

States and the only transitions between them (anything else is a ``Conflict``, 409, with a sentence)::

    received --send_code--> verifying --(code or staff)--> verified
    received | verifying --start (verified only)--> in_progress --complete--> done
    received | verifying | in_progress --refuse (reason)--> refused
    received | verifying | in_progress --extend (reason, at most 2 months in all)--> (same state)

Every action loads the request through ``permissions`` with ``for_update=True`` (``SELECT ... FOR
UPDATE`` on PostgreSQL): two actions on one request at once are serialised, and the second sees
the first's state and is refused cleanly. Each step is audited (``privacy_request.*``, ids only)
and kept in the request's timeline (``privacy_request_events``) with its note encrypted.

**The clock** (Art. 12(3): "within one month of receipt", extendable "by two further months"):
``due_at = add_months(received_at, 1 + extended_months)``, always counted from the receipt, so an
extension never compounds a shortened month. A calendar month ends on the same day of the next
month; when that month is shorter, on its last day: received 31 January, due 28 February (29 in a
leap year); received 31 March, due 30 April; received 30 January, extended by two months, due 30
April. The time of day is kept (UTC).
"""

from __future__ import annotations

import calendar
import weakref
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, update

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto, mail
from confide.core.crypto import DataKey
from confide.core.db import Database, UnitOfWork
from confide.core.errors import CommitAndRaise, Conflict, Invalid, NotFound
from confide.core.runtime import Runtime
from confide.permissions.access import access_privacy_request_by_id, privacy_request_scope
from confide.permissions.policy import Permission, allows, require
from confide.privacy_requests.models import PrivacyRequest, PrivacyRequestEvent, PrivacyRequestVisitor
from confide.privacy_requests.schemas import (
    OPEN_STATES,
    RequestFilters,
    RequestIn,
    StaffRequestIn,
)
from confide.users import operators as user_operators
from confide.users import sessions as user_sessions
from confide.visitors import service as visitors
from confide.workspaces import service as workspaces
from confide.workspaces.service import Site

TARGET = "privacy_request"
TYPE_NAMES = {
    "access": "access to your data",
    "portability": "a copy of your data to take elsewhere",
    "erasure": "erasure of your data",
    "rectification": "correction of your data",
    "restriction": "restriction of the processing of your data",
    "objection": "an objection to the processing of your data",
}
MAX_EXTENSION_MONTHS = 2
CODE_DIGITS = 6


# ---------------------------------------------------------------- the clock
def add_months(at: datetime, months: int) -> datetime:
    """``at`` plus whole calendar months; a day the target month lacks becomes its last day."""
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def due_date(received_at: datetime, extended_months: int = 0) -> datetime:
    return add_months(received_at, 1 + extended_months)


def is_overdue(row: PrivacyRequest, now: datetime | None = None) -> bool:
    return row.state in OPEN_STATES and (now or clock.now()) >= row.due_at


# ---------------------------------------------------------------- the request's own data key
def _aad(row_id: str, column: str) -> str:
    return f"privacy_requests.{column}:{row_id}"


def _key(rt: Runtime, row: PrivacyRequest) -> DataKey | None:
    if row.wrapped_key is None:  # anonymised (erasure of the person): nothing can be read any more
        return None
    return rt.keyring.wrapper.unwrap(row.wrapped_key, f"privacy_request:{row.id}")


def _open(key: DataKey | None, blob: bytes | None, aad: str) -> str | None:
    if key is None or blob is None:
        return None
    return key.decrypt(blob, aad)


def email_of(rt: Runtime, row: PrivacyRequest) -> str | None:
    return _open(_key(rt, row), row.email_enc, _aad(row.id, "email"))


# ---------------------------------------------------------------- timeline + audit
async def _step(
    rt: Runtime,
    uow: UnitOfWork,
    row: PrivacyRequest,
    kind: str,
    *,
    actor: OperatorActor | None = None,
    actor_type: str | None = None,
    actor_id: str | None = None,
    note: str | None = None,
    detail: dict[str, Any] | None = None,
    outcome: str = "ok",
) -> None:
    """One timeline event (note encrypted under the request's key) and its audit row (ids only)."""
    kind_of_actor = "operator" if actor is not None else (actor_type or "system")
    who = actor.operator_id if actor is not None else actor_id
    event_id = crypto.new_ordered_id()
    key = _key(rt, row)
    last = await uow.session.scalar(
        select(func.max(PrivacyRequestEvent.seq)).where(PrivacyRequestEvent.request_id == row.id)
    )
    uow.session.add(
        PrivacyRequestEvent(
            id=event_id,
            request_id=row.id,
            seq=int(last or 0) + 1,
            at=clock.now(),
            kind=kind,
            actor_type=kind_of_actor,
            actor_id=who,
            note_enc=key.encrypt(note, f"privacy_request_events.note:{event_id}") if note and key else None,
        )
    )
    await audit.record(
        rt,
        uow,
        f"privacy_request.{kind}",
        actor=actor,
        actor_type=None if actor is not None else kind_of_actor,
        actor_id=None if actor is not None else who,
        workspace_id=row.workspace_id,
        target_type=TARGET,
        target_id=row.id,
        outcome=outcome,
        detail={"type": row.type, "state": row.state, **(detail or {})},
    )


# ---------------------------------------------------------------- receipt
async def _new(
    rt: Runtime,
    uow: UnitOfWork,
    *,
    workspace_id: str,
    site_id: str | None,
    type_: str,
    channel: str,
    email: str,
    details: str,
    received_at: datetime,
    created_by: str | None,
) -> PrivacyRequest:
    row_id = crypto.new_id()
    wrapped, key = rt.keyring.wrapper.new_wrapped_key(f"privacy_request:{row_id}")
    row = PrivacyRequest(
        id=row_id,
        workspace_id=workspace_id,
        site_id=site_id,
        type=type_,
        channel=channel,
        state="received",
        email_enc=key.encrypt(email, _aad(row_id, "email")),
        email_bidx=rt.bidx.email(workspace_id, email),
        details_enc=key.encrypt(details, _aad(row_id, "details")) if details else None,
        wrapped_key=wrapped,
        received_at=received_at,
        due_at=due_date(received_at),
        extended_months=0,
        assignee_id=created_by,
        created_by=created_by,
        code_attempts=0,
        codes_sent=0,
    )
    uow.session.add(row)
    await uow.session.flush()
    return row


async def create_by_requester(
    rt: Runtime, uow: UnitOfWork, site: Site, data: RequestIn, *, channel: str, visitor_id: str | None = None
) -> PrivacyRequest:
    """A request from the widget (``visitor_id``: the token's visitor, linked at once) or the public
    page. The code is e-mailed in the same unit: the request is ``verifying`` when this returns."""
    row = await _new(
        rt, uow, workspace_id=site.workspace_id, site_id=site.id, type_=data.type, channel=channel,
        email=data.email, details=data.details, received_at=clock.now(), created_by=None,
    )
    if visitor_id is not None:
        uow.session.add(PrivacyRequestVisitor(request_id=row.id, visitor_id=visitor_id))
    await _step(rt, uow, row, "received", actor_type="visitor" if visitor_id else "requester", actor_id=visitor_id,
                detail={"channel": channel})
    await _send_code(rt, uow, row, site=site, actor_type="system")
    return row


async def create_by_staff(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, data: StaffRequestIn) -> dict[str, Any]:
    """A request received by e-mail, phone, letter or otherwise, entered by staff (who becomes its
    assignee). ``received_at`` may be earlier than now (a letter opened today, dated last week):
    the clock runs from the receipt, never from the entry; it may not lie in the future."""
    require(actor, Permission.SUBJECTS_EXPORT)
    site_id = None
    if data.site_id is not None:
        site = await workspaces.get_site(uow, data.site_id)
        if site is None or site.workspace_id != actor.workspace_id:
            raise NotFound("site not found")
        site_id = site.id
    now = clock.now()
    received_at = data.received_at or now
    if received_at > now + timedelta(minutes=5):
        raise Invalid("the date of receipt cannot be in the future")
    if received_at < now - timedelta(days=366):
        raise Invalid("the date of receipt is more than a year ago")
    row = await _new(
        rt, uow, workspace_id=actor.workspace_id, site_id=site_id, type_=data.type, channel=data.channel,
        email=data.email, details=data.details, received_at=received_at, created_by=actor.operator_id,
    )
    await _step(rt, uow, row, "received", actor=actor, detail={"channel": data.channel})
    return await view(rt, uow, row)


# ---------------------------------------------------------------- identity verification
def _new_code() -> str:
    # 64 random bits reduced to 6 digits (the bias, 10^6 / 2^64, is nil); crypto is the only door to randomness.
    return f"{int.from_bytes(crypto.b64d(crypto.random_token(8)), 'big') % 10**CODE_DIGITS:0{CODE_DIGITS}d}"


def _code_digest(rt: Runtime, row: PrivacyRequest, code: str) -> str:
    """A keyed digest (HMAC under a key derived from the master key) bound to the request."""
    return rt.bidx.term(row.workspace_id, "privacy_request_code", f"{row.id}:{code}")


def verify_url(rt: Runtime, row: PrivacyRequest) -> str:
    return f"{rt.settings.base_url}/privacy/verify/{row.id}"


async def _send_code(
    rt: Runtime,
    uow: UnitOfWork,
    row: PrivacyRequest,
    *,
    site: Site | None = None,
    actor: OperatorActor | None = None,
    actor_type: str | None = None,
) -> None:
    if row.state not in ("received", "verifying"):
        raise Conflict(f"a code can only be sent while the request is received or verifying, not {row.state}")
    if row.verified_at is not None:
        raise Conflict("the requester's identity is verified already")
    if row.codes_sent >= rt.settings.privacy_request_codes_max:
        raise Conflict("too many codes were sent for this request; verify the requester another way")
    email = email_of(rt, row)
    if email is None:
        raise Conflict("the request holds no e-mail address any more")
    code = _new_code()
    ttl = rt.settings.privacy_request_code_ttl_min
    row.code_digest = _code_digest(rt, row, code)
    row.code_expires_at = clock.now() + timedelta(minutes=ttl)
    row.code_attempts = 0
    row.codes_sent += 1
    row.state = "verifying"
    site_name = site.name if site is not None else None
    mail.enqueue_mail(
        rt,
        uow,
        to=[email],
        subject="Your verification code",
        text=(
            f"We received your request for {TYPE_NAMES[row.type]}"
            + (f" on {site_name}" if site_name else "")
            + ".\n\n"
            f"To confirm that this e-mail address is yours, enter this code: {code}\n\n"
            f"Enter it in the chat window or at {verify_url(rt, row)}\n"
            f"The code works for {ttl} minutes.\n\n"
            "If you did not make this request, you can ignore this message."
        ),
        workspace_id=row.workspace_id,
        subject_id=row.id,
    )
    await uow.session.flush()
    await _step(rt, uow, row, "code_sent", actor=actor, actor_type=actor_type)


async def send_code(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, request_id: str) -> dict[str, Any]:
    """Staff send (or send again) a verification code to the request's e-mail address."""
    row = await _load(uow, actor, request_id, Permission.SUBJECTS_EXPORT)
    site = await workspaces.get_site(uow, row.site_id) if row.site_id else None
    await _send_code(rt, uow, row, site=site, actor=actor)
    return await view(rt, uow, row)


async def resend_code_by_requester(
    rt: Runtime, uow: UnitOfWork, request_id: str, *, site_id: str | None = None
) -> None:
    """The requester asks for a new code (their first expired, or they ran out of attempts)."""
    row = await _public_row(uow, request_id, site_id=site_id)
    site = await workspaces.get_site(uow, row.site_id) if row.site_id else None
    await _send_code(rt, uow, row, site=site, actor_type="requester")


async def _link_visitors(rt: Runtime, uow: UnitOfWork, row: PrivacyRequest) -> int:
    """Once the requester proved they hold the address: link the visitors who gave the same one."""
    email = email_of(rt, row)
    if email is None:
        return 0
    found = set((await uow.session.scalars(visitors.visitor_ids_matching(rt, row.workspace_id, email))).all())
    linked = set(
        (await uow.session.scalars(
            select(PrivacyRequestVisitor.visitor_id).where(PrivacyRequestVisitor.request_id == row.id)
        )).all()
    )
    for visitor_id in sorted(found - linked):
        uow.session.add(PrivacyRequestVisitor(request_id=row.id, visitor_id=visitor_id))
    await uow.session.flush()
    return len(found - linked)


async def _public_row(uow: UnitOfWork, request_id: object, *, site_id: str | None = None) -> PrivacyRequest:
    """A request named by its (random, 128-bit) id on a requester's page, locked."""
    if not isinstance(request_id, str) or not request_id or len(request_id) > 64:
        raise NotFound("request not found")
    stmt = select(PrivacyRequest).where(PrivacyRequest.id == request_id)
    if site_id is not None:
        stmt = stmt.where(PrivacyRequest.site_id == site_id)
    row = await uow.session.scalar(stmt.with_for_update().execution_options(populate_existing=True))
    if row is None:
        raise NotFound("request not found")
    return row


async def verify_code(
    rt: Runtime, uow: UnitOfWork, request_id: str, code: str, *, site_id: str | None = None
) -> PrivacyRequest:
    """The requester enters the e-mailed code. Wrong: one attempt fewer (kept although the call
    fails); expired or out of attempts: a new code must be asked for. Right: verified, and the
    visitors with the same e-mail address are linked to the request."""
    row = await _public_row(uow, request_id, site_id=site_id)
    if row.verified_at is not None:
        return row  # a second click on the same link: nothing to do
    if row.state != "verifying" or row.code_digest is None or row.code_expires_at is None:
        raise Conflict("this request is not waiting for a code")
    if clock.now() >= row.code_expires_at:
        raise Invalid("this code has expired; ask for a new one")
    if row.code_attempts >= rt.settings.privacy_request_code_attempts:
        raise Invalid("too many wrong codes; ask for a new one")
    given = "".join(ch for ch in code if not ch.isspace())
    if not crypto.constant_time_equal(_code_digest(rt, row, given), row.code_digest):
        row.code_attempts += 1
        left = rt.settings.privacy_request_code_attempts - row.code_attempts
        await _step(rt, uow, row, "verification_failed", actor_type="requester", outcome="failed",
                    detail={"attempts_left": left})
        message = "this code is not right" + (f"; {left} attempts left" if left else "; ask for a new one")
        raise CommitAndRaise(Invalid(message))
    row.verified_at = clock.now()
    row.verified_by = None
    row.code_digest = row.code_expires_at = None
    linked = await _link_visitors(rt, uow, row)
    await _step(rt, uow, row, "verified", actor_type="requester", detail={"method": "code", "linked": linked})
    return row


async def verify_by_staff(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, request_id: str, reason: str
) -> dict[str, Any]:
    """Staff vouch for the requester's identity (they called back, saw an ID document), with a reason."""
    row = await _load(uow, actor, request_id, Permission.SUBJECTS_EXPORT)
    if row.state not in ("received", "verifying"):
        raise Conflict(f"the identity can only be verified before work starts, not while {_state(row)}")
    if row.verified_at is not None:
        raise Conflict("the requester's identity is verified already")
    row.verified_at = clock.now()
    row.verified_by = actor.operator_id
    row.code_digest = row.code_expires_at = None
    linked = await _link_visitors(rt, uow, row)
    await _step(rt, uow, row, "verified", actor=actor, note=reason, detail={"method": "staff", "linked": linked})
    return await view(rt, uow, row)


# ---------------------------------------------------------------- states
def _state(row: PrivacyRequest) -> str:
    return {"received": "received", "verifying": "verifying", "in_progress": "in progress", "done": "done",
            "refused": "refused"}[row.state]


async def _load(uow: UnitOfWork, actor: OperatorActor, request_id: str, permission: Permission) -> PrivacyRequest:
    return await access_privacy_request_by_id(uow.session, actor, request_id, permission=permission, for_update=True)


async def start(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, request_id: str) -> dict[str, Any]:
    row = await _load(uow, actor, request_id, Permission.SUBJECTS_EXPORT)
    if row.state not in ("received", "verifying"):
        raise Conflict(f"the request cannot be started: it is {_state(row)}")
    if row.verified_at is None:
        raise Conflict("verify the requester's identity first")
    row.state = "in_progress"
    row.assignee_id = row.assignee_id or actor.operator_id
    await uow.session.flush()
    await _step(rt, uow, row, "started", actor=actor)
    return await view(rt, uow, row)


async def extend(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, request_id: str, *, months: int, reason: str
) -> dict[str, Any]:
    """Art. 12(3): up to two further months in all, with the reason; the requester is told by e-mail."""
    row = await _load(uow, actor, request_id, Permission.SUBJECTS_EXPORT)
    if row.state not in OPEN_STATES:
        raise Conflict(f"the request cannot be extended: it is {_state(row)}")
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
    await _step(rt, uow, row, "extended", actor=actor, note=reason,
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
    row = await _load(uow, actor, request_id, Permission.SUBJECTS_EXPORT)
    if row.type == "erasure":
        require(actor, Permission.SUBJECTS_ERASE)
    if row.state != "in_progress":
        raise Conflict(f"only a request in progress can be completed; this one is {_state(row)}")
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
    await _step(rt, uow, row, "done", actor=actor, note=outcome, detail=detail)
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
        raise Conflict(f"the request is {_state(row)}: start work on it first")
    linked = (await _linked_visitors(uow, [row.id]))[row.id]
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
    await _step(rt, uow, row, kind, actor=actor, detail=detail)
    return True


async def refuse(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, request_id: str, *, reason: str) -> dict[str, Any]:
    """Refused with the reason (Art. 12(4): manifestly unfounded, excessive, identity not shown)."""
    row = await _load(uow, actor, request_id, Permission.SUBJECTS_EXPORT)
    if row.state not in OPEN_STATES:
        raise Conflict(f"the request cannot be refused: it is {_state(row)}")
    if not reason.strip():
        raise Invalid("give the reason for the refusal")
    row.state = "refused"
    row.closed_at = clock.now()
    row.code_digest = row.code_expires_at = None
    await uow.session.flush()
    await _step(rt, uow, row, "refused", actor=actor, note=reason)
    return await view(rt, uow, row)


# ---------------------------------------------------------------- views
def visitor_ids_by_email(workspace_id: str, email_bidx: str) -> Select[Any]:
    """The visitors linked to the workspace's requests made from the e-mail with this blind index
    (the widget's own visitor, or those matched once the requester proved the address): Find a
    person joins them to whoever gave that address."""
    return (
        select(PrivacyRequestVisitor.visitor_id)
        .join(PrivacyRequest, PrivacyRequest.id == PrivacyRequestVisitor.request_id)
        .where(PrivacyRequest.workspace_id == workspace_id, PrivacyRequest.email_bidx == email_bidx)
        .distinct()
    )


async def _linked_visitors(uow: UnitOfWork, request_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {i: [] for i in request_ids}
    if not request_ids:
        return out
    rows = await uow.session.execute(
        select(PrivacyRequestVisitor.request_id, PrivacyRequestVisitor.visitor_id)
        .where(PrivacyRequestVisitor.request_id.in_(request_ids))
        .order_by(PrivacyRequestVisitor.visitor_id)
    )
    for request_id, visitor_id in rows.all():
        out[request_id].append(visitor_id)
    return out


def summary(row: PrivacyRequest, now: datetime | None = None) -> dict[str, Any]:
    """The non-personal facts of a request (lists, the CLI, the requester's own page)."""
    return {
        "id": row.id,
        "type": row.type,
        "channel": row.channel,
        "state": row.state,
        "site_id": row.site_id,
        "received_at": clock.iso(row.received_at),
        "due_at": clock.iso(row.due_at),
        "extended_months": row.extended_months,
        "overdue": is_overdue(row, now),
        "verified": row.verified_at is not None,
        "verified_by": ("staff" if row.verified_by else "code") if row.verified_at else None,
        "assignee_id": row.assignee_id,
        "closed_at": clock.iso(row.closed_at),
        "export_id": row.export_id,
        "certificate_id": row.certificate_id,
    }


async def view(rt: Runtime, uow: UnitOfWork, row: PrivacyRequest, *, timeline: bool = False) -> dict[str, Any]:
    key = _key(rt, row)
    out = summary(row)
    out["email"] = _open(key, row.email_enc, _aad(row.id, "email"))
    out["details"] = _open(key, row.details_enc, _aad(row.id, "details")) or ""
    out["visitor_ids"] = (await _linked_visitors(uow, [row.id]))[row.id]
    names = await user_operators.operator_names(uow, [i for i in (row.assignee_id, row.created_by) if i])
    out["assignee"] = {"id": row.assignee_id, "name": names.get(row.assignee_id)} if row.assignee_id else None
    if timeline:
        events = (
            await uow.session.scalars(
                select(PrivacyRequestEvent)
                .where(PrivacyRequestEvent.request_id == row.id)
                .order_by(PrivacyRequestEvent.seq)
            )
        ).all()
        who = await user_operators.operator_names(
            uow, [e.actor_id for e in events if e.actor_type == "operator" and e.actor_id]
        )
        out["timeline"] = [
            {
                "at": clock.iso(e.at),
                "kind": e.kind,
                "actor_type": e.actor_type,
                "actor": who.get(e.actor_id) if e.actor_type == "operator" and e.actor_id else None,
                "note": _open(key, e.note_enc, f"privacy_request_events.note:{e.id}"),
            }
            for e in events
        ]
    return out


async def open_request(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, request_id: str, *, via: str
) -> dict[str, Any]:
    """The detail page or API: the request with its timeline; the view is recorded (read audit)."""
    row = await access_privacy_request_by_id(uow.session, actor, request_id, permission=Permission.SUBJECTS_VIEW)
    await audit.record_view_once(rt, uow, "privacy_request.viewed", actor=actor, target_type=TARGET,
                                 target_id=row.id, detail={"via": via})
    return await view(rt, uow, row, timeline=True)


def _filtered(stmt: Select[Any], filters: RequestFilters, now: datetime) -> Select[Any]:
    if filters.type:
        stmt = stmt.where(PrivacyRequest.type == filters.type)
    if filters.state == "open":
        stmt = stmt.where(PrivacyRequest.state.in_(OPEN_STATES))
    elif filters.state:
        stmt = stmt.where(PrivacyRequest.state == filters.state)
    if filters.channel:
        stmt = stmt.where(PrivacyRequest.channel == filters.channel)
    if filters.overdue:
        stmt = stmt.where(PrivacyRequest.state.in_(OPEN_STATES), PrivacyRequest.due_at <= now)
    if filters.due_before:
        stmt = stmt.where(PrivacyRequest.due_at < filters.due_before)
    return stmt


async def search(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, filters: RequestFilters, *, via: str
) -> tuple[list[dict[str, Any]], int]:
    """The Requests list (soonest due first); the requesters' e-mails shown are recorded (read audit)."""
    now = clock.now()
    stmt = _filtered(privacy_request_scope(actor, select(PrivacyRequest)), filters, now)
    total = int(await uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = (
        await uow.session.scalars(
            stmt.order_by(PrivacyRequest.due_at, PrivacyRequest.id)
            .offset((filters.page - 1) * filters.per_page)
            .limit(filters.per_page)
        )
    ).all()
    items = []
    for row in rows:
        item = summary(row, now)
        item["email"] = email_of(rt, row)
        items.append(item)
    if not uow.readonly:
        await audit.record_list_view(rt, uow, "privacy_request.listed", actor=actor, target_type=TARGET,
                                     ids=[i["id"] for i in items], via=via, page=filters.page, total=total)
    return items, total


async def list_all(uow: UnitOfWork, *, state: str | None = None, overdue: bool = False) -> list[dict[str, Any]]:
    """Every workspace's requests, without personal values (the shell: ``confide requests list``)."""
    now = clock.now()
    stmt = _filtered(select(PrivacyRequest), RequestFilters(state=state, overdue=overdue), now)
    rows = (await uow.session.scalars(stmt.order_by(PrivacyRequest.due_at, PrivacyRequest.id))).all()
    return [{**summary(row, now), "workspace_id": row.workspace_id} for row in rows]


# ---------------------------------------------------------------- public: the requester's own view
async def public_summary(uow: UnitOfWork, request_id: str) -> dict[str, Any]:
    """What a requester's page shows by the request's id: type, state, due date, nothing personal."""
    if not isinstance(request_id, str) or not request_id or len(request_id) > 64:
        raise NotFound("request not found")
    row = await uow.session.get(PrivacyRequest, request_id)
    if row is None:
        raise NotFound("request not found")
    return summary(row)


# ---------------------------------------------------------------- reminders (the scheduler)
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
    await _step(rt, uow, row, "reminded", actor_type="system", detail={"threshold": threshold, "sent": len(to)})
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
