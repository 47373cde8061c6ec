"""the queue-position index: conversations by department, status and creation time

Revision ID: 0019_queue_index
Revises: 0014_prospects (relinked on the prospects branch; the lead relinks the round at merge)
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019_queue_index"
down_revision: str | None = "0014_prospects"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_conversations_queue", "conversations", ["department_id", "status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_conversations_queue", table_name="conversations")
