"""one live invitation per address: a partial unique index on operator_invites

Revision ID: 0018_audit_fix
Revises: 0016_verified_identity

Two administrators inviting the same address at once both kept a live link (users.invites).
Before the index is made, every live invitation but the newest of each address is revoked (what
inviting again does), so an existing database can take it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_audit_fix"
down_revision: str | None = "0016_verified_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "used_at IS NULL AND revoked_at IS NULL"


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE operator_invites SET revoked_at = CURRENT_TIMESTAMP "
            "WHERE used_at IS NULL AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM operator_invites AS newer "
            "WHERE newer.workspace_id = operator_invites.workspace_id AND newer.email = operator_invites.email "
            "AND newer.used_at IS NULL AND newer.revoked_at IS NULL "
            "AND (newer.created_at > operator_invites.created_at "
            "OR (newer.created_at = operator_invites.created_at AND newer.id > operator_invites.id)))"
        )
    )
    op.create_index(
        "uq_operator_invites_live",
        "operator_invites",
        ["workspace_id", "email"],
        unique=True,
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )


def downgrade() -> None:
    op.drop_index("uq_operator_invites_live", table_name="operator_invites")
