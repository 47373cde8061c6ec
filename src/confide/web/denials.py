"""``access.denied`` in the audit log: a ``Forbidden`` (403, raised by ``permissions.policy.require``)
that reaches the dashboard's or the API's exception handler is recorded, by actor and route, in a
short write unit of its own (the request's unit has already rolled back). "Not found" answers are
not recorded: a denied load of one object looks like absence by design, and most 404s are typos.
"""

from __future__ import annotations

import structlog
from fastapi import Request

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core.errors import Forbidden
from confide.web.state import State

log = structlog.get_logger(__name__)


async def record_denial(request: Request, exc: Exception) -> None:
    actor = getattr(request.state, "operator", None)
    if not isinstance(exc, Forbidden) or not isinstance(actor, OperatorActor):
        return
    state: State = request.app.state.confide
    route = request.scope.get("route")
    name = getattr(route, "name", None) or "unknown"
    try:
        async with state.rt.db.unit_of_work() as uow:
            await audit.record(
                state.rt,
                uow,
                "access.denied",
                actor=actor,
                outcome="denied",
                target_type="route",
                target_id=name[:64],
                detail={"method": request.method},
            )
    except Exception:  # the refusal is still answered; the failure to record it is logged
        log.exception("access_denied_not_recorded", operator_id=actor.operator_id)
