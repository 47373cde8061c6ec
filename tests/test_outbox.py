"""The bounded send queue of a socket (realtime/outbox.py): order, slow consumers, nothing held when idle."""

from __future__ import annotations

import asyncio

from confide.realtime.outbox import Outbox
from confide.realtime.wire import SLOW_CONSUMER


class Peer:
    """The far end of a socket: records what it is sent, and can stall."""

    def __init__(self) -> None:
        self.got: list[str] = []
        self.closed: list[int] = []
        self.open = asyncio.Event()
        self.open.set()

    async def send(self, text: str) -> None:
        await self.open.wait()
        self.got.append(text)

    async def close(self, code: int) -> None:
        self.closed.append(code)


async def test_frames_go_out_in_order_and_nothing_is_held_when_idle() -> None:
    peer = Peer()
    outbox = Outbox(peer.send, peer.close, limit=4)
    assert (outbox._queue, outbox._task) == (None, None)
    for n in range(3):
        outbox.put(f"f{n}")
    await outbox.flush()
    assert peer.got == ["f0", "f1", "f2"]
    assert (outbox._queue, outbox._task) == (None, None)  # an idle socket keeps no deque and no task
    outbox.put("f3")
    await outbox.flush()
    assert peer.got[-1] == "f3"


async def test_a_consumer_too_slow_is_closed_1013() -> None:
    peer = Peer()
    peer.open.clear()  # the peer stops reading
    outbox = Outbox(peer.send, peer.close, limit=3)
    for n in range(5):
        outbox.put(f"f{n}")
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert peer.closed == [SLOW_CONSUMER]
    peer.open.set()
    await outbox.flush()
    assert len(peer.got) <= 1  # what waited was dropped, not sent after the close
    outbox.put("late")
    await outbox.flush()
    assert "late" not in peer.got
    outbox.shutdown()
