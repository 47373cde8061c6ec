"""visitor activity: per-site tracking settings, page views and their URL words (ADR 0019)

Revision ID: 0013_visitor_activity
Revises: 0012_consent
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_visitor_activity"
down_revision: str | None = "0012_consent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "activity_settings",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("basis", sa.String(length=24), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("ip_mode", sa.String(length=12), nullable=False),
        sa.Column("ua_mode", sa.String(length=12), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_activity_settings_site_id_sites"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_activity_settings_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_activity_settings")),
    )
    with op.batch_alter_table("activity_settings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_activity_settings_workspace_id"), ["workspace_id"], unique=False)
    op.create_table(
        "activity_pages",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("visitor_id", sa.String(length=32), nullable=False),
        sa.Column("viewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("url_enc", sa.LargeBinary(), nullable=False),
        sa.Column("title_enc", sa.LargeBinary(), nullable=True),
        sa.Column("referrer_enc", sa.LargeBinary(), nullable=True),
        sa.Column("ip_enc", sa.LargeBinary(), nullable=True),
        sa.Column("ua_enc", sa.LargeBinary(), nullable=True),
        sa.Column("seconds_on_page", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_activity_pages_site_id_sites"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["visitor_id"], ["visitors.id"], name=op.f("fk_activity_pages_visitor_id_visitors"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_activity_pages_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_pages")),
    )
    with op.batch_alter_table("activity_pages", schema=None) as batch_op:
        batch_op.create_index("ix_activity_pages_site_id_viewed_at", ["site_id", "viewed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_activity_pages_visitor_id"), ["visitor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_activity_pages_workspace_id"), ["workspace_id"], unique=False)
    op.create_table(
        "activity_page_terms",
        sa.Column("page_id", sa.String(length=32), nullable=False),
        sa.Column("term", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["page_id"],
            ["activity_pages.id"],
            name=op.f("fk_activity_page_terms_page_id_activity_pages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("page_id", "term", name=op.f("pk_activity_page_terms")),
    )
    with op.batch_alter_table("activity_page_terms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_activity_page_terms_term"), ["term"], unique=False)


def downgrade() -> None:
    op.drop_table("activity_page_terms")
    op.drop_table("activity_pages")
    op.drop_table("activity_settings")
