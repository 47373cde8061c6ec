"""Tables of the consent domain. ``consent_records`` is append-only (``consent/rules.py``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class Purpose(Base):
    """A processing purpose of a workspace, with its lawful basis."""

    __tablename__ = "consent_purposes"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    lawful_basis: Mapped[str] = mapped_column(String(24))
    description: Mapped[str] = mapped_column(Text, default="")
    retention_class: Mapped[str] = mapped_column(String(40), default="")
    recipients: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    required: Mapped[bool] = mapped_column(Boolean, default=False)  # cannot be refused (support)
    latest_version: Mapped[int] = mapped_column(Integer, default=0)  # highest notice version published
    # Consents given under a notice older than this version no longer count (a material change).
    material_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Notice(Base):
    """One published text of a purpose, in one language. Never updated: editing makes a new version."""

    __tablename__ = "consent_notices"
    __table_args__ = (UniqueConstraint("purpose_id", "version", "language"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    purpose_id: Mapped[str] = mapped_column(ForeignKey("consent_purposes.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)  # per purpose, across languages
    language: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    material: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(32))  # operator id, None when seeded


class ConsentRecord(Base):
    """One choice of one subject for one purpose: the ledger. Rows are only ever appended."""

    __tablename__ = "consent_records"
    __table_args__ = (Index("ix_consent_records_subject_purpose", "workspace_id", "subject_id", "purpose", "seq"),)

    # The ledger's order: the latest row of a subject and purpose is its current state.
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                     autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)  # opaque, what URLs carry
    workspace_id: Mapped[str] = mapped_column(String(32), index=True)
    subject_id: Mapped[str] = mapped_column(String(32), index=True)
    purpose: Mapped[str] = mapped_column(String(40))
    granted: Mapped[bool] = mapped_column(Boolean)
    notice_id: Mapped[str | None] = mapped_column(String(32))
    notice_version: Mapped[int | None] = mapped_column(Integer)
    notice_hash: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(index=True)
    site_id: Mapped[str | None] = mapped_column(String(32))
    conversation_id: Mapped[str | None] = mapped_column(String(32))
    message_id: Mapped[str | None] = mapped_column(String(32))
    actor_id: Mapped[str | None] = mapped_column(String(32))  # the operator who recorded a statement


class ConsentErasure(Base):
    """The erasure flag: while a transaction holds a row here (inserted and removed inside it, never
    seen by another), the ledger rows of that subject may be deleted (``removal.erase_subject``)."""

    __tablename__ = "consent_erasure"

    subject_id: Mapped[str] = mapped_column(String(32), primary_key=True)
