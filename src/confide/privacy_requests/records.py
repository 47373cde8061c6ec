"""One request's row as every step handles it (ADR 0029): its own data key and the values it
encrypts, the timeline step with its audit row, and the locked load of a staff action.

Every staff action loads the request through ``permissions`` with ``for_update=True`` (``SELECT ...
FOR UPDATE`` on PostgreSQL): two actions on one request at once are serialised, and the second sees
the first's state and is refused cleanly. Each step is audited (``privacy_request.*``, ids only)
and kept in the request's timeline (``privacy_request_events``) with its note encrypted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto
from confide.core.crypto import DataKey
from confide.core.db import UnitOfWork
from confide.core.runtime import Runtime
from confide.permissions.access import access_privacy_request_by_id
from confide.permissions.policy import Permission
from confide.privacy_requests.models import PrivacyRequest, PrivacyRequestEvent

TARGET = "privacy_request"
TYPE_NAMES = {
    "access": "access to your data",
    "portability": "a copy of your data to take elsewhere",
    "erasure": "erasure of your data",
    "rectification": "correction of your data",
    "restriction": "restriction of the processing of your data",
    "objection": "an objection to the processing of your data",
}


# ---------------------------------------------------------------- the request's own data key
def aad_of(row_id: str, column: str) -> str:
    return f"privacy_requests.{column}:{row_id}"


def key_of(rt: Runtime, row: PrivacyRequest) -> DataKey | None:
    if row.wrapped_key is None:  # anonymised (erasure of the person): nothing can be read any more
        return None
    return rt.keyring.wrapper.unwrap(row.wrapped_key, f"privacy_request:{row.id}")


def open_value(key: DataKey | None, blob: bytes | None, aad: str) -> str | None:
    if key is None or blob is None:
        return None
    return key.decrypt(blob, aad)


def email_of(rt: Runtime, row: PrivacyRequest) -> str | None:
    return open_value(key_of(rt, row), row.email_enc, aad_of(row.id, "email"))


# ---------------------------------------------------------------- timeline + audit
async def step(
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
    key = key_of(rt, row)
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


# ---------------------------------------------------------------- a staff action's row
def state_label(row: PrivacyRequest) -> str:
    """The state as a refusal's sentence names it."""
    return {"received": "received", "verifying": "verifying", "in_progress": "in progress", "done": "done",
            "refused": "refused"}[row.state]


async def load_for_update(
    uow: UnitOfWork, actor: OperatorActor, request_id: str, permission: Permission
) -> PrivacyRequest:
    """The request a staff action names, in the actor's reach, under its row lock."""
    return await access_privacy_request_by_id(uow.session, actor, request_id, permission=permission, for_update=True)
