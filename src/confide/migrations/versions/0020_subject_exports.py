"""subject exports: e-mailed, expiring, single-use download links of one person's export

Revision ID: 0020_subject_exports
Revises: 0019_queue_index
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_subject_exports"
down_revision: str | None = "0019_queue_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subject_export_links",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(32), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subject_id", sa.String(32), sa.ForeignKey("visitors.id", ondelete="CASCADE"), nullable=False),
        sa.Column("visitor_ids", sa.JSON(), nullable=False),
        sa.Column("searched_by", sa.String(20), nullable=False),
        sa.Column("fmt", sa.String(8), nullable=False),
        sa.Column("token_digest", sa.String(64), nullable=False, unique=True),
        sa.Column("code_digest", sa.String(64), nullable=False),
        sa.Column("failed_codes", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(32), sa.ForeignKey("operators.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_subject_export_links_workspace_id", "subject_export_links", ["workspace_id"])
    op.create_index("ix_subject_export_links_subject_id", "subject_export_links", ["subject_id"])


def downgrade() -> None:
    op.drop_index("ix_subject_export_links_subject_id", table_name="subject_export_links")
    op.drop_index("ix_subject_export_links_workspace_id", table_name="subject_export_links")
    op.drop_table("subject_export_links")
