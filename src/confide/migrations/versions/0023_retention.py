"""retention: per-workspace and per-site retention periods, legal holds (ADR 0030)

Revision ID: 0023_retention
Revises: 0019_queue_index
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_retention"
down_revision: str | None = "0022_privacy_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "scope", "category"),
    )
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("target_type", sa.String(16), nullable=False),
        sa.Column("target_id", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(32), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lifted_by", sa.String(32), nullable=True),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_legal_holds_target", "legal_holds", ["workspace_id", "target_type", "target_id"])


def downgrade() -> None:
    op.drop_index("ix_legal_holds_target", table_name="legal_holds")
    op.drop_table("legal_holds")
    op.drop_table("retention_policies")
