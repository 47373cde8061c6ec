"""Log-in throttling with growing delays, kept in the database so that every node sees the same
counts (docs/security.md, ADR 0012).

Each attempt is counted *before* its password is checked, under two keys: the typed e-mail (a
keyed hash of it, whether or not an account has it: throttling then behaves the same for unknown
and known accounts and tells nothing about which exist) and the client address (also a keyed
hash; it catches one address trying many accounts). Past ``free`` attempts in a row, the key is
blocked for a delay that doubles with each further attempt, up to ``max_s``: nobody, the owner
included, is ever locked out for good, and a guesser gets a few dozen tries a day at most.

Counting before the check means that a burst of parallel guesses is counted (and blocked) as it
arrives rather than after a few hundred argon2 checks ran at once. A success then undoes its own
count: the account's key is forgotten; the address's loses one (several people behind one office
address must not throttle each other by logging in). The block set for an attempt is therefore
lifted when that attempt succeeds (it passed the check, so any earlier block had expired).

Every write is one statement (an upsert whose update is guarded by "not blocked now"), so racing
attempts on several nodes never lose a count: on PostgreSQL the row is locked by the upsert until
its unit commits, and a racing upsert re-checks the guard against the committed row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from confide.auth.models import LoginThrottle
from confide.core.db import UnitOfWork


@dataclass(frozen=True, slots=True)
class Rule:
    free: int  # attempts in a row before any delay
    base_s: float  # the first delay
    max_s: float  # the longest delay
    forget_s: float  # a key quiet this long starts again from zero

    def delay_s(self, failures: int) -> float:
        """The wait after the ``failures``-th attempt in a row: none up to ``free``, then doubling."""
        if failures <= self.free:
            return 0.0
        return float(min(self.max_s, self.base_s * 2 ** min(failures - self.free - 1, 60)))


def retry_after_s(blocked_until: datetime, now: datetime) -> int:
    """Whole seconds to wait (at least 1), as told to the person."""
    return max(1, math.ceil((blocked_until - now).total_seconds()))


async def blocked_until(uow: UnitOfWork, keys: Iterable[str], now: datetime) -> datetime | None:
    """The latest block now in force on any of these keys, or None."""
    rows = await uow.session.scalars(
        select(LoginThrottle.blocked_until).where(LoginThrottle.key.in_(list(keys)), LoginThrottle.blocked_until > now)
    )
    found = [r for r in rows.all() if r is not None]
    return max(found) if found else None


async def count_attempt(uow: UnitOfWork, key: str, rule: Rule, now: datetime) -> int | None:
    """Count one attempt under ``key`` and block it for the delay this attempt earns (lifted by
    ``succeeded``). None: the key is blocked right now (nothing counted)."""
    conn = await uow.session.connection()
    table: Any = LoginThrottle.__table__
    ins: Any = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    stale = table.c.last_failure_at < now - timedelta(seconds=rule.forget_s)
    failures = case((stale, 1), else_=table.c.failures + 1)
    first_delay = rule.delay_s(1)
    stmt = (
        ins.values(
            key=key,
            failures=1,
            last_failure_at=now,
            blocked_until=now + timedelta(seconds=first_delay) if first_delay else None,
        )
        .on_conflict_do_update(
            index_elements=["key"],
            set_={"failures": failures, "last_failure_at": now},
            where=(table.c.blocked_until.is_(None)) | (table.c.blocked_until <= now),
        )
        .returning(table.c.failures)
    )
    count = (await conn.execute(stmt)).scalar()
    if count is None:
        return None
    delay = rule.delay_s(int(count))
    if delay:
        await conn.execute(update(table).where(table.c.key == key).values(blocked_until=now + timedelta(seconds=delay)))
    return int(count)


async def succeeded(uow: UnitOfWork, *, forget: Iterable[str] = (), undo: Iterable[str] = ()) -> None:
    """A log-in passed: ``forget`` keys start again from zero; ``undo`` keys lose this attempt's
    count and the block it set."""
    forget, undo = list(forget), list(undo)
    if forget:
        await uow.session.execute(
            delete(LoginThrottle).where(LoginThrottle.key.in_(forget)).execution_options(synchronize_session=False)
        )
    if undo:
        await uow.session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key.in_(undo))
            .values(
                failures=case((LoginThrottle.failures > 0, LoginThrottle.failures - 1), else_=0),
                blocked_until=None,
            )
            .execution_options(synchronize_session=False)
        )


async def purge(uow: UnitOfWork, before: datetime) -> int:
    """Forget keys quiet since ``before`` and not blocked (the scheduler may call it; counts
    restart from zero after ``forget_s`` anyway)."""
    result: Any = await uow.session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.last_failure_at < before,
            (LoginThrottle.blocked_until.is_(None)) | (LoginThrottle.blocked_until < before),
        )
    )
    return int(result.rowcount or 0)
