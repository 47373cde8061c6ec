"""Tables of retention: per-workspace and per-site overrides of the configured periods, and legal holds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base

WORKSPACE_SCOPE = "*"  # RetentionPolicy.scope of a workspace-wide override


class RetentionPolicy(Base):
    """One override: ``scope`` is ``"*"`` (the workspace) or a site id; ``days`` 0 keeps forever.
    No row: the site falls back to the workspace's override, then to the configured default."""

    __tablename__ = "retention_policies"

    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    category: Mapped[str] = mapped_column(String(20), primary_key=True)
    days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(32))


class LegalHold(Base):
    """A legal hold on a person (``target_type`` "visitor") or a conversation: while ``lifted_at``
    is NULL nothing of it is swept or erased. Lifting keeps the row (who, when, why)."""

    __tablename__ = "legal_holds"
    __table_args__ = (Index("ix_legal_holds_target", "workspace_id", "target_type", "target_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    target_type: Mapped[str] = mapped_column(String(16))  # visitor | conversation
    target_id: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str | None] = mapped_column(String(32))
    placed_at: Mapped[datetime]
    lifted_by: Mapped[str | None] = mapped_column(String(32))
    lifted_at: Mapped[datetime | None]
    lift_reason: Mapped[str | None] = mapped_column(Text)
