"""What the web layer shares per process: the runtime, the local hub and the message writer."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from confide.core.runtime import Runtime
from confide.realtime.hub import Hub
from confide.realtime.writer import MessageWriter


@dataclass
class State:
    rt: Runtime
    hub: Hub
    writer: MessageWriter
    operator_sockets: Counter[str] = field(default_factory=Counter)
