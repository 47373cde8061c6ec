"""The mail helper's periodic work (run by ``scheduler.py``, one node at a time): accounts inactive
past their workspace's limit are disabled (``users.review``), and jobs that failed for good are
purged after ``FAILED_JOBS_KEPT``. Neither needs to run every second: at most once a minute."""

from __future__ import annotations

import weakref
from datetime import datetime, timedelta

from confide.core import clock, jobs
from confide.core.db import Database, UnitOfWork
from confide.core.runtime import Runtime
from confide.users import review

EVERY = timedelta(minutes=1)
FAILED_JOBS_KEPT = timedelta(days=30)
_last_run: weakref.WeakKeyDictionary[Database, datetime] = weakref.WeakKeyDictionary()


async def auto_disable(rt: Runtime, uow: UnitOfWork) -> int:
    now = clock.now()
    last = _last_run.get(rt.db)
    if last is not None and now - last < EVERY:
        return 0
    _last_run[rt.db] = now
    await jobs.purge_failed(uow, now - FAILED_JOBS_KEPT)
    return await review.disable_inactive(rt, uow)
