"""The one question Visitor Activity asks before it stores anything: may this visitor's pages be
tracked on this site?

Yes when the visitor consented to the ``activity_tracking`` purpose, or when the site's workspace
chose legitimate interest for activity tracking and documented why (``ActivitySettings``: basis
``legitimate_interest`` with a justification; saving one without it is refused).

Until the consent ledger is merged this reads today's ``visitors.consents`` JSON (``{key:
{"granted": bool, ...}}``); it is the only reader of it in this domain, and the one function the
lead rewires to ``consent.service.may(uow, workspace_id=..., subject_id=..., purpose=...)``.
"""

from __future__ import annotations

from confide.core.db import UnitOfWork
from confide.visitor_activity.models import ActivitySettings
from confide.visitors.service import Visitor
from confide.workspaces.service import Site

PURPOSE = "activity_tracking"  # confide.consent.purposes.ACTIVITY_TRACKING once merged


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
    if documented_interest(await settings_of(uow, site)):
        return True
    record = (visitor.consents or {}).get(PURPOSE)
    return isinstance(record, dict) and record.get("granted") is True
