"""An operator records a consent statement the visitor made in the chat ("yes, send me the
newsletter"), referring to the visitor's message: source ``operator``, with the operator's id."""

from __future__ import annotations

from confide.auth.actors import OperatorActor
from confide.chats import service as chats
from confide.consent import ledger
from confide.consent import purposes as K
from confide.consent.models import ConsentRecord
from confide.consent.schemas import StatementIn
from confide.core.db import UnitOfWork
from confide.core.errors import NotFound
from confide.core.runtime import Runtime
from confide.permissions.access import access_conversation_by_id
from confide.permissions.policy import Permission, require


async def record_statement(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, conversation_id: object, data: StatementIn
) -> ConsentRecord:
    """The chat must be in the operator's reach for taking part (``CHATS_PARTICIPATE``), the
    message the visitor's own in that chat; otherwise "not found", with nothing written."""
    require(actor, Permission.CHATS_PARTICIPATE)
    conv = await access_conversation_by_id(uow.session, actor, conversation_id, permission=Permission.CHATS_PARTICIPATE)
    if not await chats.is_visitor_message(uow, conv, data.message_id):
        raise NotFound("message not found")
    return await ledger.record(
        rt,
        uow,
        workspace_id=conv.workspace_id,
        subject_id=conv.visitor_id,
        purpose=data.purpose,
        granted=data.granted,
        source=K.OPERATOR,
        site_id=conv.site_id,
        conversation_id=conv.id,
        message_id=data.message_id,
        actor=actor,
    )
