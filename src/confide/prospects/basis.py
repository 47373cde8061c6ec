"""May a visitor be profiled as a prospect? The one place prospects ask the consent ledger.

- Consent (the default): only when ``consent.questions.may`` allows the ``profiling`` purpose (the visitor
  ticked it under a notice that still counts). Nobody is profiled automatically otherwise.
- Legitimate interest, where the business documented it (``ProspectSettings.interest_note``):
  allowed unless the visitor objected in the ledger (``consent.questions.objected``: a withdrawal, or a
  ``profiling`` box shown and left unticked), and, for every basis, unless a recorded objection
  matches their e-mail (``profiling_objections``, checked by the caller: ``service.objected``).
"""

from __future__ import annotations

from confide.consent import purposes as K
from confide.consent import questions as consent_questions
from confide.core.db import UnitOfWork
from confide.prospects.models import ProspectSettings
from confide.visitors.service import Visitor
from confide.workspaces.service import Site

PURPOSE = K.PROFILING
CONSENT = "consent"
LEGITIMATE_INTEREST = "legitimate_interest"


async def may_profile(uow: UnitOfWork, site: Site, visitor: Visitor) -> bool:
    settings = await uow.session.get(ProspectSettings, site.id)
    basis = settings.basis if settings is not None else CONSENT
    ask = {"workspace_id": site.workspace_id, "subject_id": visitor.id, "purpose": PURPOSE}
    if basis == LEGITIMATE_INTEREST and settings is not None and settings.interest_note.strip():
        return not await consent_questions.objected(uow, **ask)
    return await consent_questions.may(uow, **ask)
