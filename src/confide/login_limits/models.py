from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class LoginLimit(Base):
    """The login limits of one role (``subject_type="role"``, subject = the role's key) or one
    operator (``"operator"``, subject = the operator's id) of a workspace. No row: no limits."""

    __tablename__ = "login_limits"
    __table_args__ = (UniqueConstraint("workspace_id", "subject_type", "subject_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    subject_type: Mapped[str] = mapped_column(String(10))  # role | operator
    subject_id: Mapped[str] = mapped_column(String(64))
    ranges: Mapped[list[str]] = mapped_column(JSON, default=list)  # CIDR texts, canonical
    # [{"days": ["mon", ...], "start": "09:00", "end": "17:00", "overnight": false}, ...]
    windows: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(32))
