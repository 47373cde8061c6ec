"""Tables of the account lifecycle: invitations, the periodic account review and its policy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class OperatorInvite(Base):
    """A single-use, expiring invitation to create an account. Only the token's digest is stored."""

    __tablename__ = "operator_invites"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320), index=True)  # normalised, like operators.email
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(40))
    department_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    invited_by: Mapped[str | None] = mapped_column(String(32))  # operator id
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    operator_id: Mapped[str | None] = mapped_column(String(32))  # the account it created

    # One live invitation per address and workspace (neither used nor revoked; an expired one counts
    # until a new invitation revokes it): two administrators inviting one address at once make one
    # (users.invites, migration 0018_audit_fix).
    __table_args__ = (
        Index(
            "uq_operator_invites_live",
            "workspace_id",
            "email",
            unique=True,
            sqlite_where=text("used_at IS NULL AND revoked_at IS NULL"),
            postgresql_where=text("used_at IS NULL AND revoked_at IS NULL"),
        ),
    )


class ReviewPolicy(Base):
    """A workspace's account-review rules (a row appears when an administrator first saves them)."""

    __tablename__ = "account_review_policies"

    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    interval_days: Mapped[int] = mapped_column(Integer, default=90)
    inactive_days: Mapped[int | None] = mapped_column(Integer)  # None: no automatic disabling
    updated_at: Mapped[datetime]


class AccountReview(Base):
    """A signed-off review: who, when, and every account's state at that moment (ids and codes)."""

    __tablename__ = "account_reviews"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    signed_by: Mapped[str] = mapped_column(String(32))  # operator id
    signed_at: Mapped[datetime] = mapped_column(index=True)
    account_count: Mapped[int] = mapped_column(Integer)
    accounts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
