"""The one question Visitor Activity asks before it stores anything: may this visitor's pages be
tracked on this site?

Yes when the consent ledger says the visitor may be tracked (``consent.questions.may`` for the
``activity_tracking`` purpose), or when the site chose legitimate interest for activity tracking
and documented why (``ActivitySettings``: basis ``legitimate_interest`` with a justification;
saving one without it is refused) and the visitor did not object (``consent.questions.objected``: a
withdrawal, or the box shown and left unticked).
"""

from __future__ import annotations

from confide.consent import purposes as K
from confide.consent import questions as consent_questions
from confide.core.db import UnitOfWork
from confide.visitor_activity.models import ActivitySettings
from confide.visitors.service import Visitor
from confide.workspaces.service import Site

PURPOSE = K.ACTIVITY_TRACKING


async def settings_of(uow: UnitOfWork, site: Site) -> ActivitySettings | None:
    return await uow.session.get(ActivitySettings, site.id)


def documented_interest(settings: ActivitySettings | None) -> bool:
    return (
        settings is not None
        and settings.basis == "legitimate_interest"
        and bool((settings.justification or "").strip())
    )


async def may_track(uow: UnitOfWork, site: Site, visitor: Visitor) -> bool:
    if visitor.site_id != site.id or visitor.workspace_id != site.workspace_id:
        return False
    ask = {"workspace_id": site.workspace_id, "subject_id": visitor.id, "purpose": PURPOSE}
    if documented_interest(await settings_of(uow, site)):
        return not await consent_questions.objected(uow, **ask)
    return await consent_questions.may(uow, **ask)
