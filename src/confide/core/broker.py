"""Fan-out between nodes. ``MemoryBroker`` for one process (the embedded default), ``RedisBroker``
when several nodes share Redis. Payloads are JSON-able dicts; topics are opaque strings.

A node subscribes to a topic while at least one of its local sockets needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)

Handler = Callable[[str, dict[str, Any]], Awaitable[None] | None]


class Broker(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, topic: str, payload: dict[str, Any]) -> None: ...
    async def subscribe(self, topic: str) -> None: ...
    async def unsubscribe(self, topic: str) -> None: ...
    def set_handler(self, handler: Handler) -> None: ...


class MemoryBroker:
    """In-process: publish calls the handler directly for topics this node listens to."""

    def __init__(self) -> None:
        self._topics: set[str] = set()
        self._handler: Handler | None = None

    def set_handler(self, handler: Handler) -> None:
        self._handler = handler

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._topics.clear()

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        if topic in self._topics and self._handler is not None:
            result = self._handler(topic, payload)
            if result is not None:
                await result

    async def subscribe(self, topic: str) -> None:
        self._topics.add(topic)

    async def unsubscribe(self, topic: str) -> None:
        self._topics.discard(topic)


class RedisBroker:
    """Redis pub/sub. One connection publishes, one listens; subscriptions follow local need."""

    def __init__(self, url: str, *, prefix: str = "confide:") -> None:
        self._url = url
        self._prefix = prefix
        self._handler: Handler | None = None
        self._task: asyncio.Task[None] | None = None
        self._redis: Any = None
        self._pubsub: Any = None
        self._ready = asyncio.Event()

    def set_handler(self, handler: Handler) -> None:
        self._handler = handler

    async def start(self) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(self._url)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        # A pubsub connection needs a subscription before listen() makes sense; keep a private one.
        await self._pubsub.subscribe(self._prefix + "__node__")
        self._task = asyncio.create_task(self._listen(), name="redis-broker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        await self._redis.publish(self._prefix + topic, json.dumps(payload, separators=(",", ":")))

    async def subscribe(self, topic: str) -> None:
        await self._pubsub.subscribe(self._prefix + topic)

    async def unsubscribe(self, topic: str) -> None:
        await self._pubsub.unsubscribe(self._prefix + topic)

    async def _listen(self) -> None:
        cut = len(self._prefix)
        while True:
            try:
                async for item in self._pubsub.listen():
                    if item.get("type") != "message" or self._handler is None:
                        continue
                    channel = item["channel"]
                    topic = (channel.decode() if isinstance(channel, bytes) else channel)[cut:]
                    try:
                        result = self._handler(topic, json.loads(item["data"]))
                        if result is not None:
                            await result
                    except Exception:
                        log.exception("broker_handler_failed", topic=topic)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis_listen_failed")
                await asyncio.sleep(0.5)


def create_broker(redis_url: str) -> Broker:
    return RedisBroker(redis_url) if redis_url else MemoryBroker()
