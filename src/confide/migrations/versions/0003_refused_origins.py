"""refused widget origins per site (Settings -> Sites shows them)

Revision ID: 0003_refused_origins
Revises: 0002_presence
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_refused_origins"
down_revision: str | None = "0002_presence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refused_origins",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_refused_origins_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("site_id", "origin", name=op.f("pk_refused_origins")),
    )
    with op.batch_alter_table("refused_origins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refused_origins_last_seen"), ["last_seen"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("refused_origins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refused_origins_last_seen"))
    op.drop_table("refused_origins")
