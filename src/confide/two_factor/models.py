"""The tables of two-factor authentication. Secrets never sit in plain text: the TOTP secret is
encrypted (``crypto.FactorBox``), recovery codes and tickets are stored as digests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base

_BIG = BigInteger().with_variant(Integer(), "sqlite")


class TotpFactor(Base):
    """An operator's authenticator app. ``confirmed_at`` is None while enrolment waits for a first
    code; ``last_used_step`` (the 30-second step of the last code accepted) refuses a replay."""

    __tablename__ = "totp_factors"

    operator_id: Mapped[str] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), primary_key=True)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    last_used_step: Mapped[int | None] = mapped_column(_BIG, nullable=True)


class RecoveryCode(Base):
    """One single-use recovery code, as a keyed digest; ``used_at`` set when spent."""

    __tablename__ = "recovery_codes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    operator_id: Mapped[str] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class PasskeyCredential(Base):
    """A WebAuthn credential (passkey or security key) of an operator, with the label they gave it."""

    __tablename__ = "passkey_credentials"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    operator_id: Mapped[str] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)  # base64url, at most 1023 bytes
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE
    sign_count: Mapped[int] = mapped_column(_BIG, default=0)
    label: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class TwoFactorTicket(Base):
    """Between a passed first factor and the session: single-use (``used_at``), expiring, with a
    bounded number of wrong codes. The browser holds the token; the row holds its digest."""

    __tablename__ = "two_factor_tickets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[str] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(20))  # the first factor: password | ldap | oidc
    stage: Mapped[str] = mapped_column(String(10))  # verify | enrol
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]


class WebAuthnChallenge(Base):
    """The one pending WebAuthn challenge of an operator per ceremony (``register`` | ``login``):
    replaced by a new one, deleted when used, refused once expired."""

    __tablename__ = "webauthn_challenges"

    operator_id: Mapped[str] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(10), primary_key=True)
    challenge: Mapped[str] = mapped_column(String(64))  # base64url
    expires_at: Mapped[datetime]


class TwoFactorPolicy(Base):
    """Who must use a second factor in a workspace: everyone, or the holders of these roles (keys)."""

    __tablename__ = "two_factor_policies"

    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True)
    require_all: Mapped[bool] = mapped_column(Boolean, default=False)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime]
