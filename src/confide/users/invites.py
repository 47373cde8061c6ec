"""Invitations: staff are invited by e-mail and create their own account from the link.

- ``invite``: an administrator (``users.manage``) invites an address with a name, a role and
  departments. The link carries a random 256-bit token; only its SHA-256 digest is stored. It is
  single-use and expires (``CONFIDE_INVITE_TTL_H``, 72 h by default). The e-mail goes through the
  durable outbox in the same transaction (a rolled-back invitation sends nothing). Inviting the
  same address again revokes the older link. An address that already has an account is refused:
  one person, one account. An address has one live invitation per workspace at most (a partial
  unique index, ``uq_operator_invites_live``): when two administrators invite it at once, the
  second to commit is refused with 409 ("being invited by someone else right now") and nothing of
  it is kept, no e-mail either; an invitation sent after the other one committed replaces it.
- ``check`` / ``accept``: the person opens ``/invite/{token}``, sets their name and a password, and
  is logged in. A used, expired, revoked or unknown link is refused with a page saying which.
  ``accept`` locks the invitation's row, so two submissions of one link create one account.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto, mail
from confide.core.db import UnitOfWork
from confide.core.errors import Conflict, DomainError, Invalid, NotFound
from confide.core.runtime import Runtime
from confide.permissions.access import access_department_by_id
from confide.permissions.policy import Permission, require
from confide.users import account_rules as user_account_rules
from confide.users import accounts as user_accounts
from confide.users.account_models import OperatorInvite
from confide.users.models import Operator
from confide.users.schemas import OperatorIn, Role, check_email
from confide.workspaces import service as workspaces

MIN_PASSWORD_LENGTH = 12  # the minimum OperatorIn enforces elsewhere


class InviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Annotated[str, Field(max_length=320)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Role = "operator"
    department_ids: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=200)

    _email = field_validator("email")(check_email)


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class InviteUnusable(DomainError):
    """The link cannot be used (any more): ``reason`` is used, expired, revoked or unknown."""

    status = 410
    code = "invite_unusable"

    def __init__(self, reason: str) -> None:
        super().__init__(f"this invitation link is {reason}")
        self.reason = reason


def check_new_password(password: str) -> None:
    """The early check of the invitation page, before the hash (the workspace's full password policy,
    common and breached passwords included, is applied in ``accept``)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"use at least {MIN_PASSWORD_LENGTH} characters for your password")


# ---------------------------------------------------------------- inviting
def status_of(invite: OperatorInvite, now: datetime | None = None) -> str:
    now = now or clock.now()
    if invite.used_at is not None:
        return "used"
    if invite.revoked_at is not None:
        return "revoked"
    if invite.expires_at <= now:
        return "expired"
    return "pending"


def invite_view(invite: OperatorInvite) -> dict[str, Any]:
    return {
        "id": invite.id,
        "email": invite.email,
        "name": invite.name,
        "role": invite.role,
        "department_ids": list(invite.department_ids or []),
        "created_at": clock.iso(invite.created_at),
        "expires_at": clock.iso(invite.expires_at),
        "status": status_of(invite),
    }


async def _email_taken(uow: UnitOfWork, email: str) -> bool:
    return await uow.session.scalar(select(Operator.id).where(Operator.email == email)) is not None


async def invite(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, data: InviteIn, *, base_url: str
) -> OperatorInvite:
    """Invite ``data.email``; returns the invitation (its token only ever leaves in the e-mail)."""
    require(actor, Permission.USERS_MANAGE)
    await user_accounts.check_role_grantable(uow, actor, data.role)
    for dept_id in dict.fromkeys(data.department_ids):
        await access_department_by_id(uow.session, actor, dept_id)
    if await _email_taken(uow, data.email):
        raise Conflict("an account with this e-mail exists already")
    now = clock.now()
    older = (
        await uow.session.scalars(
            select(OperatorInvite)
            .where(
                OperatorInvite.workspace_id == actor.workspace_id,
                OperatorInvite.email == data.email,
                OperatorInvite.used_at.is_(None),
                OperatorInvite.revoked_at.is_(None),
            )
            .with_for_update()
        )
    ).all()
    for previous in older:
        previous.revoked_at = now
    if older:
        await uow.session.flush()  # revoked before the new row takes the address's one live place
    token = crypto.random_token()
    row = OperatorInvite(
        id=crypto.new_id(),
        workspace_id=actor.workspace_id,
        token_digest=crypto.token_digest(token),
        email=data.email,
        name=data.name,
        role=data.role,
        department_ids=list(dict.fromkeys(data.department_ids)),
        invited_by=actor.operator_id,
        created_at=now,
        expires_at=now + timedelta(hours=rt.settings.invite_ttl_h),
    )
    try:
        # On PostgreSQL an invitation of the same address in a transaction not yet committed makes
        # this insert wait for it; once it commits, the unique index refuses this one.
        async with uow.session.begin_nested():
            uow.session.add(row)
            await uow.session.flush()
    except IntegrityError:
        raise Conflict("this address is being invited by someone else right now; look at the invitations") from None
    link = f"{base_url.rstrip('/')}/invite/{token}"
    _send_invitation(rt, uow, row, link, inviter=actor.name)
    await audit.record(
        rt,
        uow,
        "users.invited",
        actor=actor,
        target_type="operator_invite",
        target_id=row.id,
        detail={"role": row.role, "departments": len(row.department_ids), "replaced": len(older)},
    )
    return row


