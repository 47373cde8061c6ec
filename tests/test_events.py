"""The typed events (realtime/events.py): every event survives the broker (payload -> parse) and
its client frame is the documented one; unknown or malformed payloads are refused, not guessed;
the hub hands one event to many listeners with one encoding; realtime/ stays layered."""

from __future__ import annotations

import json
import pkgutil
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import confide.realtime
from confide.core.broker import MemoryBroker
from confide.realtime import events
from confide.realtime.events import (
    ChatAssigned,
    ChatChanged,
    ChatRemoved,
    MessageStored,
    Offer,
    OfferWithdrawn,
    OfflineRequestCreated,
    OperatorStatus,
    QueueChanged,
    QueueMoved,
    QueueSpot,
    ReadUpTo,
    Refresh,
    Revoke,
    Typing,
    VisitorStatus,
)
from confide.realtime.hub import Hub

VIEW = {"id": "c1", "status": "queued", "queue_position": 2}
MESSAGE = {"id": "m1", "seq": 3, "client_id": "x", "sender": "visitor", "sender_name": None, "text": "Hi",
           "created_at": "2026-12-01T10:00:00Z"}

# (event, its topic, the exact client frame of docs/protocol.md)
CASES: list[tuple[events.Event, str, dict[str, Any]]] = [
    (MessageStored("c1", MESSAGE), "conv:c1", {"type": "message", "conversation_id": "c1", "message": MESSAGE}),
    (Typing("c1", "visitor", True), "conv:c1", {"type": "typing", "conversation_id": "c1", "from": "visitor",
                                                "on": True}),
    (ReadUpTo("c1", "operator", 4), "conv:c1", {"type": "read", "conversation_id": "c1", "from": "operator",
                                                "seq": 4}),
    (VisitorStatus("c1", VIEW, QueueSpot("d1", "2026-12-01T10:00:00.000000Z")), "conv:c1",
     {"type": "status", "conversation_id": "c1", "conversation": VIEW}),
    (VisitorStatus("c1", VIEW), "conv:c1", {"type": "status", "conversation_id": "c1", "conversation": VIEW}),
    (ChatChanged("c1", VIEW), "conv:c1", {"type": "chat", "conversation_id": "c1", "conversation": VIEW}),
    (Offer("o1", VIEW, "2026-12-01T10:00:30Z"), "op:o1", {"type": "offer", "conversation": VIEW,
                                                          "expires_at": "2026-12-01T10:00:30Z"}),
    (OfferWithdrawn("o1", "c1"), "op:o1", {"type": "offer_withdrawn", "conversation_id": "c1"}),
    (ChatAssigned("o1", VIEW), "op:o1", {"type": "chat", "conversation": VIEW}),
    (ChatRemoved("o1", "c1", "transferred"), "op:o1", {"type": "chat_removed", "conversation_id": "c1",
                                                       "reason": "transferred"}),
    (OperatorStatus("o1", "away"), "op:o1", {"type": "status", "status": "away"}),
    (Revoke("o1"), "op:o1", {"type": "revoke"}),
    (Revoke("o1", "s1"), "op:o1", {"type": "revoke", "session_id": "s1"}),
    (Refresh("o1"), "op:o1", {"type": "refresh"}),
    (QueueChanged("d1"), "dept:d1", {"type": "queue_changed"}),
    (QueueMoved("d1", "2026-12-01T10:00:00.000000Z"), "dept:d1", {"type": "queue_moved",
                                                                  "since": "2026-12-01T10:00:00.000000Z"}),
    (OfflineRequestCreated("w1", "r1"), "ws:w1", {"type": "offline_request", "id": "r1"}),
    (events.ConversationErased("c1"), "conv:c1", {"type": "erased", "conversation_id": "c1"}),
    (events.KeysDestroyed(("v1", "v2")), "nodes:keys", {"type": "keys_destroyed", "subject_ids": ["v1", "v2"]}),
]


