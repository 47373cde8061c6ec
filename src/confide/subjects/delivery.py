"""Sending a person their export: an e-mail with an expiring, single-use link and a one-time code,
never the data as an attachment.

- ``send_link`` (staff, ``subjects.export``): the person's e-mail address on record (the most
  recent visit's; staff cannot type another address, so an export never goes elsewhere), a random
  token (256 bits) and a one-time code (``crypto.new_recovery_code``, ~49 bits), both stored as
  SHA-256 digests only, bound to the person's visitor ids and the format, valid
  ``export_link_ttl_h`` hours (7 days by default). Audited ``subject.export_link_sent``.
- ``check_link`` (anyone holding the link): unknown → ``LinkUnusable("unknown")`` (404); used,
  expired, revoked → 410 with the reason.
- ``claim_link`` (anyone holding the link and the code): the code is compared by digest; a wrong
  one counts, and after ``export_link_max_codes`` the link is revoked. The right one marks the
  link used with one conditional ``UPDATE`` (``used_at IS NULL AND revoked_at IS NULL AND
  expires_at > now``), so two tabs can never both download. The package is then built outside
  that transaction (``download``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from sqlalchemy import select, update

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto, mail
from confide.core.db import UnitOfWork
from confide.core.errors import DomainError, Invalid, NotFound
from confide.core.runtime import Runtime
from confide.permissions.policy import Permission
from confide.privacy_requests import lifecycle as request_lifecycle
from confide.subjects import export
from confide.subjects.find import check_person
from confide.subjects.models import ExportLink
from confide.subjects.schemas import ExportIn
from confide.visitors import service as visitors

PATH = "/subject-export/"


class LinkUnusable(DomainError):
    """An export link that cannot be used: ``reason`` is unknown (404) or used, expired, revoked (410)."""

    code = "link_unusable"
    MESSAGES: ClassVar[dict[str, str]] = {
        "unknown": "This download link is not valid. Check that you copied all of it.",
        "used": "This download link has been used already. Ask for a new one if you need the data again.",
        "expired": "This download link has expired. Ask for a new one.",
        "revoked": "This download link no longer works (too many wrong codes). Ask for a new one.",
    }

    def __init__(self, reason: str) -> None:
        super().__init__(self.MESSAGES.get(reason, self.MESSAGES["unknown"]))
        self.reason = reason
        self.status = 404 if reason == "unknown" else 410


class WrongCode(DomainError):
    status = 422
    code = "wrong_code"


@dataclass(frozen=True)
class Sent:
    link_id: str
    job_id: str
    expires_at: str


def _code_digest(code: str) -> str:
    return crypto.token_digest(crypto.normalise_recovery_code(code))


async def send_link(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, body: ExportIn, *, base_url: str) -> Sent:
    """E-mail the person (at the address on record) a link to their export in ``body.fmt``."""
    if not body.visitor_ids:
        raise Invalid("a person is sent their export at the e-mail address of one of their visits")
    await check_person(uow, actor, body.visitor_ids, [], Permission.SUBJECTS_EXPORT)
    export.require_format(body.fmt)
    to = await visitors.newest_email(rt, uow, list(body.visitor_ids))
    if to is None:
        raise Invalid("no e-mail address is on record for this person: download the export instead")
    token, code = crypto.random_token(), crypto.new_recovery_code()
    now = clock.now()
    expires = now + timedelta(hours=rt.settings.export_link_ttl_h)
    link = ExportLink(
        id=crypto.new_id(), workspace_id=actor.workspace_id, subject_id=body.visitor_ids[0],
        visitor_ids=list(body.visitor_ids), searched_by=body.searched_by, fmt=body.fmt,
        token_digest=crypto.token_digest(token), code_digest=_code_digest(code), failed_codes=0,
        created_by=actor.operator_id, created_at=now, expires_at=expires, used_at=None, revoked_at=None,
    )
    uow.session.add(link)
    await uow.session.flush()
    if body.request_id is not None and not await request_lifecycle.record_fulfilment(
        rt, uow, actor, actor.workspace_id, body.request_id, body.visitor_ids, export_id=link.id
    ):
        raise NotFound("request not found")
    url = f"{base_url.rstrip('/')}{PATH}{token}"
    days = rt.settings.export_link_ttl_h / 24
    until = expires.strftime("%d %B %Y, %H:%M UTC")
    text = (
        "Hello,\n\nyou asked for a copy of the personal data we hold about you. It is ready.\n\n"
        f"Open this link (it works once, until {until}):\n{url}\n\n"
        f"and enter this code when the page asks for it:\n\n    {code}\n\n"
        "The data itself is not attached to this e-mail. If you did not ask for it, ignore this "
        "message: without the link and the code nobody can download it.\n"
    )
    job_id = mail.enqueue_mail(
        rt, uow, to=[to], subject="Your personal data: a copy is ready", text=text,
        workspace_id=actor.workspace_id, subject_id=body.visitor_ids[0],
    )
    await audit.record(rt, uow, "subject.export_link_sent", actor=actor, target_type="visitor",
                       target_id=body.visitor_ids[0],
                       detail={"link": link.id, "fmt": body.fmt, "ids": list(body.visitor_ids)[: audit.MAX_LISTED],
                               "valid_days": int(days)})
    return Sent(link.id, job_id, expires.isoformat())


async def _by_token(uow: UnitOfWork, token: object, *, for_update: bool = False) -> ExportLink:
    if not isinstance(token, str) or not (20 <= len(token) <= 100):
        raise LinkUnusable("unknown")
    stmt = select(ExportLink).where(ExportLink.token_digest == crypto.token_digest(token))
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    link = await uow.session.scalar(stmt)
    if link is None:
        raise LinkUnusable("unknown")
    return link


def _usable(link: ExportLink) -> None:
    if link.used_at is not None:
        raise LinkUnusable("used")
    if link.revoked_at is not None:
        raise LinkUnusable("revoked")
    if link.expires_at <= clock.now():
        raise LinkUnusable("expired")


async def check_link(uow: UnitOfWork, token: object) -> ExportLink:
    """The link, if it can still be used (else ``LinkUnusable``)."""
    link = await _by_token(uow, token)
    _usable(link)
    return link


async def claim_link(rt: Runtime, uow: UnitOfWork, token: object, code: str) -> ExportLink | None:
    """Spend the link when ``code`` is its code: the link, marked used in this unit. A wrong code:
    ``None`` (counted, in this unit; the caller commits it and answers ``WrongCode``)."""
    link = await _by_token(uow, token, for_update=True)
    _usable(link)
    if not crypto.constant_time_equal(_code_digest(code), link.code_digest):
        link.failed_codes += 1
        if link.failed_codes >= rt.settings.export_link_max_codes:
            link.revoked_at = clock.now()
        await audit.record(rt, uow, "subject.export_link_refused", actor_type="visitor", actor_id=link.subject_id,
                           workspace_id=link.workspace_id, target_type="export_link", target_id=link.id,
                           outcome="denied", detail={"reason": "wrong_code", "failed": link.failed_codes})
        return None
    now = clock.now()
    done = await uow.session.execute(
        update(ExportLink)
        .where(ExportLink.id == link.id, ExportLink.used_at.is_(None), ExportLink.revoked_at.is_(None),
               ExportLink.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(done, "rowcount", 0) != 1:
        raise LinkUnusable("used")
    return link


async def download(rt: Runtime, token: object, code: object) -> export.Delivered:
    """The person's download through their link: claim it (one write unit, committed), then gather
    in a read-only unit, build and render off the loop, and audit ``subject.exported``."""
    if not isinstance(code, str) or not code.strip() or len(code) > 40:
        raise WrongCode("enter the code from the e-mail")
    async with rt.db.unit_of_work() as uow:
        link = await claim_link(rt, uow, token, code)
        claimed = None if link is None else (link.id, link.workspace_id, list(link.visitor_ids), link.searched_by,
                                             link.fmt)
    if claimed is None:
        raise WrongCode("that code is not the one in the e-mail")
    link_id, workspace_id, visitor_ids, searched_by, fmt = claimed
    async with rt.db.unit_of_work(readonly=True) as uow:
        got = await export.gather(rt, uow, workspace_id, visitor_ids, searched_by=searched_by)
    delivered = await export.produce(got, fmt)
    async with rt.db.unit_of_work() as uow:
        await export.record_exported(rt, uow, got, fmt, via="link", link_id=link_id)
    return delivered
