"""Operator accounts, sessions, chosen status and presence (live sockets across nodes, ADR 0005)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, case, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from confide.auth.actors import OperatorActor
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.errors import CommitAndRaise, Conflict, Invalid, NotFound, Unauthorized
from confide.core.runtime import Runtime
from confide.permissions import policy
from confide.permissions.access import access_department_by_id, access_operator_by_id, require_admin
from confide.users.models import Operator as Operator  # re-exported: other domains hold operators, never query them
from confide.users.models import OperatorDepartment, OperatorSession, Presence
from confide.users.schemas import OperatorIn, OperatorPatch, check_email


def operator_topic(operator_id: str) -> str:
    return f"op:{operator_id}"


async def create_operator(
    rt: Runtime, uow: UnitOfWork, *, workspace_id: str, data: OperatorIn, password_hash: str | None = None
) -> Operator:
    """``password_hash``: ``data.password`` hashed beforehand, off the loop and outside the unit
    (``await rt.passwords.hash_async(...)``); without it the hash is computed here (shell only)."""
    session = uow.session
    if await session.scalar(select(Operator.id).where(Operator.email == data.email)) is not None:
        raise Conflict("an account with this e-mail exists already")
    op = Operator(
        id=crypto.new_id(),
        workspace_id=workspace_id,
        email=data.email,
        name=data.name,
        password_hash=password_hash or rt.passwords.hash(data.password),
        role=data.role,
        status="offline",
        max_chats=data.max_chats,
        disabled=False,
        failed_logins=0,
        created_at=clock.now(),
    )
    session.add(op)
    await session.flush()
    await _set_departments(uow, op, data.department_ids)
    return op


async def admin_create_operator(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, data: OperatorIn, *, password_hash: str | None = None
) -> Operator:
    require_admin(actor)
    for dept_id in data.department_ids:
        await access_department_by_id(uow.session, actor, dept_id)
    return await create_operator(rt, uow, workspace_id=actor.workspace_id, data=data, password_hash=password_hash)


async def update_operator(
    rt: Runtime,
    uow: UnitOfWork,
    actor: OperatorActor,
    operator_id: str,
    patch: OperatorPatch,
    *,
    password_hash: str | None = None,
) -> Operator:
    """``password_hash``: ``patch.password`` hashed beforehand, off the loop (see create_operator)."""
    require_admin(actor)
    op = await access_operator_by_id(uow.session, actor, operator_id)
    changes = patch.model_dump(exclude_unset=True, exclude_none=True)
    if op.id == actor.operator_id and (changes.get("disabled") or changes.get("role") == "operator"):
        raise Invalid("you cannot disable yourself or take away your own administrator role")
    if "department_ids" in changes:
        for dept_id in changes["department_ids"]:
            await access_department_by_id(uow.session, actor, dept_id)
        await _set_departments(uow, op, changes.pop("department_ids"))
    if "password" in changes:
        op.password_hash = password_hash or rt.passwords.hash(changes.pop("password"))
        changes.pop("password", None)
    for key, value in changes.items():
        setattr(op, key, value)
    if op.disabled:
        await revoke_sessions(uow, op.id)
        op.status = "offline"
        rt.publish(uow, operator_topic(op.id), {"type": "revoke"})
    else:
        # Role or departments may have changed: open sockets reload who this operator is, at once.
        rt.publish(uow, operator_topic(op.id), {"type": "refresh"})
    await uow.session.flush()
    return op


async def _set_departments(uow: UnitOfWork, op: Operator, department_ids: list[str]) -> None:
    await uow.session.execute(delete(OperatorDepartment).where(OperatorDepartment.operator_id == op.id))
    for dept_id in dict.fromkeys(department_ids):
        uow.session.add(OperatorDepartment(operator_id=op.id, department_id=dept_id))
    await uow.session.flush()


async def list_operators(uow: UnitOfWork, actor: OperatorActor) -> list[Operator]:
    stmt = select(Operator).where(Operator.workspace_id == actor.workspace_id).order_by(Operator.created_at)
    return list((await uow.session.scalars(stmt)).all())


async def department_ids_of(uow: UnitOfWork, operator_id: str) -> list[str]:
    rows = await uow.session.scalars(
        select(OperatorDepartment.department_id).where(OperatorDepartment.operator_id == operator_id)
    )
    return list(rows.all())


async def list_operator_views(uow: UnitOfWork, actor: OperatorActor) -> list[dict[str, Any]]:
    """Colleagues, as the caller may see them: e-mail addresses only for administrators."""
    views = [await operator_view(uow, op) for op in await list_operators(uow, actor)]
    if not actor.is_admin:
        for view in views:
            del view["email"]
    return views


async def operator_view(uow: UnitOfWork, op: Operator) -> dict[str, Any]:
    return {
        "id": op.id,
        "email": op.email,
        "name": op.name,
        "role": op.role,
        "status": op.status,
        "max_chats": op.max_chats,
        "disabled": op.disabled,
        "department_ids": await department_ids_of(uow, op.id),
    }


# ---------------------------------------------------------------- sessions
@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """What a log-in needs from the database before the (slow, off-loop) password check.

    ``password_hash`` is None when the check must fail anyway (no such account, disabled, locked):
    the caller still spends a dummy check, so that timing tells nothing apart."""

    operator_id: str | None
    password_hash: str | None


async def login_attempt(uow: UnitOfWork, *, email: str) -> LoginAttempt:
    """Step 1 of a log-in, in a read unit: load the hash to check."""
    try:
        email = check_email(email)
    except ValueError:
        return LoginAttempt(None, None)
    row = (
        await uow.session.execute(
            select(Operator.id, Operator.password_hash, Operator.disabled, Operator.locked_until).where(
                Operator.email == email
            )
        )
    ).first()
    if row is None or row.disabled:
        return LoginAttempt(None, None)
    if row.locked_until is not None and row.locked_until > clock.now():
        # Same answer and cost as a wrong password: a lock must not reveal that the account exists.
        return LoginAttempt(row.id, None)
    return LoginAttempt(row.id, row.password_hash)


async def check_password(rt: Runtime, attempt: LoginAttempt, password: str) -> bool:
    """Step 2, with no transaction open: argon2 in the hashing threads, never on the event loop."""
    return await rt.passwords.verify_async(attempt.password_hash, password)


async def record_login(rt: Runtime, uow: UnitOfWork, attempt: LoginAttempt, *, ok: bool) -> Operator:
    """Step 3, in a short write unit: a failure counts (and may lock the account); a success clears
    the counter and returns the operator (``open_session`` follows once every other step of the
    log-in has passed). Both are single conditional UPDATEs, so racing attempts neither lose a
    failure nor let a password in that was changed, or an account that was locked or disabled,
    while it was checked."""
    now = clock.now()
    wrong = Unauthorized("wrong e-mail or password")
    if attempt.operator_id is None:
        raise wrong
    not_locked = or_(Operator.locked_until.is_(None), Operator.locked_until <= now)
    if not ok:
        if attempt.password_hash is not None:
            reached = Operator.failed_logins + 1 >= rt.settings.login_max_failures
            lock_until = now + timedelta(seconds=rt.settings.login_lockout_s)
            await uow.session.execute(
                update(Operator)
                .where(Operator.id == attempt.operator_id, not_locked)
                .values(
                    failed_logins=case((reached, 0), else_=Operator.failed_logins + 1),
                    locked_until=case((reached, lock_until), else_=None),
                )
                .execution_options(synchronize_session=False)
            )
        raise CommitAndRaise(wrong)
    result = await uow.session.execute(
        update(Operator)
        .where(
            Operator.id == attempt.operator_id,
            Operator.password_hash == attempt.password_hash,
            Operator.disabled.is_(False),
            not_locked,
        )
        .values(failed_logins=0, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    if cast("CursorResult[Any]", result).rowcount != 1:
        raise wrong
    op = await uow.session.get(Operator, attempt.operator_id, populate_existing=True)
    if op is None:
        raise wrong
    return op


async def open_session(rt: Runtime, uow: UnitOfWork, operator_id: str, *, method: str) -> str:
    """The last step of every log-in (whatever its first factor): a new session, a new token."""
    op = await uow.session.get(Operator, operator_id, populate_existing=True)
    if op is None or op.disabled:
        raise Unauthorized("wrong e-mail or password")
    now = clock.now()
    token = crypto.random_token()
    uow.session.add(
        OperatorSession(
            id=crypto.new_id(),
            token_digest=crypto.token_digest(token),
            operator_id=op.id,
            created_at=now,
            expires_at=now + timedelta(seconds=rt.settings.session_ttl_s),
        )
    )
    await uow.session.flush()
    return token


async def reset_password(rt: Runtime, uow: UnitOfWork, *, email: str, password_hash: str) -> Operator:
    """Shell recovery (``confide reset-password``): set a new hash, end every session (open consoles
    are told at once, through the broker), clear the lockout."""
    try:
        email = check_email(email)
    except ValueError:
        raise NotFound("no account has this e-mail address") from None
    op = await uow.session.scalar(select(Operator).where(Operator.email == email).with_for_update())
    if op is None:
        raise NotFound("no account has this e-mail address")
    op.password_hash = password_hash
    op.failed_logins = 0
    op.locked_until = None
    await revoke_sessions(uow, op.id)
    rt.publish(uow, operator_topic(op.id), {"type": "revoke"})
    await uow.session.flush()
    return op


async def resolve_session(uow: UnitOfWork, token: str | None) -> OperatorActor:
    if not token or len(token) > 200:
        raise Unauthorized("not logged in")
    row = await uow.session.scalar(
        select(OperatorSession).where(OperatorSession.token_digest == crypto.token_digest(token))
    )
    if row is None or row.revoked_at is not None or row.expires_at <= clock.now():
        raise Unauthorized("not logged in")
    return await actor_for(uow, row.operator_id, session_id=row.id)


async def actor_for(uow: UnitOfWork, operator_id: str, *, session_id: str | None = None) -> OperatorActor:
    op = await uow.session.get(Operator, operator_id)
    if op is None or op.disabled:
        raise Unauthorized("not logged in")
    expires_at = None
    if session_id is not None:
        sess = await uow.session.get(OperatorSession, session_id)
        if sess is None or sess.revoked_at is not None or sess.expires_at <= clock.now():
            raise Unauthorized("not logged in")
        expires_at = sess.expires_at
    role = policy.built_in(op.role)
    return OperatorActor(
        operator_id=op.id,
        workspace_id=op.workspace_id,
        role=op.role,
        department_ids=frozenset(await department_ids_of(uow, op.id)),
        name=op.name,
        permissions=frozenset(p.value for p in role.permissions),
        scope=role.scope.value,
        session_id=session_id,
        session_expires_at=expires_at,
    )


async def logout(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> None:
    if actor.session_id:
        await uow.session.execute(
            update(OperatorSession).where(OperatorSession.id == actor.session_id).values(revoked_at=clock.now())
        )
        rt.publish(uow, operator_topic(actor.operator_id), {"type": "revoke", "session_id": actor.session_id})


async def revoke_sessions(uow: UnitOfWork, operator_id: str) -> None:
    await uow.session.execute(
        update(OperatorSession)
        .where(OperatorSession.operator_id == operator_id, OperatorSession.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )


# -- for directory log-ins (identity.service)
async def operator_by_email(uow: UnitOfWork, email: str) -> Operator | None:
    """The account with this (normalised) e-mail address, if any."""
    return await uow.session.scalar(select(Operator).where(Operator.email == email))


def has_open_session(operator_id: Any) -> Any:
    """A clause: the operator (an id or an id column) has a session neither revoked nor expired."""
    return exists().where(
        OperatorSession.operator_id == operator_id,
        OperatorSession.revoked_at.is_(None),
        OperatorSession.expires_at > clock.now(),
    )

async def get_operator(uow: UnitOfWork, operator_id: str) -> Operator | None:
    return await uow.session.get(Operator, operator_id)


async def operator_names(uow: UnitOfWork, operator_ids: Iterable[str]) -> dict[str, str]:
    ids = {i for i in operator_ids if i}
    if not ids:
        return {}
    rows = await uow.session.execute(select(Operator.id, Operator.name).where(Operator.id.in_(ids)))
    return {row.id: row.name for row in rows}


async def operator_name(uow: UnitOfWork, operator_id: str | None) -> str | None:
    return (await operator_names(uow, [operator_id] if operator_id else [])).get(operator_id or "")


async def is_member(uow: UnitOfWork, operator_id: str, department_id: str) -> bool:
    return await uow.session.get(OperatorDepartment, (operator_id, department_id)) is not None


# ---------------------------------------------------------------- chosen status and availability
STATUSES = ("online", "away", "offline")
OPERATOR, VISITOR = "operator", "visitor"  # presence kinds


async def lock_operator(uow: UnitOfWork, operator_id: str) -> Operator | None:
    """The operator's row, read fresh and locked until the unit ends (``FOR UPDATE`` on PostgreSQL):
    counting their slots and then taking one is then safe against another node doing the same."""
    return await uow.session.scalar(
        select(Operator).where(Operator.id == operator_id).with_for_update().execution_options(populate_existing=True)
    )


async def lock_operators(uow: UnitOfWork, operator_ids: Iterable[str]) -> dict[str, Operator]:
    """Those of these operators' rows that nobody else holds, locked (``SKIP LOCKED``): routing
    never waits for a lock, so it can never be one side of a deadlock; an operator being given a
    chat by another unit right now is simply not offered this one in this unit."""
    ids = sorted(set(operator_ids))
    if not ids:
        return {}
    rows = await uow.session.scalars(
        select(Operator)
        .where(Operator.id.in_(ids))
        .order_by(Operator.id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return {op.id: op for op in rows}


def _live_operator() -> Any:
    """An operator with at least one console socket alive on some node (a heartbeat not expired)."""
    return exists().where(
        Presence.kind == OPERATOR, Presence.subject_id == Operator.id, Presence.expires_at > clock.now()
    )


def _available() -> Any:
    return (Operator.status == "online") & Operator.disabled.is_(False) & _live_operator()


async def available_operators(uow: UnitOfWork, department_id: str) -> list[Operator]:
    """Members of the department whose chosen status is online and who have a live console."""
    stmt = (
        select(Operator)
        .join(OperatorDepartment, OperatorDepartment.operator_id == Operator.id)
        .where(OperatorDepartment.department_id == department_id, _available())
        .order_by(Operator.id)
    )
    return list((await uow.session.scalars(stmt)).all())


async def count_available(uow: UnitOfWork, department_ids: Iterable[str]) -> int:
    ids = list(department_ids)
    if not ids:
        return 0
    stmt = (
        select(func.count(func.distinct(Operator.id)))
        .join(OperatorDepartment, OperatorDepartment.operator_id == Operator.id)
        .where(OperatorDepartment.department_id.in_(ids), _available())
    )
    return int(await uow.session.scalar(stmt) or 0)


async def is_available(uow: UnitOfWork, operator_id: str) -> bool:
    return bool(await uow.session.scalar(select(Operator.id).where(Operator.id == operator_id, _available())))


def mark_assigned(op: Operator, at: datetime) -> None:
    """When the operator was last offered or given a chat (least busy's tie-break)."""
    op.last_assigned_at = at


async def set_status(uow: UnitOfWork, operator_id: str, status: object) -> Operator:
    """The operator's chosen status, kept on their row across visits and reconnects."""
    if status not in STATUSES:
        raise Invalid("status must be online, away or offline")
    op = await lock_operator(uow, operator_id)
    if op is None:
        raise NotFound("operator not found")
    op.status = str(status)
    await uow.session.flush()
    return op


# ---------------------------------------------------------------- presence heartbeats (ADR 0005)
async def beat(
    uow: UnitOfWork, node_id: str, *, operators: Iterable[str] = (), visitors: Iterable[str] = (), ttl_s: float
) -> None:
    """This node's live sockets, in ONE statement: insert or push forward each row's expiry."""
    expires_at = clock.now() + timedelta(seconds=ttl_s)
    rows = [{"kind": OPERATOR, "subject_id": s, "node_id": node_id, "expires_at": expires_at} for s in operators]
    rows += [{"kind": VISITOR, "subject_id": s, "node_id": node_id, "expires_at": expires_at} for s in visitors]
    if not rows:
        return
    conn = await uow.session.connection()
    table: Any = Presence.__table__
    ins: Any = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    await conn.execute(
        ins.on_conflict_do_update(
            index_elements=["kind", "subject_id", "node_id"], set_={"expires_at": ins.excluded.expires_at}
        ),
        rows,
    )


async def forget_node(uow: UnitOfWork, node_id: str) -> None:
    """A node shutting down cleanly: its sockets are gone now, not in a TTL."""
    await uow.session.execute(delete(Presence).where(Presence.node_id == node_id))


async def forget_presence(uow: UnitOfWork, node_id: str, kind: str, subject_id: str) -> None:
    await uow.session.execute(
        delete(Presence).where(Presence.node_id == node_id, Presence.kind == kind, Presence.subject_id == subject_id)
    )


async def purge_presence(uow: UnitOfWork, before: datetime) -> int:
    result: Any = await uow.session.execute(delete(Presence).where(Presence.expires_at < before))
    return int(result.rowcount or 0)


async def visitors_seen_since(uow: UnitOfWork, conversation_ids: Iterable[str], since: datetime) -> set[str]:
    """Of these conversations, those whose visitor had a live socket on some node after ``since``."""
    ids = list(conversation_ids)
    if not ids:
        return set()
    rows = await uow.session.scalars(
        select(Presence.subject_id).where(
            Presence.kind == VISITOR, Presence.subject_id.in_(ids), Presence.expires_at > since
        )
    )
    return set(rows.all())
