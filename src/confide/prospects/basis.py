"""May a visitor be profiled as a prospect? The one place prospects ask (COMMON.md: the lead
rewires ``may_profile`` to ``consent.may(..., purpose="profiling")`` when the consent ledger lands).

- Consent (the default): only when the visitor ticked the site's ``profiling`` purpose. A site
  that offers no such purpose has no consent to rely on: nobody is profiled automatically.
- Legitimate interest, where the business documented it (``ProspectSettings.interest_note``):
  allowed unless the visitor objected. A ``profiling`` box offered in the widget and left unticked
  counts as an objection (what the visitor was shown said no), as does a recorded objection
  (``profiling_objections``, checked by the caller for every basis: ``service.objected``).

Until the ledger exists this reads today's ``visitors.consents`` JSON, and nothing else in
prospects/ reads it.
"""

from __future__ import annotations

from confide.core.db import UnitOfWork
from confide.prospects.models import ProspectSettings
from confide.visitors.service import Visitor
from confide.workspaces.service import Site

PURPOSE = "profiling"
CONSENT = "consent"
LEGITIMATE_INTEREST = "legitimate_interest"


async def may_profile(uow: UnitOfWork, site: Site, visitor: Visitor) -> bool:
    settings = await uow.session.get(ProspectSettings, site.id)
    basis = settings.basis if settings is not None else CONSENT
    offered = any(p.get("key") == PURPOSE for p in site.purposes or [])
    record = (visitor.consents or {}).get(PURPOSE)
    granted = isinstance(record, dict) and record.get("granted") is True
    if basis == LEGITIMATE_INTEREST and settings is not None and settings.interest_note.strip():
        return granted or not offered
    return granted
