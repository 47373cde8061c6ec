"""verified visitor identity: per-site signing secrets and verified identities (ADR 0022)

Revision ID: 0016_verified_identity
Revises: 0015_redaction
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_verified_identity"
down_revision: str | None = "0015_redaction"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_secrets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("secret_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_identity_secrets_site_id_sites"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_identity_secrets_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_secrets")),
        sa.UniqueConstraint("site_id", name=op.f("uq_identity_secrets_site_id")),
    )
    with op.batch_alter_table("identity_secrets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_secrets_workspace_id"), ["workspace_id"], unique=False)
    op.create_table(
        "verified_identities",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("external_id_bidx", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_verified_identities_site_id_sites"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["visitors.id"],
            name=op.f("fk_verified_identities_subject_id_visitors"),
            ondelete="CASCADE",
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_verified_identities_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verified_identities")),
        sa.UniqueConstraint(
            "site_id", "external_id_bidx", name=op.f("uq_verified_identities_site_id_external_id_bidx")
        ),
        sa.UniqueConstraint("subject_id", name=op.f("uq_verified_identities_subject_id")),
    )
    with op.batch_alter_table("verified_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verified_identities_workspace_id"), ["workspace_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("verified_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verified_identities_workspace_id"))
    op.drop_table("verified_identities")
    with op.batch_alter_table("identity_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_secrets_workspace_id"))
    op.drop_table("identity_secrets")
