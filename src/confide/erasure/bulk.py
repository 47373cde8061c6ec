"""Bulk erasure by filter: every visitor of a site without activity since a date (ADR 0028).

"Activity" is anything the registry holds that has a time: the visitor's creation, a chat
started or written in, an offline request, a page seen. So "all chats of a site older than a
date" is the same filter at the person's grain: a visitor whose every chat is older goes whole,
with the rest of their data; one who chatted since is kept whole (their old chats are the
retention sweep's, per conversation, through ``stats.fold_conversations``).

``bulk_preview`` gives the same counts as a person's preview, summed; ``run`` erases in batches,
**each batch its own transaction** (one ``service.erase`` with the run's certificate), and calls
``progress(done, total)`` after each. Interrupted, it leaves whole batches erased and the rest
untouched; run again, the same filter finds only what is left (idempotent). The run's certificate
stays ``running`` until the last batch, then ``done``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto
from confide.core.db import Base, UnitOfWork
from confide.core.errors import Invalid
from confide.core.runtime import Runtime
from confide.erasure import service
from confide.erasure.models import Certificate
from confide.permissions.access import access_site_to_erase

BATCH = 100
Progress = Callable[[int, int], None]


def _matching(workspace_id: str, site_id: str, before: datetime) -> Any:
    """Visitors of the site with nothing dated on or after ``before``."""
    t = Base.metadata.tables
    v, c, o, p = t["visitors"], t["conversations"], t["offline_requests"], t["activity_pages"]
    recent_chat = exists().where(
        c.c.visitor_id == v.c.id,
        or_(c.c.created_at >= before, and_(c.c.last_message_at.is_not(None), c.c.last_message_at >= before)),
    )
    recent_request = exists().where(o.c.visitor_id == v.c.id, o.c.created_at >= before)
    recent_page = exists().where(p.c.visitor_id == v.c.id, p.c.viewed_at >= before)
    return and_(
        v.c.workspace_id == workspace_id,
        v.c.site_id == site_id,
        v.c.created_at < before,
        ~recent_chat,
        ~recent_request,
        ~recent_page,
    )


def _before(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise Invalid("the date needs a time zone")
    if value > clock.now():
        raise Invalid("the date must be in the past")
    return value


async def count(uow: UnitOfWork, workspace_id: str, site_id: str, before: datetime) -> int:
    v = Base.metadata.tables["visitors"]
    return int(await uow.session.scalar(select(func.count()).select_from(v).where(
        _matching(workspace_id, site_id, before))) or 0)


async def next_batch(uow: UnitOfWork, workspace_id: str, site_id: str, before: datetime, limit: int) -> list[str]:
    v = Base.metadata.tables["visitors"]
    rows = await uow.session.scalars(
        select(v.c.id).where(_matching(workspace_id, site_id, before)).order_by(v.c.id).limit(limit)
    )
    return [str(r) for r in rows.all()]


async def bulk_preview(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor | None, site_id: object, before: datetime
) -> dict[str, Any]:
    """How many people match, and per table how many rows would go (in batches of reads)."""
    site = await access_site_to_erase(uow.session, actor, site_id)
    when = _before(before)
    v = Base.metadata.tables["visitors"]
    ids = [str(r) for r in (await uow.session.scalars(
        select(v.c.id).where(_matching(site.workspace_id, site.id, when)).order_by(v.c.id))).all()]
    tables: dict[str, int] = {}
    for start in range(0, len(ids), service.MAX_SUBJECTS):
        counts = await service.preview(rt, uow, actor, site.workspace_id, ids[start : start + service.MAX_SUBJECTS])
        for name, n in counts.items():
            tables[name] = tables.get(name, 0) + n
    return {"site_id": site.id, "before": clock.iso(when), "subjects": len(ids), "tables": dict(sorted(tables.items()))}


async def start(rt: Runtime, uow: UnitOfWork, actor: OperatorActor | None, site_id: object, before: datetime,
                *, request_id: str | None = None) -> Certificate:
    """The run's certificate (``running``), audited; batches add to it."""
    site = await access_site_to_erase(uow.session, actor, site_id)
    when = _before(before)
    now = clock.now()
    cert = Certificate(
        id=crypto.new_id(), workspace_id=site.workspace_id, kind="bulk", state="running",
        request_id=service.request_id_of(request_id), reason="bulk",
        actor_type="operator" if actor is not None else "system",
        actor_id=actor.operator_id if actor is not None else None, subjects=0, counts={}, keys_destroyed=0,
        filter={"site_id": site.id, "before": clock.iso(when)}, created_at=now, finished_at=None,
    )
    uow.session.add(cert)
    await audit.record(rt, uow, "subject.bulk_erasure_started", actor=actor,
                       actor_type=None if actor is not None else "system", workspace_id=site.workspace_id,
                       target_type="erasure_certificate", target_id=cert.id,
                       detail={"site": site.id, "before": clock.iso(when)})
    return cert


async def finish(rt: Runtime, uow: UnitOfWork, actor: OperatorActor | None, certificate_id: str) -> Certificate:
    cert = await uow.session.get(Certificate, certificate_id, with_for_update=True)
    if cert is None:  # pragma: no cover - made by start()
        raise Invalid("no such run")
    cert.state, cert.finished_at = "done", clock.now()
    await audit.record(rt, uow, "subject.bulk_erasure_finished", actor=actor,
                       actor_type=None if actor is not None else "system", workspace_id=cert.workspace_id,
                       target_type="erasure_certificate", target_id=cert.id,
                       detail={"subjects": cert.subjects, "keys_destroyed": cert.keys_destroyed})
    return cert


async def run(
    rt: Runtime,
    actor: OperatorActor | None,
    site_id: str,
    before: datetime,
    *,
    request_id: str | None = None,
    batch_size: int = BATCH,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Erase every matching visitor in batches, each batch one transaction (this function is an
    edge: it opens its units of work itself, like a job). Returns the certificate's view."""
    size = max(1, min(batch_size, service.MAX_SUBJECTS))
    async with rt.db.unit_of_work() as uow:
        cert = await start(rt, uow, actor, site_id, before, request_id=request_id)
        cert_id, workspace_id, filt = cert.id, cert.workspace_id, dict(cert.filter or {})
        total = await count(uow, workspace_id, filt["site_id"], before)
    done = 0
    while True:
        async with rt.db.unit_of_work() as uow:
            ids = await next_batch(uow, workspace_id, filt["site_id"], before, size)
            if ids:
                await service.erase(rt, uow, actor, workspace_id, ids, request_id=request_id, reason="bulk",
                                    certificate_id=cert_id)
        if not ids:
            break
        done += len(ids)
        if progress is not None:
            progress(done, max(total, done))
    async with rt.db.unit_of_work() as uow:
        return service.certificate_view(await finish(rt, uow, actor, cert_id))
