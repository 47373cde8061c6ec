"""``access.denied`` for WebSocket frames, bounded per socket.

A frame refused for lack of a permission (``FRAME_ACCESS``, checked by the dispatcher on every
frame) or refused by the service it calls (``Forbidden``, 403) is recorded like an HTTP denial
(``web/denials.py``): action ``access.denied``, outcome ``denied``, the operator, and what was
refused: target type ``frame``, target id ``<socket>:<frame type>`` (``operator:accept``),
detail ``{"method": "WS"}``. Each row is written in a short write unit of its own (the frame's
unit, if any, has rolled back), before the next frame of the socket is read.

A looping client must not flood the log: each socket records at most ``PER_WINDOW`` denials per
``WINDOW_S`` seconds (from the first denial of the window). The denials past that are counted,
and when the window is over (at the socket's next denial, or when it closes) one summary row
``access.denied_suppressed`` (outcome ``denied``, target ``frame`` / ``<socket>``) carries how
many were left out: ``{"suppressed": n, "window_s": 60}``. "Not found" answers are not recorded
(as over HTTP: a refused load of one object looks like absence by design).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock
from confide.core.runtime import Runtime

log = structlog.get_logger(__name__)
PER_WINDOW = 5
WINDOW_S = 60
DENIED = "access.denied"
SUPPRESSED = "access.denied_suppressed"


@dataclass(slots=True)
class DenialBudget:
    """One socket's denial window: how many were recorded in it, and how many left out."""

    socket: str  # the dispatcher's name: "operator"
    started: datetime | None = None
    recorded: int = 0
    suppressed: int = 0

    async def denied(self, rt: Runtime, actor: OperatorActor, frame_type: str) -> None:
        """Record one refused frame, or count it when the window's budget is spent."""
        now = clock.now()
        if self.started is not None and now - self.started >= timedelta(seconds=WINDOW_S):
            await self.flush(rt, actor)
        if self.started is None:
            self.started, self.recorded = now, 0
        if self.recorded >= PER_WINDOW:
            self.suppressed += 1
            return
        self.recorded += 1
        await _write(
            rt,
            actor,
            DENIED,
            target_id=f"{self.socket}:{frame_type}"[:64],
            detail={"method": "WS"},
        )

    async def flush(self, rt: Runtime, actor: OperatorActor) -> None:
        """End the window: one summary row when denials were left out of it."""
        left_out, self.suppressed, self.started, self.recorded = self.suppressed, 0, None, 0
        if left_out:
            await _write(
                rt, actor, SUPPRESSED, target_id=self.socket, detail={"suppressed": left_out, "window_s": WINDOW_S}
            )


async def _write(
    rt: Runtime, actor: OperatorActor, action: str, *, target_id: str, detail: dict[str, str | int]
) -> None:
    try:
        async with rt.db.unit_of_work() as uow:
            await audit.record(
                rt, uow, action, actor=actor, outcome="denied", target_type="frame", target_id=target_id, detail=detail
            )
    except Exception:  # the refusal is still answered; the failure to record it is logged
        log.exception("access_denied_not_recorded", operator_id=actor.operator_id)
