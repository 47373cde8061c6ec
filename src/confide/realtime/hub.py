"""Local connection registry: which sockets of this node listen to which topics.

The node subscribes to a broker topic while at least one local socket needs it. An event is
encoded to JSON once and the same text is handed to every local socket that listens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from confide.core.broker import Broker
from confide.realtime.wire import encode


class Listener(Protocol):
    def deliver(self, topic: str, payload: dict[str, Any], text: str) -> None: ...


class Hub:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._topics: dict[str, set[Listener]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        broker.set_handler(self._on_event)

    async def subscribe(self, listener: Listener, topic: str) -> None:
        members = self._topics.get(topic)
        if members is None:
            members = self._topics[topic] = set()
            members.add(listener)
            await self._broker.subscribe(topic)
        else:
            members.add(listener)

    def subscribe_soon(self, listener: Listener, topic: str) -> None:
        """Join a topic from synchronous code: local delivery starts now, the broker follows."""
        members = self._topics.get(topic)
        if members is None:
            self._topics[topic] = {listener}
            self._spawn(self._broker.subscribe(topic))
        else:
            members.add(listener)

    def unsubscribe_soon(self, listener: Listener, topic: str) -> None:
        members = self._topics.get(topic)
        if members is None:
            return
        members.discard(listener)
        if not members:
            del self._topics[topic]
            self._spawn(self._broker.unsubscribe(topic))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def unsubscribe(self, listener: Listener, topic: str) -> None:
        members = self._topics.get(topic)
        if members is None:
            return
        members.discard(listener)
        if not members:
            del self._topics[topic]
            await self._broker.unsubscribe(topic)

    def _on_event(self, topic: str, payload: dict[str, Any]) -> None:
        members = self._topics.get(topic)
        if not members:
            return
        text = encode(payload)
        for listener in list(members):
            listener.deliver(topic, payload, text)
