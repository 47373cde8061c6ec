"""accounts: password history and policy, session details, log-in throttling (ADR 0012)

Revision ID: 0007_accounts
Revises: 0006_audit_rules
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_accounts"
down_revision: str | None = "0006_audit_rules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.add_column(sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_column("failed_logins")  # the fixed lockout gives way to login_throttle
        batch_op.drop_column("locked_until")
    with op.batch_alter_table("operator_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("idle_timeout_s", sa.Integer(), nullable=False, server_default="1800"))
        batch_op.add_column(sa.Column("method", sa.String(length=16), nullable=False, server_default="password"))
        batch_op.add_column(sa.Column("client", sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column("end_reason", sa.String(length=16), nullable=True))
    op.create_table(
        "password_history",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("operator_id", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_password_history_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_history")),
    )
    with op.batch_alter_table("password_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_password_history_operator_id"), ["operator_id"], unique=False)
    op.create_table(
        "account_policies",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("password_min_length", sa.Integer(), nullable=False),
        sa.Column("password_max_age_days", sa.Integer(), nullable=False),
        sa.Column("session_idle_timeout_s", sa.Integer(), nullable=False),
        sa.Column("session_max_per_operator", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_account_policies_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_account_policies")),
    )
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    with op.batch_alter_table("login_throttle", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_throttle_last_failure_at"), ["last_failure_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_throttle", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_throttle_last_failure_at"))
    op.drop_table("login_throttle")
    op.drop_table("account_policies")
    with op.batch_alter_table("password_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_password_history_operator_id"))
    op.drop_table("password_history")
    with op.batch_alter_table("operator_sessions", schema=None) as batch_op:
        batch_op.drop_column("end_reason")
        batch_op.drop_column("client")
        batch_op.drop_column("method")
        batch_op.drop_column("idle_timeout_s")
        batch_op.drop_column("last_seen_at")
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_column("password_changed_at")
        batch_op.drop_column("must_change_password")
