"""Periodic work inside the server process: offers that time out move to the next operator."""

from __future__ import annotations

import asyncio

import structlog

from confide.core.runtime import Runtime
from confide.routing import service as routing

log = structlog.get_logger(__name__)


async def tick(rt: Runtime) -> int:
    async with rt.db.unit_of_work() as uow:
        return await routing.expire_offers(rt, uow)


async def run(rt: Runtime, interval_s: float = 1.0) -> None:
    while True:
        try:
            await tick(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduler_tick_failed")
        await asyncio.sleep(interval_s)
