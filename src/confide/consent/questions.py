"""The questions every processing asks the consent ledger before it runs (ADR 0018, ADR 0031):
``may`` (may this subject's data be processed for this purpose now?), ``objected`` (did they say no:
what a processing on a documented legitimate interest honours) and ``allowed_subjects`` (``may``
for a whole list at once, for a marketing list).

Consent-based purposes need a granted record under a still-valid notice; legitimate-interest and
contract ones run unless the subject objected. A person whose processing is restricted (Art. 18,
``restriction.service``) is allowed nothing, whatever the purpose: their data is only stored.
"""

from __future__ import annotations

from sqlalchemy import func, select

from confide.consent import purposes as K
from confide.consent.ledger import standing, state_of
from confide.consent.models import ConsentRecord
from confide.consent.notices import get_purpose
from confide.core.db import UnitOfWork
from confide.restriction import service as restriction


async def may(uow: UnitOfWork, *, workspace_id: str, subject_id: str, purpose: str) -> bool:
    """May the subject's data be processed for ``purpose`` now? Ask before every processing.

    Consent-based: only with a granted record under a notice that still counts. Legitimate
    interest or contract: yes unless the subject objected (their latest record withdraws). An
    unknown or disabled purpose: never. A person whose processing is restricted (Art. 18, ADR
    0031): never, whatever the purpose (their data is only stored)."""
    found = await get_purpose(uow, workspace_id, purpose)
    if found is None or not found.enabled:
        return False
    if await restriction.is_restricted(uow, workspace_id, subject_id):
        return False
    if found.required:
        return True
    st = await state_of(uow, found, subject_id)
    if found.lawful_basis == K.CONSENT:
        return bool(st.granted) and st.valid
    return st.granted is not False


async def objected(uow: UnitOfWork, *, workspace_id: str, subject_id: str, purpose: str) -> bool:
    """Did the subject say no to ``purpose``: is their latest record a withdrawal, or a box shown
    and left unticked? What a processing on a documented legitimate interest honours (Art. 21).
    A restricted person (Art. 18) counts as having said no to everything."""
    if await restriction.is_restricted(uow, workspace_id, subject_id):
        return True
    found = await get_purpose(uow, workspace_id, purpose)
    if found is None:
        return False
    return (await state_of(uow, found, subject_id)).granted is False


async def allowed_subjects(uow: UnitOfWork, *, workspace_id: str, purpose: str, subject_ids: list[str]) -> set[str]:
    """Of ``subject_ids``, those ``may`` allows for ``purpose`` (a marketing list is built from this,
    so a withdrawal takes the person off it at once). One query for the latest rows. Restricted
    people (Art. 18) are never among them."""
    found = await get_purpose(uow, workspace_id, purpose)
    if found is None or not found.enabled or not subject_ids:
        return set()
    restricted = await restriction.restricted_among(uow, workspace_id, subject_ids)
    subject_ids = [s for s in subject_ids if s not in restricted]
    if not subject_ids:
        return set()
    if found.required:
        return set(subject_ids)
    latest = (
        select(ConsentRecord.subject_id, func.max(ConsentRecord.seq).label("seq"))
        .where(ConsentRecord.workspace_id == workspace_id, ConsentRecord.purpose == found.key,
               ConsentRecord.subject_id.in_(subject_ids))
        .group_by(ConsentRecord.subject_id)
        .subquery()
    )
    rows = (await uow.session.scalars(select(ConsentRecord).join(latest, ConsentRecord.seq == latest.c.seq))).all()
    states = {r.subject_id: standing(found, r) for r in rows}
    if found.lawful_basis == K.CONSENT:
        return {s for s, st in states.items() if st.granted and st.valid}
    return {s for s in subject_ids if s not in states or states[s].granted is not False}
