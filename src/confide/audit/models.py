from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class AuditEvent(Base):
    """One audited action. Actors and targets are ids; ``detail`` is canonical JSON of ids, codes,
    numbers and booleans only (``audit.service`` refuses anything else), never personal data."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[datetime] = mapped_column(index=True)
    workspace_id: Mapped[str | None] = mapped_column(String(32), index=True)
    actor_type: Mapped[str] = mapped_column(String(16))  # operator | visitor | system | anonymous
    actor_id: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # ok | failed | denied
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The end of the chain (one row, ``id = 1``): its lock orders the writers of the chain, and
    its hash lets ``verify`` notice rows removed from the end."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))


class AuditPrune(Base):
    """The sanctioned way to remove old rows (``audit.retention``): while a transaction holds a row
    here (``id = 1``, inserted and deleted again inside that one transaction, so no other
    transaction ever sees it), the append-only trigger lets it delete rows with ``seq <= upto``.
    Nothing else may delete or change a row of ``audit_events`` (``audit.rules``)."""

    __tablename__ = "audit_prune"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    upto: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
