"""Walking a table in keyset batches, each batch its own write transaction: a long walk (a backfill
over every visitor) never holds one long transaction or one long lock, and a crash loses one batch
at most. The caller's ``step`` handles the rows after an id and says where it stopped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from confide.core.db import Database, UnitOfWork

T = TypeVar("T")


async def walk(
    db: Database, step: Callable[[UnitOfWork, str], Awaitable[tuple[str, T]]], done: Callable[[T], None]
) -> None:
    """``step(uow, after)`` handles the rows after id ``after`` (``""`` at first) in a unit of work
    of its own and returns (the last id it handled, or ``""`` when none was left; its result);
    ``done(result)`` is told of each committed batch."""
    after = ""
    while True:
        async with db.unit_of_work() as uow:
            after, result = await step(uow, after)
        if not after:
            return
        done(result)
