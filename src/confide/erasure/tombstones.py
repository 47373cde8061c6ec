"""Keyed tombstones of erased people: a later import, sync or widget call naming them is refused.

A tombstone is ``BlindIndex.term(workspace, "tombstone", "<kind>:<value>")``: an HMAC under the
workspace's blind-index key with a prefix of its own, so it equals neither the value nor the
value's ordinary blind index (the raw scan of an erased person's rows finds none of theirs). The
value is the visitor id, the e-mail's blind index (``visitors.email_bidx``: an import that holds the
address computes ``bidx.email`` first) or a verified identity's blind index. Nothing is decrypted
to make one.

``refuse_erased`` is the check for callers that hold a visitor token (the widget's socket and HTTP
calls): an erased visitor's token answers ``410 erased``, never a new visitor or conversation.
``is_erased`` is the seam for imports and integrations (e-mail or visitor id).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from confide.auth import visitor_tokens
from confide.auth.actors import VisitorActor
from confide.core.db import UnitOfWork
from confide.core.errors import DomainError
from confide.core.runtime import Runtime
from confide.erasure.models import Tombstone

VISITOR, EMAIL, IDENTITY = "visitor", "email", "identity"


class Erased(DomainError):
    """The person this names was erased: nothing is created for them again."""

    status = 410
    code = "erased"

    def __init__(self, message: str = "this visitor's data was erased; start a new chat") -> None:
        super().__init__(message)


def digest(rt: Runtime, workspace_id: str, kind: str, value: str) -> str:
    return rt.bidx.term(workspace_id, "tombstone", f"{kind}:{value}")


def email_digest(rt: Runtime, workspace_id: str, email: str) -> str:
    """The tombstone an import holding an e-mail address looks for."""
    return digest(rt, workspace_id, EMAIL, rt.bidx.email(workspace_id, email))


async def find(uow: UnitOfWork, workspace_id: str, digests: list[str]) -> dict[str, str]:
    """digest -> certificate id, for those of ``digests`` that are tombstones."""
    if not digests:
        return {}
    rows = await uow.session.execute(
        select(Tombstone.digest, Tombstone.certificate_id).where(
            Tombstone.workspace_id == workspace_id, Tombstone.digest.in_(digests)
        )
    )
    return {d: c for d, c in rows.all()}


async def is_erased(
    rt: Runtime, uow: UnitOfWork, workspace_id: str, *, visitor_id: str | None = None, email: str | None = None
) -> bool:
    """Whether a visitor id or an e-mail address belongs to someone erased in this workspace."""
    wanted = []
    if visitor_id:
        wanted.append(digest(rt, workspace_id, VISITOR, visitor_id))
    if email:
        wanted.append(email_digest(rt, workspace_id, email))
    return bool(await find(uow, workspace_id, wanted))


async def refuse_erased(rt: Runtime, uow: UnitOfWork, actor: VisitorActor) -> None:
    """``Erased`` (410) when the token's visitor was erased."""
    if await is_erased(rt, uow, actor.workspace_id, visitor_id=actor.visitor_id):
        raise Erased()


async def refuse_erased_token(rt: Runtime, uow: UnitOfWork, site_id: str, token: object) -> None:
    """``Erased`` when ``token`` is a genuine visitor token of this site whose visitor was erased
    (a forged or expired token is left to the call's own check)."""
    try:
        actor = visitor_tokens.verify(rt.visitor_tokens, token, site_id=site_id)
    except DomainError:
        return
    await refuse_erased(rt, uow, actor)


def add(uow: UnitOfWork, workspace_id: str, kind: str, value_digest: str, certificate_id: str, now: datetime) -> None:
    uow.session.add(
        Tombstone(workspace_id=workspace_id, digest=value_digest, kind=kind, certificate_id=certificate_id,
                  created_at=now)
    )
