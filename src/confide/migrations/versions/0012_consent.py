"""consent: purposes, versioned notices, the append-only consent ledger (with its triggers and the
erasure flag), jobs.purpose; default purposes for every workspace, each site's purposes adopted,
and visitors.consents imported into the ledger (source "import"). visitors.consents is kept (no
longer written: ADR 0018).

Revision ID: 0012_consent
Revises: 0011_login_limits
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from confide.consent import purposes as P
from confide.consent import rules
from confide.core import crypto

revision: str = "0012_consent"
down_revision: str | None = "0011_login_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consent_purposes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("lawful_basis", sa.String(length=24), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("retention_class", sa.String(length=40), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("material_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_consent_purposes_workspace_id_workspaces"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_purposes")),
        sa.UniqueConstraint("workspace_id", "key", name=op.f("uq_consent_purposes_workspace_id_key")),
    )
    with op.batch_alter_table("consent_purposes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_purposes_workspace_id"), ["workspace_id"], unique=False)
    op.create_table(
        "consent_notices",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("purpose_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("material", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["purpose_id"], ["consent_purposes.id"],
                                name=op.f("fk_consent_notices_purpose_id_consent_purposes"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name=op.f("fk_consent_notices_workspace_id_workspaces"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_notices")),
        sa.UniqueConstraint("purpose_id", "version", "language",
                            name=op.f("uq_consent_notices_purpose_id_version_language")),
    )
    with op.batch_alter_table("consent_notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_notices_purpose_id"), ["purpose_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_consent_notices_workspace_id"), ["workspace_id"], unique=False)
    op.create_table(
        "consent_records",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("notice_id", sa.String(length=32), nullable=True),
        sa.Column("notice_version", sa.Integer(), nullable=True),
        sa.Column("notice_hash", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=True),
        sa.Column("conversation_id", sa.String(length=32), nullable=True),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("actor_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_consent_records")),
        sa.UniqueConstraint("id", name=op.f("uq_consent_records_id")),
    )
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_records_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_consent_records_subject_id"), ["subject_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_consent_records_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_index("ix_consent_records_subject_purpose", ["workspace_id", "subject_id", "purpose", "seq"],
                              unique=False)
    op.create_table(
        "consent_erasure",
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_consent_erasure")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purpose", sa.String(length=40), nullable=True))
    bind = op.get_bind()
    for sql in rules.statements(bind.dialect.name):
        op.execute(sa.text(sql))
    _seed(bind)


# ---------------------------------------------------------------- data
_purposes = sa.table(
    "consent_purposes",
    *(sa.column(c) for c in ("id", "workspace_id", "key", "name", "lawful_basis", "description", "retention_class",
                             "recipients", "enabled", "required", "latest_version", "material_version",
                             "created_at", "updated_at")),
)
_notices = sa.table(
    "consent_notices",
    *(sa.column(c) for c in ("id", "workspace_id", "purpose_id", "version", "language", "text", "sha256",
                             "material", "created_at", "created_by")),
)
_records = sa.table(
    "consent_records",
    *(sa.column(c) for c in ("id", "workspace_id", "subject_id", "purpose", "granted", "notice_id",
                             "notice_version", "notice_hash", "source", "at", "site_id")),
)


def _time(bind: Any, value: datetime) -> datetime:
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value.replace(tzinfo=None) if bind.dialect.name == "sqlite" else value


def _parse(value: object, fallback: datetime) -> datetime:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return fallback


def _json(value: object) -> Any:
    if isinstance(value, str):
        import json

        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _seed(bind: Any) -> None:
    now = _time(bind, datetime.now(UTC))
    notice_of: dict[tuple[str, str], tuple[str, str]] = {}  # (workspace, key) -> (notice id, hash)

    def add(ws: str, key: str, name: str, basis: str, text: str, *, description: str = "", retention: str = "",
            recipients: str = "", required: bool = False) -> None:
        pid, nid, digest = crypto.new_id(), crypto.new_id(), crypto.sha256_hex(text)
        bind.execute(_purposes.insert().values(
            id=pid, workspace_id=ws, key=key, name=name, lawful_basis=basis, description=description,
            retention_class=retention, recipients=recipients, enabled=True, required=required, latest_version=1,
            material_version=0, created_at=now, updated_at=now))
        bind.execute(_notices.insert().values(
            id=nid, workspace_id=ws, purpose_id=pid, version=1, language=P.DEFAULT_LANGUAGE, text=text, sha256=digest,
            material=False, created_at=now, created_by=None))
        notice_of[(ws, key)] = (nid, digest)

    for (ws,) in bind.execute(sa.text("SELECT id FROM workspaces")).all():
        for d in P.DEFAULTS:
            add(ws, d.key, d.name, d.lawful_basis, d.notice, description=d.description, retention=d.retention_class,
                recipients=d.recipients, required=d.required)
    for ws, raw in bind.execute(sa.text("SELECT workspace_id, purposes FROM sites ORDER BY created_at")).all():
        for item in _json(raw) or []:
            key = str(item.get("key", "")) if isinstance(item, dict) else ""
            if key and (ws, key) not in notice_of:
                label = str(item.get("label") or key)[:4000]
                add(ws, key, label[:200], P.CONSENT, label, retention="consent")
    rows = bind.execute(sa.text("SELECT id, workspace_id, site_id, consents, created_at FROM visitors")).all()
    for vid, ws, site_id, raw, created in rows:
        created_at = created if isinstance(created, datetime) else _parse(created, datetime.now(UTC))
        for key, choice in (_json(raw) or {}).items():
            if not isinstance(choice, dict) or (ws, key) not in notice_of:
                continue
            nid, digest = notice_of[(ws, key)]
            bind.execute(_records.insert().values(
                id=crypto.new_ordered_id(), workspace_id=ws, subject_id=vid, purpose=key,
                granted=choice.get("granted") is True, notice_id=nid, notice_version=1, notice_hash=digest,
                source=P.IMPORT, at=_time(bind, _parse(choice.get("at"), created_at)), site_id=site_id))


def downgrade() -> None:
    for sql in rules.drop_statements(op.get_bind().dialect.name):
        op.execute(sa.text(sql))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("purpose")
    op.drop_table("consent_erasure")
    with op.batch_alter_table("consent_records", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_records_subject_purpose")
        batch_op.drop_index(batch_op.f("ix_consent_records_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_consent_records_subject_id"))
        batch_op.drop_index(batch_op.f("ix_consent_records_at"))
    op.drop_table("consent_records")
    with op.batch_alter_table("consent_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_notices_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_consent_notices_purpose_id"))
    op.drop_table("consent_notices")
    with op.batch_alter_table("consent_purposes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_purposes_workspace_id"))
    op.drop_table("consent_purposes")
