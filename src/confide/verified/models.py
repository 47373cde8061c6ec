"""Verified visitor identity (ADR 0022): a site's signing secret, and the people it vouched for."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class IdentitySecret(Base):
    """A site's identity-verification secret, encrypted under a data key of its own (subject id:
    this row's id), so that rotating it destroys the old one for good. One per site at most."""

    __tablename__ = "identity_secrets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), unique=True)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(32))  # operator id


class VerifiedIdentity(Base):
    """One person a site vouched for: their user id on the site (a keyed blind index, never the
    value) -> the visitor record (data subject) that holds their conversations on every device.

    The subject's foreign key is checked at commit (deferred), so the row can be claimed first
    with one ``INSERT … ON CONFLICT DO NOTHING`` and the visitor created only by the unit that won
    the claim: two devices arriving at once make one person, with nothing left over."""

    __tablename__ = "verified_identities"
    __table_args__ = (UniqueConstraint("site_id", "external_id_bidx"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    external_id_bidx: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(
        ForeignKey("visitors.id", ondelete="CASCADE", deferrable=True, initially="DEFERRED"), unique=True
    )
    created_at: Mapped[datetime]
    last_verified_at: Mapped[datetime]
