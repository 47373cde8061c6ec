"""directory login and single sign-on: LDAP directories, OpenID Connect providers, directory accounts

Revision ID: 0010_directory
Revises: 0009_two_factor
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_directory"
down_revision: str | None = "0009_two_factor"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ldap_directories",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("server_urls", sa.JSON(), nullable=False),
        sa.Column("tls_mode", sa.String(length=10), nullable=False),
        sa.Column("ca_cert_pem", sa.Text(), nullable=True),
        sa.Column("bind_dn", sa.String(length=1000), nullable=False),
        sa.Column("bind_password_enc", sa.LargeBinary(), nullable=True),
        sa.Column("user_base_dn", sa.String(length=1000), nullable=False),
        sa.Column("user_filter", sa.String(length=1000), nullable=False),
        sa.Column("attr_email", sa.String(length=100), nullable=False),
        sa.Column("attr_name", sa.String(length=100), nullable=False),
        sa.Column("attr_groups", sa.String(length=100), nullable=False),
        sa.Column("group_roles", sa.JSON(), nullable=False),
        sa.Column("group_departments", sa.JSON(), nullable=False),
        sa.Column("required_groups", sa.JSON(), nullable=False),
        sa.Column("default_role", sa.String(length=40), nullable=False),
        sa.Column("auto_create", sa.Boolean(), nullable=False),
        sa.Column("login_domains", sa.JSON(), nullable=False),
        sa.Column("timeout_s", sa.Integer(), nullable=False),
        sa.Column("recheck_interval_s", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_ldap_directories_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ldap_directories")),
        sa.UniqueConstraint("workspace_id", name=op.f("uq_ldap_directories_workspace_id")),
    )
    op.create_table(
        "oidc_providers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("client_id", sa.String(length=500), nullable=False),
        sa.Column("client_secret_enc", sa.LargeBinary(), nullable=True),
        sa.Column("scopes", sa.String(length=500), nullable=False),
        sa.Column("email_claim", sa.String(length=100), nullable=False),
        sa.Column("require_email_verified", sa.Boolean(), nullable=False),
        sa.Column("group_claim", sa.String(length=100), nullable=False),
        sa.Column("group_roles", sa.JSON(), nullable=False),
        sa.Column("group_departments", sa.JSON(), nullable=False),
        sa.Column("default_role", sa.String(length=40), nullable=False),
        sa.Column("allowed_domains", sa.JSON(), nullable=False),
        sa.Column("auto_create", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_oidc_providers_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oidc_providers")),
    )
    with op.batch_alter_table("oidc_providers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oidc_providers_workspace_id"), ["workspace_id"], unique=False)
    op.create_table(
        "directory_accounts",
        sa.Column("operator_id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("provider_id", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_directory_accounts_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_directory_accounts_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("operator_id", name=op.f("pk_directory_accounts")),
        sa.UniqueConstraint(
            "source", "provider_id", "external_id", name=op.f("uq_directory_accounts_source_provider_id_external_id")
        ),
    )
    with op.batch_alter_table("directory_accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_directory_accounts_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_directory_accounts_checked_at"), ["checked_at"], unique=False)


def downgrade() -> None:
    op.drop_table("directory_accounts")
    op.drop_table("oidc_providers")
    op.drop_table("ldap_directories")
