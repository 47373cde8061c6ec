"""Open console sockets re-check their session on a short interval (ADR 0012).

The ``revoke`` event closes a console at once, but an event can be lost (a broker restart, a node
that was not subscribed yet, a revocation written straight into the database). So every
``session_check_s`` (5 s by default) each node asks the database, in ONE query for all its open
consoles, which of their sessions are still alive (not ended, not past the absolute or the idle
timeout, the operator not disabled), and closes the sockets of the others with ``REVOKED`` (4403,
reason "session ended"). The same tick records that those consoles are in use (``last_seen_at``,
one UPDATE, at most once a minute per session): an open console is not idle.

One watcher per runtime, started with the first console and stopped with the runtime; a socket
costs one dict entry here, no task of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from confide.core.runtime import Runtime
from confide.users import sessions as user_sessions

log = structlog.get_logger(__name__)

Closer = Callable[[], Awaitable[None]]
REASON = "session ended"  # the close reason sent with REVOKED (4403)
_BATCH = 500  # session ids per query


class SessionWatch:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._watched: dict[str, dict[int, Closer]] = {}  # session id -> socket token -> closer
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[Any]] = set()
        self._next = 0
        self._touched = time.monotonic()

    def watch(self, session_id: str, close: Closer) -> Callable[[], None]:
        """Close this socket (``close``) once its session ends; returns the "unwatch" to call when
        the socket goes away."""
        self._next += 1
        token = self._next
        self._watched.setdefault(session_id, {})[token] = close
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="session-watch")
            self.rt.tasks.append(self._task)

        def unwatch() -> None:
            sockets = self._watched.get(session_id)
            if sockets is not None:
                sockets.pop(token, None)
                if not sockets:
                    del self._watched[session_id]

        return unwatch

    async def _run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.rt.settings.session_check_s)
                try:
                    await self.check()
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database may be away for a moment: try again next tick
                    log.warning("session_check_failed")
        finally:
            if _WATCHES.get(id(self.rt)) is self:
                del _WATCHES[id(self.rt)]

    async def check(self) -> int:
        """One pass: close the sockets of sessions that ended; returns how many sockets were closed."""
        ids = list(self._watched)
        if not ids:
            return 0
        alive: set[str] = set()
        async with self.rt.db.unit_of_work(readonly=True) as uow:
            for start in range(0, len(ids), _BATCH):
                alive |= await user_sessions.live_sessions(uow, ids[start : start + _BATCH])
        closed = 0
        for session_id in ids:
            if session_id in alive:
                continue
            for close in list(self._watched.pop(session_id, {}).values()):
                task = asyncio.get_running_loop().create_task(_quietly(close))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
                closed += 1
        if alive and time.monotonic() - self._touched >= self.rt.settings.session_touch_s:
            self._touched = time.monotonic()
            with contextlib.suppress(Exception):  # "seen" is a hint; never fail the check for it
                async with self.rt.db.unit_of_work() as uow:
                    await user_sessions.touch_sessions(self.rt, uow, sorted(alive))
        return closed


async def _quietly(close: Closer) -> None:
    with contextlib.suppress(Exception):  # already closed
        await close()


_WATCHES: dict[int, SessionWatch] = {}  # id(runtime) -> its watcher, dropped when its task ends


def session_watch(rt: Runtime) -> SessionWatch:
    """This runtime's watcher (one per node)."""
    watch = _WATCHES.get(id(rt))
    if watch is None or watch.rt is not rt:
        watch = _WATCHES[id(rt)] = SessionWatch(rt)
    return watch
