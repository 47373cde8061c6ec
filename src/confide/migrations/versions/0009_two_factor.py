"""two-factor: TOTP factors, recovery codes, passkeys, log-in tickets, WebAuthn challenges, the policy (ADR 0014)

Revision ID: 0009_two_factor
Revises: 0008_jobs_invites_review
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_two_factor"
down_revision: str | None = "0008_jobs_invites_review"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "two_factor_policies",
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("require_all", sa.Boolean(), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_two_factor_policies_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_two_factor_policies")),
    )
    op.create_table(
        "passkey_credentials",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("operator_id", sa.String(length=32), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("label", sa.String(length=60), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_passkey_credentials_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkey_credentials")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_passkey_credentials_credential_id")),
    )
    with op.batch_alter_table("passkey_credentials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_passkey_credentials_operator_id"), ["operator_id"], unique=False)

    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("operator_id", sa.String(length=32), nullable=False),
        sa.Column("code_digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_recovery_codes_operator_id_operators"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
        sa.UniqueConstraint("code_digest", name=op.f("uq_recovery_codes_code_digest")),
    )
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recovery_codes_operator_id"), ["operator_id"], unique=False)

    op.create_table(
        "totp_factors",
        sa.Column("operator_id", sa.String(length=32), nullable=False),
        sa.Column("secret_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_step", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_totp_factors_operator_id_operators"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("operator_id", name=op.f("pk_totp_factors")),
    )
    op.create_table(
        "two_factor_tickets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("operator_id", sa.String(length=32), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("stage", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_two_factor_tickets_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_two_factor_tickets")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_two_factor_tickets_token_digest")),
    )
    with op.batch_alter_table("two_factor_tickets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_two_factor_tickets_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_two_factor_tickets_operator_id"), ["operator_id"], unique=False)

    op.create_table(
        "webauthn_challenges",
        sa.Column("operator_id", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("challenge", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_webauthn_challenges_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("operator_id", "purpose", name=op.f("pk_webauthn_challenges")),
    )


def downgrade() -> None:
    op.drop_table("webauthn_challenges")
    with op.batch_alter_table("two_factor_tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_two_factor_tickets_operator_id"))
        batch_op.drop_index(batch_op.f("ix_two_factor_tickets_expires_at"))

    op.drop_table("two_factor_tickets")
    op.drop_table("totp_factors")
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_codes_operator_id"))

    op.drop_table("recovery_codes")
    with op.batch_alter_table("passkey_credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_passkey_credentials_operator_id"))

    op.drop_table("passkey_credentials")
    op.drop_table("two_factor_policies")
