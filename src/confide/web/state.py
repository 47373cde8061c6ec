"""What the web layer shares per process: the runtime, the local hub and the message writer."""

from __future__ import annotations

from dataclasses import dataclass

from confide.core.runtime import Runtime
from confide.realtime.hub import Hub
from confide.realtime.presence import Presence
from confide.realtime.writer import MessageWriter


@dataclass
class State:
    rt: Runtime
    hub: Hub
    writer: MessageWriter
    presence: Presence
