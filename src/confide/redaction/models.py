"""The redaction domain's tables: each site's policy, and the originals of what was masked (kept
only where the site asked for it, encrypted under the visitor's data key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class RedactionPolicy(Base):
    """What one site masks at ingest. ``version`` grows on every save: the writers' compiled
    patterns are cached per (site, version), so a change applies to the next batch on every node."""

    __tablename__ = "redaction_policies"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    cards: Mapped[bool] = mapped_column(Boolean, default=False)
    ibans: Mapped[bool] = mapped_column(Boolean, default=False)
    keep_originals: Mapped[bool] = mapped_column(Boolean, default=False)
    # [{"name": "order", "regex": "ORD-\\d{6}", "enabled": true}, ...] (validated on save)
    patterns: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))


class RedactedOriginal(Base):
    """The text as the visitor (or operator) typed it, before masking: one row per masked message,
    pre-chat answer or offline request, encrypted under the visitor's data key (``text_enc``, bound
    to this row by its associated data). Read only with ``chats.view_redacted``, each read audited."""

    __tablename__ = "redacted_originals"
    __table_args__ = (Index("ix_redacted_originals_subject", "subject_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    subject_id: Mapped[str] = mapped_column(ForeignKey("visitors.id", ondelete="CASCADE"))
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), nullable=True, index=True
    )
    offline_request_id: Mapped[str | None] = mapped_column(
        ForeignKey("offline_requests.id", ondelete="CASCADE"), nullable=True, index=True
    )
    ref_kind: Mapped[str] = mapped_column(String(10))  # message | prechat | offline
    ref_id: Mapped[str] = mapped_column(String(64))  # the message id, the pre-chat field key, the request id
    kinds: Mapped[list[str]] = mapped_column(JSON, default=list)  # "card", "iban", custom pattern names
    text_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
