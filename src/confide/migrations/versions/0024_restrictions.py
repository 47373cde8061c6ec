"""restrictions: restriction of processing (GDPR Art. 18, ADR 0031)

Revision ID: 0024_restrictions
Revises: 0023_retention
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_restrictions"
down_revision: str | None = "0023_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "restrictions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("visitor_id", sa.String(32), sa.ForeignKey("visitors.id", ondelete="CASCADE"), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("restricted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("restricted_by", sa.String(32), nullable=True),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(32), nullable=True),
    )
    # At most one active restriction per visitor (partial unique index: SQLite and PostgreSQL).
    op.create_index("ix_restrictions_active", "restrictions", ["workspace_id", "visitor_id"], unique=True,
                    sqlite_where=sa.text("lifted_at IS NULL"), postgresql_where=sa.text("lifted_at IS NULL"))
    op.create_index("ix_restrictions_visitor", "restrictions", ["visitor_id"])


def downgrade() -> None:
    op.drop_index("ix_restrictions_visitor", table_name="restrictions")
    op.drop_index("ix_restrictions_active", table_name="restrictions")
    op.drop_table("restrictions")
