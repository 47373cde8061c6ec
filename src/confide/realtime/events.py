"""Every real-time event and every topic, in one module (ADR 0017).

A topic names who listens: ``conv:{id}`` (everyone in a conversation: its visitor's sockets, the
consoles of its operator), ``op:{id}`` (an operator's consoles), ``dept:{id}`` (the consoles of a
department's operators, and the visitors waiting in its queue), ``ws:{id}`` (a workspace).
Topic strings are built here and nowhere else.

An event is a frozen dataclass. Each knows its topic (``topic``), what crosses the broker
(``payload()``, a JSON-able dict; ``parse(topic, payload)`` turns it back into the event on every
node) and the frame the clients get (``wire()``: the server frames of docs/protocol.md, exactly).
The two differ only where an event carries something for the server alone (``VisitorStatus``'s
place in its queue). The events of one topic family form a union (``ConversationEvent``,
``OperatorEvent``, ``DepartmentEvent``, ``WorkspaceEvent``, ``NodeEvent``) told apart by ``type`` within the family:
``status`` and ``chat`` mean different things on a conversation and on an operator topic.

This module depends on ``core`` only, so the domain services (which sit below ``realtime`` in the
layers) may import it to publish their events: it is its own layer, below them
(``pyproject.toml``, docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from confide.core.db import UnitOfWork
from confide.core.runtime import Runtime

View = Mapping[str, Any]  # a service's view (conversation, message), sent as it is
Party = Literal["visitor", "operator"]

CONVERSATION, OPERATOR, DEPARTMENT, WORKSPACE, NODES = "conv:", "op:", "dept:", "ws:", "nodes:"


# ---------------------------------------------------------------- topics
def conversation_topic(conversation_id: str) -> str:
    return CONVERSATION + conversation_id


def operator_topic(operator_id: str) -> str:
    return OPERATOR + operator_id


def department_topic(department_id: str) -> str:
    return DEPARTMENT + department_id


def workspace_topic(workspace_id: str) -> str:
    return WORKSPACE + workspace_id


def keys_topic() -> str:
    """Every node listens here (``realtime.key_eviction``): data keys destroyed by an erasure."""
    return NODES + "keys"


# ---------------------------------------------------------------- conversation events
@dataclass(frozen=True, slots=True)
class MessageStored:
    """A committed message, to everyone in the conversation (the sender too)."""

    TYPE: ClassVar[str] = "message"
    conversation_id: str
    message: View

    @property
    def topic(self) -> str:
        return conversation_topic(self.conversation_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "message", "conversation_id": self.conversation_id, "message": self.message}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> MessageStored:
        return cls(subject, p["message"])


@dataclass(frozen=True, slots=True)
class Typing:
    TYPE: ClassVar[str] = "typing"
    conversation_id: str
    sender: Party
    on: bool

    @property
    def topic(self) -> str:
        return conversation_topic(self.conversation_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "typing", "conversation_id": self.conversation_id, "from": self.sender, "on": self.on}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> Typing:
        return cls(subject, _party(p["from"]), bool(p["on"]))


@dataclass(frozen=True, slots=True)
class ReadUpTo:
    """``reader`` has seen everything up to ``seq``."""

    TYPE: ClassVar[str] = "read"
    conversation_id: str
    reader: Party
    seq: int

    @property
    def topic(self) -> str:
        return conversation_topic(self.conversation_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "read", "conversation_id": self.conversation_id, "from": self.reader, "seq": self.seq}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> ReadUpTo:
        return cls(subject, _party(p["from"]), int(p["seq"]))


def queue_rank(created_at: datetime) -> str:
    """A waiting chat's place key: its creation time in UTC, fixed width, so strings sort as times do."""
    return created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class QueueSpot:
    """Where a waiting chat stands: its department's queue, ordered by ``since`` (``queue_rank``
    of the chat's creation time)."""

    department_id: str
    since: str


@dataclass(frozen=True, slots=True)
class VisitorStatus:
    """The visitor's view of the conversation changed (status, operator, queue position,
    unanswered). ``queue`` (server only, not on the wire) lets the visitor's socket follow its
    place in the queue without asking the database (``QueueMoved``)."""

    TYPE: ClassVar[str] = "status"
    conversation_id: str
    conversation: View
    queue: QueueSpot | None = None

    @property
    def topic(self) -> str:
        return conversation_topic(self.conversation_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "status", "conversation_id": self.conversation_id, "conversation": self.conversation}

    def payload(self) -> dict[str, Any]:
        out = self.wire()
        if self.queue is not None:
            out["queue"] = {"department_id": self.queue.department_id, "since": self.queue.since}
        return out

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> VisitorStatus:
        q = p.get("queue")
        return cls(subject, p["conversation"], QueueSpot(str(q["department_id"]), str(q["since"])) if q else None)


