"""What the web layer shares per process: the runtime, the local hub, the message writer, the limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from confide.core.runtime import Runtime
from confide.realtime.connections import Node
from confide.realtime.hub import Hub
from confide.realtime.limits import Limits
from confide.realtime.presence import Presence
from confide.realtime.writer import MessageWriter


@dataclass
class State:
    rt: Runtime
    hub: Hub
    writer: MessageWriter
    presence: Presence
    limits: Limits = field(init=False)
    node: Node = field(init=False)  # what every connection shares: runtime, hub, writer, limits

    def __post_init__(self) -> None:
        self.limits = Limits(self.rt.settings)
        self.node = Node(self.rt, self.hub, self.writer, self.limits)
