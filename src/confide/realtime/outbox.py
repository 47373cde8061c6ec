"""A socket's bounded send queue. A consumer too slow to keep up is dropped, not buffered forever.

No task and no queue exist while nothing waits to be sent, so an idle socket costs no more than
its buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from confide.realtime.wire import SLOW_CONSUMER


class Outbox:
    __slots__ = ("_close", "_closed", "_limit", "_queue", "_send", "_task")

    def __init__(
        self, send: Callable[[str], Awaitable[None]], close: Callable[[int], Coroutine[Any, Any, None]], limit: int
    ) -> None:
        self._send = send
        self._close = close
        self._limit = limit
        self._queue: deque[str] | None = None  # exists only while frames wait (an empty deque is ~600 B)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def put(self, text: str) -> None:
        if self._closed:
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        elif len(queue) >= self._limit:
            self._closed = True
            self._queue = None
            asyncio.get_running_loop().create_task(self._close(SLOW_CONSUMER))
            return
        queue.append(text)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while (queue := self._queue) and not self._closed:
                await self._send(queue.popleft())
        except Exception:
            self._closed = True
        finally:
            self._task = None
            self._queue = None  # nothing is left to send, or nothing will be sent

    async def flush(self) -> None:
        task = self._task
        if task is not None:
            with contextlib.suppress(Exception):
                await task

    async def close(self, code: int) -> None:
        """Send what is queued, then close the socket with ``code`` (nothing is sent after)."""
        await self.flush()
        if not self._closed:
            self._closed = True
            self._queue = None
            await self._close(code)

    def shutdown(self) -> None:
        self._closed = True
        self._queue = None
        if self._task is not None:
            self._task.cancel()
