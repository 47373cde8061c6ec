"""redaction at ingest: per-site policies and the kept originals of masked text

Revision ID: 0015_redaction
Revises: 0014_prospects
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_redaction"
down_revision: str | None = "0014_prospects"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "redaction_policies",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("cards", sa.Boolean(), nullable=False),
        sa.Column("ibans", sa.Boolean(), nullable=False),
        sa.Column("keep_originals", sa.Boolean(), nullable=False),
        sa.Column("patterns", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_redaction_policies_site_id_sites"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_redaction_policies_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["operators.id"],
            name=op.f("fk_redaction_policies_updated_by_operators"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_redaction_policies")),
    )
    with op.batch_alter_table("redaction_policies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_redaction_policies_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "redacted_originals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=True),
        sa.Column("offline_request_id", sa.String(length=32), nullable=True),
        sa.Column("ref_kind", sa.String(length=10), nullable=False),
        sa.Column("ref_id", sa.String(length=64), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("text_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_redacted_originals_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_redacted_originals_site_id_sites"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["visitors.id"], name=op.f("fk_redacted_originals_subject_id_visitors"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_redacted_originals_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["offline_request_id"],
            ["offline_requests.id"],
            name=op.f("fk_redacted_originals_offline_request_id_offline_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redacted_originals")),
    )
    with op.batch_alter_table("redacted_originals", schema=None) as batch_op:
        batch_op.create_index("ix_redacted_originals_subject", ["subject_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_redacted_originals_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_redacted_originals_conversation_id"), ["conversation_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_redacted_originals_offline_request_id"), ["offline_request_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("redacted_originals")
    with op.batch_alter_table("redaction_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_redaction_policies_workspace_id"))
    op.drop_table("redaction_policies")