def _send_invitation(rt: Runtime, uow: UnitOfWork, row: OperatorInvite, link: str, *, inviter: str) -> None:
    hours = round(rt.settings.invite_ttl_h)
    text = (
        f"Hello {row.name},\n\n"
        f"{inviter} has invited you to Confide, the team's live chat.\n\n"
        f"Create your account here (the link works once, for {hours} hours):\n{link}\n\n"
        "If you did not expect this, ignore this message: no account is created without you.\n"
    )
    body = (
        f"<p>Hello {html.escape(row.name)},</p>"
        f"<p>{html.escape(inviter)} has invited you to Confide, the team's live chat.</p>"
        f'<p><a href="{html.escape(link)}">Create your account</a> (the link works once, for {hours} hours).</p>'
        "<p>If you did not expect this, ignore this message: no account is created without you.</p>"
    )
    mail.enqueue_mail(
        rt,
        uow,
        to=[row.email],
        subject="You are invited to Confide",
        text=text,
        html=body,
        workspace_id=row.workspace_id,
        subject_id=row.id,
    )


async def _load(uow: UnitOfWork, actor: OperatorActor, invite_id: str, *, for_update: bool) -> OperatorInvite:
    stmt = select(OperatorInvite).where(
        OperatorInvite.id == invite_id, OperatorInvite.workspace_id == actor.workspace_id
    )
    row = await uow.session.scalar(stmt.with_for_update() if for_update else stmt)
    if row is None:
        raise NotFound("invitation not found")
    return row


async def revoke(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, invite_id: str) -> OperatorInvite:
    require(actor, Permission.USERS_MANAGE)
    row = await _load(uow, actor, str(invite_id)[:64], for_update=True)
    if status_of(row) != "pending":
        raise Conflict(f"this invitation is {status_of(row)} already")
    row.revoked_at = clock.now()
    await audit.record(rt, uow, "users.invite_revoked", actor=actor, target_type="operator_invite", target_id=row.id)
    return row


async def reinvite(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, invite_id: str, *, base_url: str
) -> OperatorInvite:
    """Send a new link for an invitation (the older one stops working)."""
    require(actor, Permission.USERS_MANAGE)
    row = await _load(uow, actor, str(invite_id)[:64], for_update=False)
    if row.used_at is not None:
        raise Conflict("this invitation has been used already")
    data = InviteIn(email=row.email, name=row.name, role=row.role, department_ids=row.department_ids)
    return await invite(rt, uow, actor, data, base_url=base_url)


async def list_invites(uow: UnitOfWork, actor: OperatorActor, *, limit: int = 200) -> list[dict[str, Any]]:
    """The workspace's invitations, newest first (pending, and the recent others)."""
    require(actor, Permission.USERS_MANAGE)
    rows = await uow.session.scalars(
        select(OperatorInvite)
        .where(OperatorInvite.workspace_id == actor.workspace_id)
        .order_by(OperatorInvite.created_at.desc())
        .limit(limit)
    )
    return [invite_view(r) for r in rows.all()]


# ---------------------------------------------------------------- accepting
@dataclass(frozen=True)
class InviteCheck:
    """What the invitation page may show: only to the holder of the link."""

    name: str
    email: str


def _digest(token: object) -> str | None:
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return None
    return crypto.token_digest(token)


async def check(uow: UnitOfWork, token: object) -> InviteCheck:
    """The invitation behind ``token``, if usable; else ``InviteUnusable`` (404 when unknown)."""
    digest = _digest(token)
    row = None
    if digest is not None:
        row = await uow.session.scalar(select(OperatorInvite).where(OperatorInvite.token_digest == digest))
    if row is None:
        raise InviteUnusable("unknown")
    state = status_of(row)
    if state != "pending":
        raise InviteUnusable(state)
    return InviteCheck(name=row.name, email=row.email)


async def accept(rt: Runtime, uow: UnitOfWork, token: object, data: AcceptIn, *, password_hash: str) -> str:
    """Create the account of a usable invitation; returns the new operator's id.

    ``password_hash``: ``data.password`` checked (``check_new_password``) and hashed beforehand,
    off the loop and outside this unit."""
    digest = _digest(token)
    row = None
    if digest is not None:
        row = await uow.session.scalar(
            select(OperatorInvite)
            .where(OperatorInvite.token_digest == digest)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    if row is None:
        raise InviteUnusable("unknown")
    state = status_of(row)
    if state != "pending":
        raise InviteUnusable(state)
    if await _email_taken(uow, row.email):
        raise Conflict("an account with this e-mail exists already; log in instead")
    rules = await user_account_rules.account_rules(rt, uow, row.workspace_id)
    user_account_rules.check_password_policy(rules, data.password, email=row.email)
    departments = []
    for dept_id in row.department_ids or []:  # departments deleted since the invitation are left out
        dept = await workspaces.get_department(uow, dept_id)
        if dept is not None and dept.workspace_id == row.workspace_id:
            departments.append(dept_id)
    op = await user_accounts.create_operator(
        rt,
        uow,
        workspace_id=row.workspace_id,
        data=OperatorIn(
            email=row.email,
            name=data.name.strip() or row.name,
            password=data.password,
            role=row.role,
            department_ids=departments,
        ),
        password_hash=password_hash,
    )
    row.used_at, row.operator_id = clock.now(), op.id
    await audit.record(
        rt,
        uow,
        "users.invite_accepted",
        actor_type="operator",
        actor_id=op.id,
        workspace_id=row.workspace_id,
        target_type="operator",
        target_id=op.id,
        detail={"invite_id": row.id, "role": row.role, "departments": len(departments)},
    )
    await uow.session.flush()
    return op.id
