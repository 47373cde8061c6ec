"""prospects: leads, their name/company terms, per-site prospect settings, profiling objections (ADR 0020)

Revision ID: 0014_prospects
Revises: 0013_visitor_activity
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_prospects"
down_revision: str | None = "0013_visitor_activity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "profiling_objections",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("email_bidx", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_profiling_objections_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiling_objections")),
        sa.UniqueConstraint("workspace_id", "email_bidx", name=op.f("uq_profiling_objections_workspace_id_email_bidx")),
    )
    op.create_table(
        "prospect_settings",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("auto_create", sa.Boolean(), nullable=False),
        sa.Column("basis", sa.String(length=30), nullable=False),
        sa.Column("interest_note", sa.String(length=2000), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_prospect_settings_site_id_sites"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["operators.id"],
            name=op.f("fk_prospect_settings_updated_by_operators"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_prospect_settings_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_prospect_settings")),
    )
    with op.batch_alter_table("prospect_settings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prospect_settings_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "prospects",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("department_id", sa.String(length=32), nullable=True),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("visitor_id", sa.String(length=32), nullable=True),
        sa.Column("conversation_id", sa.String(length=32), nullable=True),
        sa.Column("offline_request_id", sa.String(length=32), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("value_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=True),
        sa.Column("name_enc", sa.LargeBinary(), nullable=True),
        sa.Column("email_enc", sa.LargeBinary(), nullable=True),
        sa.Column("email_bidx", sa.String(length=32), nullable=True),
        sa.Column("phone_enc", sa.LargeBinary(), nullable=True),
        sa.Column("company_enc", sa.LargeBinary(), nullable=True),
        sa.Column("notes_enc", sa.LargeBinary(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_prospects_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["operators.id"], name=op.f("fk_prospects_created_by_operators"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["departments.id"],
            name=op.f("fk_prospects_department_id_departments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["offline_request_id"],
            ["offline_requests.id"],
            name=op.f("fk_prospects_offline_request_id_offline_requests"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["operators.id"], name=op.f("fk_prospects_owner_id_operators"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_prospects_site_id_sites"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["visitor_id"], ["visitors.id"], name=op.f("fk_prospects_visitor_id_visitors"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_prospects_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prospects")),
    )
    with op.batch_alter_table("prospects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prospects_site_id"), ["site_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_prospects_subject_id"), ["subject_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_prospects_visitor_id"), ["visitor_id"], unique=False)
        batch_op.create_index("ix_prospects_ws_created", ["workspace_id", "created_at"], unique=False)
        batch_op.create_index("ix_prospects_ws_email", ["workspace_id", "email_bidx"], unique=False)

    op.create_table(
        "prospect_terms",
        sa.Column("prospect_id", sa.String(length=32), nullable=False),
        sa.Column("term", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["prospect_id"], ["prospects.id"], name=op.f("fk_prospect_terms_prospect_id_prospects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("prospect_id", "term", name=op.f("pk_prospect_terms")),
    )
    with op.batch_alter_table("prospect_terms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prospect_terms_term"), ["term"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("prospect_terms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prospect_terms_term"))

    op.drop_table("prospect_terms")
    with op.batch_alter_table("prospects", schema=None) as batch_op:
        batch_op.drop_index("ix_prospects_ws_email")
        batch_op.drop_index("ix_prospects_ws_created")
        batch_op.drop_index(batch_op.f("ix_prospects_visitor_id"))
        batch_op.drop_index(batch_op.f("ix_prospects_subject_id"))
        batch_op.drop_index(batch_op.f("ix_prospects_site_id"))

    op.drop_table("prospects")
    with op.batch_alter_table("prospect_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prospect_settings_workspace_id"))

    op.drop_table("prospect_settings")
    op.drop_table("profiling_objections")
