from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
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
    # The role's key: a built-in role (permissions.policy.BUILT_IN_ROLES) or a workspace's Role.key.
    role: Mapped[str] = mapped_column(String(40), default="operator")
    status: Mapped[str] = mapped_column(String(10), default="offline")  # online | away | offline
    max_chats: Mapped[int] = mapped_column(Integer, default=5)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # A one-time or reset password: every page and call but the password change is refused until
    # the operator has chosen their own (docs/security.md).
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    password_changed_at: Mapped[datetime | None]
    last_assigned_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # The account review's "last login" (set by open_session; migration 0008).
    last_login_at: Mapped[datetime | None]
    last_login_method: Mapped[str | None] = mapped_column(String(20))


class Role(Base):
    """A workspace's custom role: a named set of permissions with a scope (permissions.policy).
    The built-in roles are not rows: their permissions are fixed in code (ADR 0010)."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # also the key operators.role holds
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(String(300), default="")
    scope: Mapped[str] = mapped_column(String(20))
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


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
    expires_at: Mapped[datetime]  # the absolute timeout; the idle one runs from last_seen_at
    revoked_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]  # written at most once a minute (settings.session_touch_s)
    idle_timeout_s: Mapped[int] = mapped_column(Integer, default=1800)  # the workspace's, when it opened
    method: Mapped[str] = mapped_column(String(16), default="password")  # the first factor: password | ldap | oidc
    # "Firefox on Linux": a short form, never the full header; no client address is stored.
    client: Mapped[str | None] = mapped_column(String(60), nullable=True)
    # Why it ended (logout, revoked, password, cap, disabled, ...): a code, never free text.
    end_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)


class PasswordHistory(Base):
    """An operator's earlier password hashes (argon2id), the newest ``settings.password_history``
    kept: a new password may not be any of them."""

    __tablename__ = "password_history"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    operator_id: Mapped[str] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class AccountPolicy(Base):
    """A workspace's password and session rules (Settings -> Security -> Passwords); a workspace
    without a row has the defaults of the configuration."""

    __tablename__ = "account_policies"

    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    password_min_length: Mapped[int] = mapped_column(Integer)
    password_max_age_days: Mapped[int] = mapped_column(Integer, default=0)  # 0: never
    session_idle_timeout_s: Mapped[int] = mapped_column(Integer)
    session_max_per_operator: Mapped[int] = mapped_column(Integer, default=0)  # 0: no cap
    updated_at: Mapped[datetime]


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
