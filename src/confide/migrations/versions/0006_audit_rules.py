"""the audit log is append-only: triggers on audit_events and audit_head, the retention flag table

Revision ID: 0006_audit_rules
Revises: 0005_roles
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from confide.audit import rules

revision: str = "0006_audit_rules"
down_revision: str | None = "0005_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_prune",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("upto", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_prune")),
    )
    dialect = op.get_bind().dialect.name
    for table in ("audit_events", "audit_head"):
        for sql in rules.statements(dialect, table):
            op.execute(sa.text(sql))


def downgrade() -> None:
    for sql in rules.drop_statements(op.get_bind().dialect.name):
        op.execute(sa.text(sql))
    op.drop_table("audit_prune")
