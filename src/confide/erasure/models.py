"""The erasure domain's tables: certificates (what was erased, no personal data), tombstones (a
keyed hash of who was erased, so that nothing brings them back) and the chat statistics that
survive erasure and retention (aggregates without personal data)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class Certificate(Base):
    """Proof of one erasure (a person, or one bulk run): counts per table, when, by whom, the
    request it answers. Ids, codes and numbers only."""

    __tablename__ = "erasure_certificates"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # subject | bulk
    state: Mapped[str] = mapped_column(String(10))  # done | running (a bulk run not finished yet)
    request_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))  # a code (service.REASONS)
    actor_type: Mapped[str] = mapped_column(String(10))  # operator | system (the CLI)
    actor_id: Mapped[str | None] = mapped_column(String(32))
    subjects: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # table -> rows erased
    keys_destroyed: Mapped[int] = mapped_column(Integer, default=0)
    filter: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # a bulk run's filter: site id, date
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class Tombstone(Base):
    """A keyed hash (a blind index under the tombstone's own prefix) of an erased visitor's id,
    e-mail blind index or verified identity: a later import, sync or widget call naming them is
    refused. Neither the value nor its ordinary blind index is stored."""

    __tablename__ = "erasure_tombstones"

    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # visitor | email | identity
    certificate_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class ChatStat(Base):
    """Chats folded into a bucket (day, site, department, operator) before they go: counts,
    ratings, first-response and duration sums. ``operator_key`` is the operator's id or ``""``."""

    __tablename__ = "chat_stats"

    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD (UTC)
    site_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    department_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    operator_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    chats: Mapped[int] = mapped_column(Integer, default=0)
    rated: Mapped[int] = mapped_column(Integer, default=0)
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)
    rating_1: Mapped[int] = mapped_column(Integer, default=0)
    rating_2: Mapped[int] = mapped_column(Integer, default=0)
    rating_3: Mapped[int] = mapped_column(Integer, default=0)
    rating_4: Mapped[int] = mapped_column(Integer, default=0)
    rating_5: Mapped[int] = mapped_column(Integer, default=0)
    first_response_s_sum: Mapped[float] = mapped_column(Float, default=0.0)
    first_response_count: Mapped[int] = mapped_column(Integer, default=0)
    duration_s_sum: Mapped[float] = mapped_column(Float, default=0.0)
    duration_count: Mapped[int] = mapped_column(Integer, default=0)
