"""Links that deliver one person's export to them: random token, stored as a digest only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class ExportLink(Base):
    """An e-mailed, expiring, single-use download of one person's export in one format.

    ``token_digest``: SHA-256 of the link's token; ``code_digest``: of the one-time code the same
    e-mail shows, asked on the page before the download. ``subject_id``: the person's first
    visitor id (erasure finds the link through it); ``visitor_ids``: all of them."""

    __tablename__ = "subject_export_links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("visitors.id", ondelete="CASCADE"), index=True)
    visitor_ids: Mapped[list[Any]] = mapped_column(JSON)
    searched_by: Mapped[str] = mapped_column(String(20))
    fmt: Mapped[str] = mapped_column(String(8))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    code_digest: Mapped[str] = mapped_column(String(64))
    failed_codes: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
