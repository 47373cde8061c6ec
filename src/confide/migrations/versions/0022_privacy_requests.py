"""data-subject requests: the request, its linked visitors and its timeline (ADR 0029)

Revision ID: 0022_privacy_requests
Revises: 0019_queue_index
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_privacy_requests"
down_revision: str | None = "0021_erasure"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _dt(name: str, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=True),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("email_enc", sa.LargeBinary(), nullable=True),
        sa.Column("email_bidx", sa.String(length=32), nullable=True),
        sa.Column("details_enc", sa.LargeBinary(), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        _dt("received_at", False),
        _dt("due_at", False),
        sa.Column("extended_months", sa.Integer(), nullable=False),
        sa.Column("assignee_id", sa.String(length=32), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        _dt("verified_at", True),
        sa.Column("verified_by", sa.String(length=32), nullable=True),
        sa.Column("code_digest", sa.String(length=64), nullable=True),
        _dt("code_expires_at", True),
        sa.Column("code_attempts", sa.Integer(), nullable=False),
        sa.Column("codes_sent", sa.Integer(), nullable=False),
        _dt("closed_at", True),
        sa.Column("export_id", sa.String(length=32), nullable=True),
        sa.Column("certificate_id", sa.String(length=32), nullable=True),
        _dt("reminded_soon_for", True),
        _dt("reminded_overdue_for", True),
        sa.ForeignKeyConstraint(["assignee_id"], ["operators.id"],
                                name=op.f("fk_privacy_requests_assignee_id_operators"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["created_by"], ["operators.id"],
                                name=op.f("fk_privacy_requests_created_by_operators"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_privacy_requests_site_id_sites"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_privacy_requests_workspace_id_workspaces"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
    )
    with op.batch_alter_table("privacy_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_privacy_requests_email_bidx"), ["email_bidx"], unique=False)
        batch_op.create_index("ix_privacy_requests_ws_state_due", ["workspace_id", "state", "due_at"], unique=False)
        batch_op.create_index("ix_privacy_requests_ws_received", ["workspace_id", "received_at"], unique=False)

    op.create_table(
        "privacy_request_visitors",
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("visitor_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["privacy_requests.id"],
                                name=op.f("fk_privacy_request_visitors_request_id_privacy_requests"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["visitor_id"], ["visitors.id"],
                                name=op.f("fk_privacy_request_visitors_visitor_id_visitors"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("request_id", "visitor_id", name=op.f("pk_privacy_request_visitors")),
    )
    with op.batch_alter_table("privacy_request_visitors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_privacy_request_visitors_visitor_id"), ["visitor_id"], unique=False)

    op.create_table(
        "privacy_request_events",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        _dt("at", False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("actor_type", sa.String(length=10), nullable=False),
        sa.Column("actor_id", sa.String(length=32), nullable=True),
        sa.Column("note_enc", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["privacy_requests.id"],
                                name=op.f("fk_privacy_request_events_request_id_privacy_requests"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_request_events")),
        sa.UniqueConstraint("request_id", "seq", name=op.f("uq_privacy_request_events_request_id_seq")),
    )


def downgrade() -> None:
    op.drop_table("privacy_request_events")
    op.drop_table("privacy_request_visitors")
    op.drop_table("privacy_requests")