@pytest.mark.parametrize(("event", "topic", "frame"), CASES, ids=lambda v: type(v).__name__ if not isinstance(
    v, str | dict) else "")
def test_every_event_round_trips_through_the_broker_and_keeps_its_frame(
        event: events.Event, topic: str, frame: dict[str, Any]) -> None:
    assert event.topic == topic
    assert event.wire() == frame
    through_redis = json.loads(json.dumps(event.payload()))  # what another node receives
    assert events.parse(topic, through_redis) == event


def test_the_queue_spot_crosses_the_broker_but_never_reaches_the_client() -> None:
    event = VisitorStatus("c1", VIEW, QueueSpot("d1", "2026-12-01T10:00:00.000000Z"))
    assert event.payload()["queue"] == {"department_id": "d1", "since": "2026-12-01T10:00:00.000000Z"}
    assert "queue" not in event.wire()


@pytest.mark.parametrize(("topic", "payload"), [
    ("conv:c1", {"type": "offer", "conversation": VIEW}),  # an operator event on a conversation topic
    ("op:o1", {"type": "message", "message": MESSAGE}),
    ("conv:c1", {"type": "nonsense"}),
    ("conv:c1", {}),
    ("conv:c1", {"type": "typing", "from": "someone", "on": True}),  # not a party
    ("conv:c1", {"type": "read", "from": "visitor", "seq": "many"}),
    ("conv:c1", {"type": "message"}),  # no message
    ("elsewhere:x", {"type": "message", "message": MESSAGE}),
    ("conv:", {"type": "message", "message": MESSAGE}),  # no id
    ("dept:d1", {"type": "queue_moved"}),
    ("nodes:keys", {"type": "keys_destroyed", "subject_ids": "v1"}),  # not a list
])
def test_a_payload_that_is_no_event_of_its_topic_is_refused(topic: str, payload: dict[str, Any]) -> None:
    with pytest.raises(events.UnknownEvent):
        events.parse(topic, payload)


def test_status_and_chat_mean_different_events_on_conversation_and_operator_topics() -> None:
    assert isinstance(events.parse("conv:c1", {"type": "status", "conversation": VIEW}), VisitorStatus)
    assert isinstance(events.parse("op:o1", {"type": "status", "status": "online"}), OperatorStatus)
    assert isinstance(events.parse("conv:c1", {"type": "chat", "conversation": VIEW}), ChatChanged)
    assert isinstance(events.parse("op:o1", {"type": "chat", "conversation": VIEW}), ChatAssigned)


def test_queue_ranks_sort_as_the_times_do() -> None:
    base = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)  # a whole second: isoformat() would drop ".000000"
    times = [base + timedelta(microseconds=n) for n in (0, 1, 999_999, 1_000_000)]
    ranks = [events.queue_rank(t) for t in times]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)
    assert events.queue_rank(base.astimezone(datetime.now().astimezone().tzinfo)) == ranks[0]


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[events.Event, str]] = []

    def deliver(self, event: events.Event, text: str) -> None:
        self.got.append((event, text))


async def test_the_hub_parses_once_and_hands_the_same_text_to_every_listener() -> None:
    broker = MemoryBroker()
    hub = Hub(broker)
    one, two, other = Recorder(), Recorder(), Recorder()
    await hub.subscribe(one, "conv:c1")
    await hub.subscribe(two, "conv:c1")
    await hub.subscribe(other, "conv:c2")
    assert hub.listeners("conv:c1") == 2
    event = MessageStored("c1", MESSAGE)
    await broker.publish(event.topic, event.payload())
    assert one.got == two.got == [(event, json.dumps(event.wire(), separators=(",", ":")))]
    assert one.got[0][1] is two.got[0][1]  # encoded once
    assert other.got == []
    # A stray payload is dropped (logged), not delivered half-understood.
    await broker.publish("conv:c1", {"type": "nonsense"})
    assert len(one.got) == 1
    # Leaving: the last local listener takes the broker subscription with it.
    await hub.unsubscribe(two, "conv:c1")
    assert hub.listeners("conv:c1") == 1
    await hub.unsubscribe(one, "conv:c1")
    await hub.unsubscribe(one, "conv:c1")  # twice: harmless
    assert hub.listeners("conv:c1") == 0
    await broker.publish(event.topic, event.payload())
    assert len(one.got) == 1


