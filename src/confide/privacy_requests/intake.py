"""How a data-subject request comes in and how the requester's identity is verified (ADR 0029).

- **Receipt**: from the widget (the token's visitor is linked at once) or the public page, a code
  is e-mailed in the same unit; or entered by staff (a request received by e-mail, phone, letter),
  with a date of receipt that may lie in the past. The clock runs from the receipt (``deadlines``).
- **Verification** (``received`` / ``verifying`` -> verified): the requester enters the e-mailed
  code (a keyed digest is stored, a bounded number of attempts and of codes), or staff vouch for
  them with a reason. Once verified, the visitors who gave the same e-mail address are linked.

What happens next (start, extend, complete, refuse) is in ``lifecycle``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from confide.auth.actors import OperatorActor
from confide.core import clock, crypto, mail
from confide.core.db import UnitOfWork
from confide.core.errors import CommitAndRaise, Conflict, Invalid, NotFound
from confide.core.runtime import Runtime
from confide.permissions.policy import Permission, require
from confide.privacy_requests.deadlines import due_date
from confide.privacy_requests.models import PrivacyRequest, PrivacyRequestVisitor
from confide.privacy_requests.records import TYPE_NAMES, aad_of, email_of, load_for_update, state_label, step
from confide.privacy_requests.schemas import RequestIn, StaffRequestIn
from confide.privacy_requests.views import view
from confide.visitors import service as visitors
from confide.workspaces import service as workspaces
from confide.workspaces.service import Site

CODE_DIGITS = 6


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
        email_enc=key.encrypt(email, aad_of(row_id, "email")),
        email_bidx=rt.bidx.email(workspace_id, email),
        details_enc=key.encrypt(details, aad_of(row_id, "details")) if details else None,
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
    await step(rt, uow, row, "received", actor_type="visitor" if visitor_id else "requester", actor_id=visitor_id,
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
    await step(rt, uow, row, "received", actor=actor, detail={"channel": data.channel})
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
    await step(rt, uow, row, "code_sent", actor=actor, actor_type=actor_type)


async def send_code(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, request_id: str) -> dict[str, Any]:
    """Staff send (or send again) a verification code to the request's e-mail address."""
    row = await load_for_update(uow, actor, request_id, Permission.SUBJECTS_EXPORT)
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
        await step(rt, uow, row, "verification_failed", actor_type="requester", outcome="failed",
                   detail={"attempts_left": left})
        message = "this code is not right" + (f"; {left} attempts left" if left else "; ask for a new one")
        raise CommitAndRaise(Invalid(message))
    row.verified_at = clock.now()
    row.verified_by = None
    row.code_digest = row.code_expires_at = None
    linked = await _link_visitors(rt, uow, row)
    await step(rt, uow, row, "verified", actor_type="requester", detail={"method": "code", "linked": linked})
    return row


async def verify_by_staff(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, request_id: str, reason: str
) -> dict[str, Any]:
    """Staff vouch for the requester's identity (they called back, saw an ID document), with a reason."""
    row = await load_for_update(uow, actor, request_id, Permission.SUBJECTS_EXPORT)
    if row.state not in ("received", "verifying"):
        raise Conflict(f"the identity can only be verified before work starts, not while {state_label(row)}")
    if row.verified_at is not None:
        raise Conflict("the requester's identity is verified already")
    row.verified_at = clock.now()
    row.verified_by = actor.operator_id
    row.code_digest = row.code_expires_at = None
    linked = await _link_visitors(rt, uow, row)
    await step(rt, uow, row, "verified", actor=actor, note=reason, detail={"method": "staff", "linked": linked})
    return await view(rt, uow, row)
