"""Local connection registry: which sockets of this node listen to which topics.

The node subscribes to a broker topic while at least one local socket needs it. A broker payload
is parsed into its typed event (``realtime.events``) and its client frame encoded to JSON once;
the same event and text are handed to every local socket that listens.

A topic with one listener (a visitor's conversation, the usual case) holds the listener itself,
not a set of one: an idle visitor socket costs a dictionary entry here, not a set (~200 B).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

import structlog

from confide.core.broker import Broker
from confide.realtime import events
from confide.realtime.wire import encode

log = structlog.get_logger(__name__)


class Listener(Protocol):
    def deliver(self, event: events.Event, text: str) -> None: ...


class Hub:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._topics: dict[str, Listener | set[Listener]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        broker.set_handler(self._on_event)

    def _add(self, listener: Listener, topic: str) -> bool:
        """Add locally; True when the topic is new to this node (the broker must follow)."""
        members = self._topics.get(topic)
        if members is None:
            self._topics[topic] = listener
            return True
        if isinstance(members, set):
            members.add(listener)
        elif members is not listener:
            self._topics[topic] = {members, listener}
        return False

    def _remove(self, listener: Listener, topic: str) -> bool:
        """Remove locally; True when nobody of this node listens any more (the broker must follow)."""
        members = self._topics.get(topic)
        if members is None:
            return False
        if isinstance(members, set):
            members.discard(listener)
            if len(members) == 1:
                self._topics[topic] = next(iter(members))
            elif not members:
                del self._topics[topic]
                return True
            return False
        if members is listener:
            del self._topics[topic]
            return True
        return False

    async def subscribe(self, listener: Listener, topic: str) -> None:
        if self._add(listener, topic):
            await self._broker.subscribe(topic)

    def subscribe_soon(self, listener: Listener, topic: str) -> None:
        """Join a topic from synchronous code: local delivery starts now, the broker follows."""
        if self._add(listener, topic):
            self._spawn(self._broker.subscribe(topic))

    def unsubscribe_soon(self, listener: Listener, topic: str) -> None:
        if self._remove(listener, topic):
            self._spawn(self._broker.unsubscribe(topic))

    async def unsubscribe(self, listener: Listener, topic: str) -> None:
        if self._remove(listener, topic):
            await self._broker.unsubscribe(topic)

    def listeners(self, topic: str) -> int:
        members = self._topics.get(topic)
        return 0 if members is None else len(members) if isinstance(members, set) else 1

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _on_event(self, topic: str, payload: dict[str, Any]) -> None:
        members = self._topics.get(topic)
        if members is None:
            return
        try:
            event = events.parse(topic, payload)
        except events.UnknownEvent:
            log.warning("event_dropped", topic_kind=topic.partition(":")[0], event_type=str(payload.get("type"))[:40])
            return
        text = encode(event.wire())
        if isinstance(members, set):
            for listener in list(members):
                listener.deliver(event, text)
        else:
            members.deliver(event, text)
