"""Every node forgets destroyed data keys at once (crypto-shredding, ADR 0028).

An erasure destroys the person's data keys in the database and publishes ``KeysDestroyed`` after
its commit on the node topic ``nodes:keys``; each node listens there from start-up (the app's
lifespan calls ``follow``) and drops those keys from its ``KeyRing`` cache, so a key unwrapped
earlier on another node cannot decrypt a copy of the ciphertext any more. A node that missed the
event (a broker outage) still holds only keys of rows that are gone; the cache is bounded.
A rectification's key rotation (ADR 0032) publishes the same event for the replaced keys; writers
never use a replaced key anyway (``KeyRing.for_write`` compares the cached key with the row).
"""

from __future__ import annotations

from confide.core.runtime import Runtime
from confide.realtime import events
from confide.realtime.hub import Hub


class KeyEviction:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.forgotten = 0

    def deliver(self, event: events.Event, text: str) -> None:
        if isinstance(event, events.KeysDestroyed):
            for subject_id in event.subject_ids:
                self.rt.keyring.forget(subject_id)
            self.forgotten += len(event.subject_ids)


async def follow(rt: Runtime, hub: Hub) -> KeyEviction:
    """Listen for destroyed keys on this node (once per node)."""
    listener = KeyEviction(rt)
    await hub.subscribe(listener, events.keys_topic())
    return listener