@dataclass(frozen=True, slots=True)
class ChatChanged:
    """The operators' view of a conversation changed (to the consoles that hold it)."""

    TYPE: ClassVar[str] = "chat"
    conversation_id: str
    conversation: View

    @property
    def topic(self) -> str:
        return conversation_topic(self.conversation_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "chat", "conversation_id": self.conversation_id, "conversation": self.conversation}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> ChatChanged:
        return cls(subject, p["conversation"])


@dataclass(frozen=True, slots=True)
class ConversationErased:
    """The conversation's visitor was erased (erasure/): the widget's sockets get an ``erased``
    error and are closed (``ERASED``, 4410); consoles drop the chat."""

    TYPE: ClassVar[str] = "erased"
    conversation_id: str

    @property
    def topic(self) -> str:
        return conversation_topic(self.conversation_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "erased", "conversation_id": self.conversation_id}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> ConversationErased:
        return cls(subject)


ConversationEvent = MessageStored | Typing | ReadUpTo | VisitorStatus | ChatChanged | ConversationErased


# ---------------------------------------------------------------- operator events
@dataclass(frozen=True, slots=True)
class Offer:
    """Routing offers this operator a chat until ``expires_at``."""

    TYPE: ClassVar[str] = "offer"
    operator_id: str
    conversation: View
    expires_at: str | None

    @property
    def topic(self) -> str:
        return operator_topic(self.operator_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "offer", "conversation": self.conversation, "expires_at": self.expires_at}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> Offer:
        return cls(subject, p["conversation"], p.get("expires_at"))


@dataclass(frozen=True, slots=True)
class OfferWithdrawn:
    TYPE: ClassVar[str] = "offer_withdrawn"
    operator_id: str
    conversation_id: str

    @property
    def topic(self) -> str:
        return operator_topic(self.operator_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "offer_withdrawn", "conversation_id": self.conversation_id}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> OfferWithdrawn:
        return cls(subject, str(p["conversation_id"]))


@dataclass(frozen=True, slots=True)
class ChatAssigned:
    """A chat became this operator's (accepted, transferred to them): their consoles watch it."""

    TYPE: ClassVar[str] = "chat"
    operator_id: str
    conversation: View

    @property
    def topic(self) -> str:
        return operator_topic(self.operator_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "chat", "conversation": self.conversation}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> ChatAssigned:
        return cls(subject, p["conversation"])


@dataclass(frozen=True, slots=True)
class ChatRemoved:
    """The chat no longer belongs to this operator (``reason``: ``transferred``)."""

    TYPE: ClassVar[str] = "chat_removed"
    operator_id: str
    conversation_id: str
    reason: str

    @property
    def topic(self) -> str:
        return operator_topic(self.operator_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "chat_removed", "conversation_id": self.conversation_id, "reason": self.reason}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> ChatRemoved:
        return cls(subject, str(p["conversation_id"]), str(p["reason"]))


@dataclass(frozen=True, slots=True)
class OperatorStatus:
    """The operator's chosen status changed (also from another tab)."""

    TYPE: ClassVar[str] = "status"
    operator_id: str
    status: str

    @property
    def topic(self) -> str:
        return operator_topic(self.operator_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "status", "status": self.status}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> OperatorStatus:
        return cls(subject, str(p["status"]))


@dataclass(frozen=True, slots=True)
class Revoke:
    """Close the operator's consoles: all of them, or those of one session (a log-out). Server only."""

    TYPE: ClassVar[str] = "revoke"
    operator_id: str
    session_id: str | None = None

    @property
    def topic(self) -> str:
        return operator_topic(self.operator_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "revoke"} if self.session_id is None else {"type": "revoke", "session_id": self.session_id}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> Revoke:
        session_id = p.get("session_id")
        return cls(subject, None if session_id is None else str(session_id))


@dataclass(frozen=True, slots=True)
class Refresh:
    """Role or departments changed: the consoles reload who this operator is. Server only."""

    TYPE: ClassVar[str] = "refresh"
    operator_id: str

    @property
    def topic(self) -> str:
        return operator_topic(self.operator_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "refresh"}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> Refresh:
        return cls(subject)


OperatorEvent = Offer | OfferWithdrawn | ChatAssigned | ChatRemoved | OperatorStatus | Revoke | Refresh


