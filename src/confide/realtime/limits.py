"""Limits per visitor, per operator and per client address, shared by all their sockets on this node.

- message and typing rates: one token bucket per visitor (or operator), whatever the number of
  its sockets, so a second tab or a reconnect does not double the allowance;
- open sockets per visitor and per client address;
- conversations started per client address in a sliding hour.

Counts live in this process (a node). Buckets are dropped once they are full again (a visitor
who reconnects cannot reset its allowance by doing so), so idle visitors cost nothing here.
Client addresses are held only in memory, only as keys, and are never logged; they are the
addresses after trusted proxies (``web/client_address.py``), so one proxy is not one client.
"""

from __future__ import annotations

import time
from collections import deque

from confide.config import Settings
from confide.core import clock

SWEEP_EVERY = 1024  # new keys between sweeps of buckets that have refilled


class TokenBucket:
    __slots__ = ("_rate", "_stamp", "_tokens", "burst")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def take(self) -> bool:
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def full(self) -> bool:
        self._refill()
        return self._tokens >= self.burst


class RateLimiter:
    """A token bucket per key (burst ``burst``, refilled at ``rate`` per second)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}
        self._created = 0

    def take(self, key: str) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            self._created += 1
            if self._created % SWEEP_EVERY == 0:
                self.sweep()
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
        return bucket.take()

    def sweep(self) -> None:
        """Forget the buckets that are full again: they would allow exactly what a new one does."""
        for key in [k for k, bucket in self._buckets.items() if bucket.full()]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


class SocketCounter:
    """Open sockets per key, at most ``limit`` at once (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        count = self._open.get(key, 0)
        if self.limit and count >= self.limit:
            return False
        self._open[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)

    def count(self, key: str) -> int:
        return self._open.get(key, 0)


class WindowCounter:
    """Events per key in a sliding window of ``window_s`` seconds (time from ``core/clock``)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}
        self._added = 0

    def _recent(self, key: str, now: float) -> deque[float] | None:
        hits = self._hits.get(key)
        if hits is not None:
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
        return hits

    def allowed(self, key: str) -> bool:
        """Would one more event be within the limit (0: no limit)?"""
        if not self.limit:
            return True
        hits = self._recent(key, clock.now().timestamp())
        return hits is None or len(hits) < self.limit

    def record(self, key: str) -> None:
        now = clock.now().timestamp()
        hits = self._recent(key, now)
        if hits is None:
            hits = self._hits[key] = deque()
        hits.append(now)
        self._added += 1
        if self._added % SWEEP_EVERY == 0:
            for stale in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window_s]:
                del self._hits[stale]


class Limits:
    """Every limit of this node, built once from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.visitor_messages = RateLimiter(settings.visitor_msg_rate, settings.visitor_msg_burst)
        self.visitor_typing = RateLimiter(settings.visitor_typing_rate, settings.visitor_typing_burst)
        self.operator_messages = RateLimiter(settings.operator_msg_rate, settings.operator_msg_burst)
        self.operator_typing = RateLimiter(settings.operator_typing_rate, settings.operator_typing_burst)
        self.visitor_sockets = SocketCounter(settings.max_sockets_per_visitor)
        self.address_sockets = SocketCounter(settings.max_sockets_per_address)
        self.visitor_activity = RateLimiter(settings.visitor_activity_rate, settings.visitor_activity_burst)
        self.conversations = WindowCounter(settings.conversations_per_address_per_hour, 3600.0)
        # data-subject requests from the widget and the public page (ADR 0029)
        self.privacy_requests = WindowCounter(settings.privacy_requests_per_address_per_hour, 3600.0)
