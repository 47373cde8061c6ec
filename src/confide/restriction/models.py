"""The restriction domain's one table (ADR 0031): who is restricted, since when, why (a code).

One row per restriction of one visitor id. Lifting keeps the row (``lifted_at``, ``lifted_by``):
the history of a person's restrictions is the table itself, so "restricted from ... to ..., for
..." stays provable (Art. 5(2)). At most one row per visitor is *active* (``lifted_at`` NULL): a
partial unique index holds it on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class Restriction(Base):
    __tablename__ = "restrictions"
    __table_args__ = (
        Index("ix_restrictions_active", "workspace_id", "visitor_id", unique=True,
              sqlite_where=text("lifted_at IS NULL"), postgresql_where=text("lifted_at IS NULL")),
        Index("ix_restrictions_visitor", "visitor_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    visitor_id: Mapped[str] = mapped_column(ForeignKey("visitors.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(32))  # a code (service.REASONS), never free text
    request_id: Mapped[str | None] = mapped_column(String(64))  # the data-subject request it answers
    restricted_at: Mapped[datetime]
    restricted_by: Mapped[str | None] = mapped_column(String(32))  # an operator id; NULL: the CLI
    lifted_at: Mapped[datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(32))
