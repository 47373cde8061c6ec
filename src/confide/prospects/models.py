"""Prospects, the per-site prospect settings and the profiling objections (Art. 21)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base

SOURCES = ("chat", "offline_request", "manual", "automatic")
STATUSES = ("new", "contacted", "qualified", "won", "lost")


class Prospect(Base):
    """A lead. Its contact data and notes are encrypted under the key of ``subject_id``: the visitor's
    (a prospect from a chat or an offline request) or a data key of its own (entered by hand)."""

    __tablename__ = "prospects"
    __table_args__ = (
        Index("ix_prospects_ws_created", "workspace_id", "created_at"),
        Index("ix_prospects_ws_email", "workspace_id", "email_bidx"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[str | None] = mapped_column(ForeignKey("departments.id", ondelete="SET NULL"))
    subject_id: Mapped[str] = mapped_column(String(32), index=True)  # whose data key
    visitor_id: Mapped[str | None] = mapped_column(ForeignKey("visitors.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[str | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    offline_request_id: Mapped[str | None] = mapped_column(ForeignKey("offline_requests.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="new")
    value_minor: Mapped[int | None] = mapped_column(BigInteger)  # in hundredths of ``currency``
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    name_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_bidx: Mapped[str | None] = mapped_column(String(32))
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    company_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    notes_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic concurrency (edit forms)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ProspectSettings(Base):
    """Per site: automatic creation (off by default), the lawful basis of profiling (consent unless
    the business documents a legitimate interest), the default currency."""

    __tablename__ = "prospect_settings"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    auto_create: Mapped[bool] = mapped_column(Boolean, default=False)
    basis: Mapped[str] = mapped_column(String(30), default="consent")  # consent | legitimate_interest
    interest_note: Mapped[str] = mapped_column(String(2000), default="")  # the documented balancing test
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))


class ProfilingObjection(Base):
    """A person objected to profiling (Art. 21): ids and the e-mail's blind index only, so that the
    objection is honoured for any later chat or offline request with the same e-mail address."""

    __tablename__ = "profiling_objections"
    __table_args__ = (UniqueConstraint("workspace_id", "email_bidx"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    email_bidx: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class ProspectTerm(Base):
    """Keyed blind index of the words of a prospect's name and company and of its phone's digits (text
    search and Find a person by phone without plaintext)."""

    __tablename__ = "prospect_terms"

    prospect_id: Mapped[str] = mapped_column(ForeignKey("prospects.id", ondelete="CASCADE"), primary_key=True)
    term: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
