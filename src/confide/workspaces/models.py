from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    site_key: Mapped[str] = mapped_column(String(64), unique=True)
    allowed_origins: Mapped[list[str]] = mapped_column(JSON, default=list)
    prechat_fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    purposes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    privacy_policy_url: Mapped[str] = mapped_column(String(2000), default="")
    greeting: Mapped[str] = mapped_column(String(500), default="")
    color: Mapped[str] = mapped_column(String(16), default="#2563eb")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # {"mon": [["09:00", "17:00"]], ...}; None means always open.
    business_hours: Mapped[dict[str, list[list[str]]] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime]


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    strategy: Mapped[str] = mapped_column(String(20), default="round_robin")
    offer_timeout_s: Mapped[int] = mapped_column(Integer, default=30)
    # Round robin cursor: the operator id most recently offered a chat.
    rr_last_operator_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime]


class CannedReply(Base):
    __tablename__ = "canned_replies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[str | None] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), nullable=True, index=True
    )
    shortcut: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class RefusedOrigin(Base):
    """An origin (scheme://host[:port], never a full URL) whose widget calls a site refused: shown to
    the site's administrators in Settings, so that a missing allowed origin is noticed. Bounded per
    site (``workspaces.service.REFUSED_ORIGINS_KEPT`` most recent)."""

    __tablename__ = "refused_origins"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    origin: Mapped[str] = mapped_column(String(300), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime] = mapped_column(index=True)