def test_every_module_of_realtime_is_in_the_layers_contract() -> None:
    """``realtime.events`` is a layer of its own below the domains, so the rest of realtime/ is
    named module by module in pyproject.toml: a new module must be added there."""
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    layers = next(c for c in pyproject["tool"]["importlinter"]["contracts"] if c["type"] == "layers")["layers"]
    named = {part.strip() for layer in layers for part in layer.replace("|", ":").split(":")}
    modules = {f"realtime.{m.name}" for m in pkgutil.iter_modules(confide.realtime.__path__)}
    assert modules <= named, sorted(modules - named)


class Sent:
    def __init__(self) -> None:
        self.frames: list[str] = []

    def put(self, text: str) -> None:
        self.frames.append(text)


async def test_a_waiting_visitor_socket_follows_its_queue_and_re_reads_only_when_someone_ahead_left() -> None:
    from confide.auth.actors import VisitorActor
    from confide.realtime.connections import Node, VisitorConnection

    hub = Hub(MemoryBroker())
    node = Node(rt=None, hub=hub, writer=None, limits=None)  # type: ignore[arg-type]  # only the hub is used
    sent = Sent()
    conn = VisitorConnection(node, VisitorActor("v1", "s1", "w1"), "c1", sent)  # type: ignore[arg-type]
    mine = QueueSpot("d1", "2026-12-01T10:00:05.000000Z")
    await conn.listen(mine)
    assert (hub.listeners("conv:c1"), hub.listeners("dept:d1")) == (1, 1)

    # A chat that joined after mine left: nothing moved for me, nothing is read.
    conn.deliver(QueueMoved("d1", "2026-12-01T10:00:09.000000Z"), "")
    assert conn._refresh is None
    # Another department's queue: not mine.
    conn.deliver(QueueMoved("d2", "2026-12-01T10:00:01.000000Z"), "")
    assert conn._refresh is None
    # One ahead of me left, three times in a burst: one re-read is due.
    for _ in range(3):
        conn.deliver(QueueMoved("d1", "2026-12-01T10:00:01.000000Z"), "")
    task = conn._refresh
    assert task is not None
    task.cancel()
    conn._refresh = None

    # Transferred to another department's queue: the socket listens there now, and only there.
    moved = VisitorStatus("c1", VIEW, QueueSpot("d2", mine.since))
    conn.deliver(moved, "status-frame")
    assert sent.frames == ["status-frame"]  # the frame goes out as the hub encoded it
    assert (hub.listeners("dept:d1"), hub.listeners("dept:d2")) == (0, 1)
    # Accepted: no queue to follow any more.
    conn.deliver(VisitorStatus("c1", {**VIEW, "status": "active"}), "active-frame")
    assert hub.listeners("dept:d2") == 0
    assert conn.queue is None
    # The operator's typing reaches the visitor, the visitor's own does not come back.
    conn.deliver(Typing("c1", "operator", True), "t-op")
    conn.deliver(Typing("c1", "visitor", True), "t-me")
    assert sent.frames[-1] == "t-op"
    await conn.shutdown()
    assert hub.listeners("conv:c1") == 0


def test_events_are_published_only_through_the_events_module() -> None:
    """``rt.publish`` with a hand-made dict bypasses the typed events (and their one wire form)."""
    src = Path(__file__).resolve().parent.parent / "src" / "confide"
    offenders = [
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if path.name != "runtime.py" and path != src / "realtime" / "events.py" and "rt.publish(" in path.read_text()
    ]
    assert offenders == []
