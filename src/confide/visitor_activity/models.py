"""Visitor Activity's tables: a site's tracking settings, the page views, and their URL words."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class ActivitySettings(Base):
    """One site's choices. No row: the defaults (consent, truncated address, browser family)."""

    __tablename__ = "activity_settings"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    basis: Mapped[str] = mapped_column(String(24), default="consent")  # consent | legitimate_interest
    justification: Mapped[str] = mapped_column(Text, default="")  # required for legitimate_interest
    ip_mode: Mapped[str] = mapped_column(String(12), default="truncated")  # none | truncated | full
    ua_mode: Mapped[str] = mapped_column(String(12), default="family")  # none | family | full
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(32), nullable=True)


class PageView(Base):
    """One page the visitor saw, everything about it encrypted under the visitor's data key."""

    __tablename__ = "activity_pages"
    __table_args__ = (Index("ix_activity_pages_site_id_viewed_at", "site_id", "viewed_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    visitor_id: Mapped[str] = mapped_column(ForeignKey("visitors.id", ondelete="CASCADE"), index=True)
    viewed_at: Mapped[datetime]
    url_enc: Mapped[bytes] = mapped_column(LargeBinary)
    title_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    referrer_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    ip_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    ua_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    seconds_on_page: Mapped[int | None] = mapped_column(Integer, nullable=True)


class PageTerm(Base):
    """Keyed blind index of the words of a viewed URL (the "page contains" filter, no plaintext)."""

    __tablename__ = "activity_page_terms"

    page_id: Mapped[str] = mapped_column(ForeignKey("activity_pages.id", ondelete="CASCADE"), primary_key=True)
    term: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
