"""The limiter pieces (realtime/limits.py) and the documented defaults (docs/protocol.md, "Limits")."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from confide.config import Settings
from confide.core import clock
from confide.realtime.connections import MAX_IN_FLIGHT
from confide.realtime.limits import SWEEP_EVERY, RateLimiter, SocketCounter, WindowCounter

ROOT = Path(__file__).resolve().parent.parent


def test_rate_limiter_is_per_key_and_forgets_refilled_buckets() -> None:
    limiter = RateLimiter(rate=0.0, burst=3)  # no refill: exactly three each
    assert [limiter.take("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.take("b")
    refilling = RateLimiter(rate=1e9, burst=2)  # refills at once
    for n in range(SWEEP_EVERY + 1):
        refilling.take(f"k{n}")
    assert len(refilling) < SWEEP_EVERY  # full buckets were swept
    empty = RateLimiter(rate=0.0, burst=1)
    for n in range(SWEEP_EVERY + 1):
        empty.take(f"k{n}")
    assert len(empty) == SWEEP_EVERY + 1  # spent buckets are kept: reconnecting does not reset them


def test_socket_counter() -> None:
    counter = SocketCounter(limit=2)
    assert [counter.acquire("v"), counter.acquire("v"), counter.acquire("v")] == [True, True, False]
    assert counter.acquire("w")
    counter.release("v")
    assert counter.count("v") == 1
    assert counter.acquire("v")
    for _ in range(3):
        counter.release("v")
    assert counter.count("v") == 0
    assert SocketCounter(limit=0).acquire("any")  # 0: no limit


def test_window_counter_slides_with_the_clock() -> None:
    counter = WindowCounter(limit=2, window_s=3600)
    assert counter.allowed("a")
    counter.record("a")
    clock.advance(timedelta(minutes=30))
    counter.record("a")
    assert not counter.allowed("a")
    assert counter.allowed("b")
    clock.advance(timedelta(minutes=30, seconds=1))  # the first is an hour old
    assert counter.allowed("a")
    counter.record("a")
    assert not counter.allowed("a")


def test_documented_limits_are_the_enforced_defaults() -> None:
    """docs/protocol.md's "Limits" table names each setting with its default: they agree."""
    table = (ROOT / "docs" / "protocol.md").read_text().split("## Limits", 1)[1].split("\n## ", 1)[0]
    defaults = Settings.model_fields
    expected = {
        "| 10 in any 10 s (burst 10, refill 1/s; `visitor_msg_burst`, `visitor_msg_rate`)": (
            defaults["visitor_msg_burst"].default == 10 and defaults["visitor_msg_rate"].default == 1),
        "30 per 10 s (burst 30, refill 3/s; `visitor_typing_*`)": (
            defaults["visitor_typing_burst"].default == 30 and defaults["visitor_typing_rate"].default == 3),
        "burst 30, then 5/s (`operator_msg_*`)": (
            defaults["operator_msg_burst"].default == 30 and defaults["operator_msg_rate"].default == 5),
        "30 per 10 s (`operator_typing_*`)": (
            defaults["operator_typing_burst"].default == 30 and defaults["operator_typing_rate"].default == 3),
        "| 8 (`max_sockets_per_visitor`)": defaults["max_sockets_per_visitor"].default == 8,
        "| 100 (`max_sockets_per_address`)": defaults["max_sockets_per_address"].default == 100,
        "30 per sliding hour (`conversations_per_address_per_hour`)": (
            defaults["conversations_per_address_per_hour"].default == 30),
        "10 s (`ws_hello_timeout_s`)": defaults["ws_hello_timeout_s"].default == 10,
        "| 64 |": MAX_IN_FLIGHT == 64,
    }
    assert {text: text in table and agrees for text, agrees in expected.items()} == dict.fromkeys(expected, True)
