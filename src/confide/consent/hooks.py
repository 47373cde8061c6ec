"""Consent's hooks in the durable job runner (ADR 0013, ADR 0018), registered on import (the runner,
``worker/jobs.py``, imports this module): the purpose guard, which drops a queued job whose purpose
``may`` no longer allows when its turn comes, and the handler of the withdrawal event the ledger
queues."""

from __future__ import annotations

from typing import Any

import structlog

from confide.consent.ledger import WITHDRAWN_KIND
from confide.consent.questions import may
from confide.core import jobs
from confide.core.runtime import Runtime

log = structlog.get_logger(__name__)


@jobs.purpose_guard
async def _job_may_run(rt: Runtime, job: jobs.Claimed) -> bool:
    """A queued job for a purpose runs only if ``may`` still allows it when its turn comes."""
    if job.workspace_id is None or job.subject_id is None or job.purpose is None:
        return False
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await may(uow, workspace_id=job.workspace_id, subject_id=job.subject_id, purpose=job.purpose)


@jobs.handler(WITHDRAWN_KIND)
async def _deliver_withdrawn(rt: Runtime, payload: dict[str, Any]) -> None:
    """The integrations outbox: nothing is configured to receive it yet (webhooks and CRM calls
    come in a later issue, and will be delivered from here), so the event is done once run."""
    log.info("consent_withdrawn_event", purpose=payload.get("purpose"), record_id=payload.get("record_id"))
