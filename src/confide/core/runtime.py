"""The process-wide services every unit of work needs, built once from Settings."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from confide.config import Settings
from confide.core import crypto
from confide.core.broker import Broker, create_broker
from confide.core.db import Database, UnitOfWork
from confide.core.keys import KeyRing


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keyring: KeyRing
    bidx: crypto.BlindIndex
    passwords: crypto.Passwords
    visitor_tokens: crypto.Signer
    consent_links: crypto.Signer  # signed single-purpose withdrawal links in marketing e-mail (consent/)
    filter_tokens: crypto.Sealer  # the dashboard's personal search filters, sealed into its URLs
    broker: Broker
    audit_key: bytes  # the audit log's chain key (audit/), derived from the master key
    factor_box: crypto.FactorBox  # two-factor secrets at rest (two_factor/), keys derived from the master key
    journal_key: bytes  # the erasure journal's chain key (erasure/journal.py, ADR 0033)
    # Background tasks owned by the runtime (writer, scheduler); cancelled on close.
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def publish(self, uow: UnitOfWork, topic: str, payload: dict[str, Any]) -> None:
        """Fan an event out, but only once the unit of work has committed."""
        broker = self.broker

        async def _send() -> None:
            await broker.publish(topic, payload)

        uow.after_commit(_send)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                await task
        self.tasks.clear()
        await self.broker.stop()
        await self.db.dispose()


def build_runtime(settings: Settings, *, broker: Broker | None = None) -> Runtime:
    master = crypto.load_or_create_master_key(
        settings.master_key.get_secret_value() if settings.master_key else None, settings.data_dir
    )
    secret = crypto.derive_secret(master, settings.secret_key.get_secret_value() if settings.secret_key else None)
    db = Database(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    audit_key = crypto.derive_audit_key(master)
    db.sessions.configure(info={"confide.audit_key": audit_key})  # audit.record without a Runtime
    return Runtime(
        settings=settings,
        db=db,
        keyring=KeyRing(crypto.KeyWrapper(master)),
        bidx=crypto.BlindIndex(master),
        passwords=crypto.Passwords(settings.argon2_time_cost, settings.argon2_memory_kib),
        visitor_tokens=crypto.Signer(secret, "visitor-token"),
        consent_links=crypto.Signer(secret, "consent-withdrawal-link"),
        filter_tokens=crypto.Sealer(secret, "dashboard-filters"),
        broker=broker or create_broker(settings.redis_url),
        audit_key=audit_key,
        factor_box=crypto.FactorBox(master),
        journal_key=crypto.derive_journal_key(master),
    )
