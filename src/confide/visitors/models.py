from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class Visitor(Base):
    """A data subject. ``id`` is also the subject id of its data key."""

    __tablename__ = "visitors"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_bidx: Mapped[str | None] = mapped_column(String(32), index=True)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    fields_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # custom pre-chat answers (JSON)
    # Choices made in the widget: {"marketing": {"granted": false, "version": "2026-11-01"}}
    consents: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]


class VisitorTerm(Base):
    """Keyed blind index of the words of a visitor's name and of their phone number (search by name or
    phone without plaintext; visitors.service.phone_term)."""

    __tablename__ = "visitor_terms"

    visitor_id: Mapped[str] = mapped_column(ForeignKey("visitors.id", ondelete="CASCADE"), primary_key=True)
    term: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
