from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class Operator(Base):
    __tablename__ = "operators"
    __table_args__ = (UniqueConstraint("email"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))  # normalised (casefolded); the login name
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="operator")  # admin | operator
    status: Mapped[str] = mapped_column(String(10), default="offline")  # online | away | offline
    max_chats: Mapped[int] = mapped_column(Integer, default=5)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_assigned_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # The account review's "last login" (set by open_session; migration 0008).
    last_login_at: Mapped[datetime | None]
    last_login_method: Mapped[str | None] = mapped_column(String(20))


class OperatorDepartment(Base):
    __tablename__ = "operator_departments"

    operator_id: Mapped[str] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), primary_key=True)
    department_id: Mapped[str] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class OperatorSession(Base):
    __tablename__ = "operator_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[str] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Presence(Base):
    """Who is connected right now, per node: an operator's console sockets (``kind="operator"``,
    subject = operator id) and a visitor's widget sockets (``kind="visitor"``, subject =
    conversation id). Each node refreshes its rows every few seconds; a row whose ``expires_at``
    has passed is a socket that is gone (closed, or its node crashed). See ADR 0005."""

    __tablename__ = "presence"

    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
