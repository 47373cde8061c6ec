"""erasure: certificates, tombstones and the chat statistics that survive erasure (ADR 0028)

Revision ID: 0021_erasure
Revises: 0019_queue_index
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_erasure"
down_revision: str | None = "0020_subject_exports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _workspace_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace_id"], ["workspaces.id"], name=op.f(f"fk_{table}_workspace_id_workspaces"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "erasure_certificates",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("actor_type", sa.String(length=10), nullable=False),
        sa.Column("actor_id", sa.String(length=32), nullable=True),
        sa.Column("subjects", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("keys_destroyed", sa.Integer(), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        _workspace_fk("erasure_certificates"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_certificates")),
    )
    with op.batch_alter_table("erasure_certificates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_erasure_certificates_workspace_id"), ["workspace_id"], unique=False)
    op.create_table(
        "erasure_tombstones",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("certificate_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _workspace_fk("erasure_tombstones"),
        sa.PrimaryKeyConstraint("workspace_id", "digest", name=op.f("pk_erasure_tombstones")),
    )
    op.create_table(
        "chat_stats",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("department_id", sa.String(length=32), nullable=False),
        sa.Column("operator_key", sa.String(length=32), nullable=False),
        *[sa.Column(c, sa.Integer(), nullable=False) for c in (
            "chats", "rated", "rating_sum", "rating_1", "rating_2", "rating_3", "rating_4", "rating_5")],
        sa.Column("first_response_s_sum", sa.Float(), nullable=False),
        sa.Column("first_response_count", sa.Integer(), nullable=False),
        sa.Column("duration_s_sum", sa.Float(), nullable=False),
        sa.Column("duration_count", sa.Integer(), nullable=False),
        _workspace_fk("chat_stats"),
        sa.PrimaryKeyConstraint(
            "workspace_id", "day", "site_id", "department_id", "operator_key", name=op.f("pk_chat_stats")
        ),
    )


def downgrade() -> None:
    op.drop_table("chat_stats")
    op.drop_table("erasure_tombstones")
    with op.batch_alter_table("erasure_certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_erasure_certificates_workspace_id"))
    op.drop_table("erasure_certificates")
