"""A socket's bounded send queue. A consumer too slow to keep up is dropped, not buffered forever.

No task exists while the queue is empty, so an idle socket costs no more than its buffers.
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
        self._queue: deque[str] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def put(self, text: str) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._limit:
            self._closed = True
            self._queue.clear()
            asyncio.get_running_loop().create_task(self._close(SLOW_CONSUMER))
            return
        self._queue.append(text)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue and not self._closed:
                await self._send(self._queue.popleft())
        except Exception:
            self._closed = True
            self._queue.clear()
        finally:
            self._task = None

    async def flush(self) -> None:
        task = self._task
        if task is not None:
            with contextlib.suppress(Exception):
                await task

    def shutdown(self) -> None:
        self._closed = True
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()
