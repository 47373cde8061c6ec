"""custom roles per workspace; operators hold a role key ("admin" becomes "administrator")

Revision ID: 0005_roles
Revises: 0004_audit_log
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_roles"
down_revision: str | None = "0004_audit_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "roles",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_roles_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_roles_workspace_id_name")),
    )
    with op.batch_alter_table("roles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_roles_workspace_id"), ["workspace_id"], unique=False)
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.alter_column("role", existing_type=sa.String(length=20), type_=sa.String(length=40))
    op.execute("UPDATE operators SET role = 'administrator' WHERE role = 'admin'")


def downgrade() -> None:
    # Custom roles cannot be expressed by the old two roles: their holders become operators.
    op.execute("UPDATE operators SET role = 'admin' WHERE role = 'administrator'")
    op.execute("UPDATE operators SET role = 'operator' WHERE role <> 'admin'")
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.alter_column("role", existing_type=sa.String(length=40), type_=sa.String(length=20))
    with op.batch_alter_table("roles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_roles_workspace_id"))
    op.drop_table("roles")