# ---------------------------------------------------------------- department events
@dataclass(frozen=True, slots=True)
class QueueChanged:
    """The department's queue changed (a chat joined, was offered, left): consoles reload it. Server only."""

    TYPE: ClassVar[str] = "queue_changed"
    department_id: str

    @property
    def topic(self) -> str:
        return department_topic(self.department_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "queue_changed"}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> QueueChanged:
        return cls(subject)


@dataclass(frozen=True, slots=True)
class QueueMoved:
    """A waiting chat that joined the queue at ``since`` left it (accepted, transferred, closed):
    every chat that joined after it moved up one place. One event for the whole queue; each waiting
    visitor's socket works out its own new place (``QueueSpot``). Consoles reload the queue. Server only."""

    TYPE: ClassVar[str] = "queue_moved"
    department_id: str
    since: str

    @property
    def topic(self) -> str:
        return department_topic(self.department_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "queue_moved", "since": self.since}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> QueueMoved:
        return cls(subject, str(p["since"]))


DepartmentEvent = QueueChanged | QueueMoved


# ---------------------------------------------------------------- workspace events
@dataclass(frozen=True, slots=True)
class OfflineRequestCreated:
    TYPE: ClassVar[str] = "offline_request"
    workspace_id: str
    request_id: str

    @property
    def topic(self) -> str:
        return workspace_topic(self.workspace_id)

    def wire(self) -> dict[str, Any]:
        return {"type": "offline_request", "id": self.request_id}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> OfflineRequestCreated:
        return cls(subject, str(p["id"]))


WorkspaceEvent = OfflineRequestCreated


# ---------------------------------------------------------------- node events
@dataclass(frozen=True, slots=True)
class KeysDestroyed:
    """Data keys destroyed by an erasure (crypto-shredding), or replaced by a rectification's key
    rotation (ADR 0032): every node forgets them from its key cache at once
    (``realtime.key_eviction``). Ids only. Server only."""

    TYPE: ClassVar[str] = "keys_destroyed"
    subject_ids: tuple[str, ...]

    @property
    def topic(self) -> str:
        return keys_topic()

    def wire(self) -> dict[str, Any]:
        return {"type": "keys_destroyed", "subject_ids": list(self.subject_ids)}

    payload = wire

    @classmethod
    def parse(cls, subject: str, p: Mapping[str, Any]) -> KeysDestroyed:
        ids = p["subject_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError("subject_ids must be a list of ids")
        return cls(tuple(ids))


NodeEvent = KeysDestroyed
Event = ConversationEvent | OperatorEvent | DepartmentEvent | WorkspaceEvent | NodeEvent


# ---------------------------------------------------------------- publish and parse
def publish(rt: Runtime, uow: UnitOfWork, event: Event) -> None:
    """Fan the event out on its topic once the unit of work has committed (dropped on rollback)."""
    rt.publish(uow, event.topic, event.payload())


_Parser = Callable[[str, Mapping[str, Any]], Event]


def _family(*kinds: type[Any]) -> dict[str, _Parser]:
    return {kind.TYPE: kind.parse for kind in kinds}


_FAMILIES: dict[str, dict[str, _Parser]] = {
    CONVERSATION: _family(MessageStored, Typing, ReadUpTo, VisitorStatus, ChatChanged, ConversationErased),
    OPERATOR: _family(Offer, OfferWithdrawn, ChatAssigned, ChatRemoved, OperatorStatus, Revoke, Refresh),
    DEPARTMENT: _family(QueueChanged, QueueMoved),
    WORKSPACE: _family(OfflineRequestCreated),
    NODES: _family(KeysDestroyed),
}


class UnknownEvent(ValueError):
    """A payload that is no event of its topic (another version's node, a stray publisher)."""


def parse(topic: str, payload: Mapping[str, Any]) -> Event:
    """The event a broker payload on ``topic`` stands for; ``UnknownEvent`` otherwise."""
    prefix, sep, subject = topic.partition(":")
    family = _FAMILIES.get(prefix + sep)
    parser = family.get(payload.get("type")) if family is not None else None  # type: ignore[arg-type]
    if parser is None or not subject:
        raise UnknownEvent(f"no event {payload.get('type')!r} on {prefix!r} topics")
    try:
        return parser(subject, payload)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnknownEvent(f"malformed {payload.get('type')!r} event") from exc


def _party(value: object) -> Party:
    if value == "visitor":
        return "visitor"
    if value == "operator":
        return "operator"
    raise ValueError("from must be visitor or operator")
