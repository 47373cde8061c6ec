"""login limits: address ranges and weekly time windows per role and per operator

Revision ID: 0011_login_limits
Revises: 0010_directory
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_login_limits"
down_revision: str | None = "0010_directory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_limits",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("subject_type", sa.String(length=10), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("ranges", sa.JSON(), nullable=False),
        sa.Column("windows", sa.JSON(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_login_limits_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_limits")),
        sa.UniqueConstraint(
            "workspace_id",
            "subject_type",
            "subject_id",
            name=op.f("uq_login_limits_workspace_id_subject_type_subject_id"),
        ),
    )
    with op.batch_alter_table("login_limits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_limits_workspace_id"), ["workspace_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_limits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_limits_workspace_id"))
    op.drop_table("login_limits")
