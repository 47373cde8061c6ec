from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class LdapDirectory(Base):
    """A workspace's LDAP / Active Directory (one at most). The service account's password is
    stored only encrypted (AES-GCM under a data key of this row, wrapped by the master key)."""

    __tablename__ = "ldap_directories"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    server_urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    tls_mode: Mapped[str] = mapped_column(String(10), default="starttls")  # ldaps | starttls | none
    ca_cert_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    bind_dn: Mapped[str] = mapped_column(String(1000), default="")
    bind_password_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    user_base_dn: Mapped[str] = mapped_column(String(1000), default="")
    user_filter: Mapped[str] = mapped_column(String(1000), default="")
    attr_email: Mapped[str] = mapped_column(String(100), default="mail")
    attr_name: Mapped[str] = mapped_column(String(100), default="cn")
    attr_groups: Mapped[str] = mapped_column(String(100), default="memberOf")
    # [{"group": DN, "role": role key}], first match wins; [{"group": DN, "department_id": id}].
    group_roles: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    group_departments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    required_groups: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: any entry of the base
    default_role: Mapped[str] = mapped_column(String(40), default="operator")
    auto_create: Mapped[bool] = mapped_column(Boolean, default=False)
    login_domains: Mapped[list[str]] = mapped_column(JSON, default=list)  # for unknown logins; empty: any
    timeout_s: Mapped[int] = mapped_column(Integer, default=5)
    recheck_interval_s: Mapped[int] = mapped_column(Integer, default=300)
    updated_at: Mapped[datetime]


class OidcProvider(Base):
    """An OpenID Connect provider of a workspace ("Sign in with …"). The client secret is stored
    only encrypted, like the LDAP service account's password."""

    __tablename__ = "oidc_providers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))  # the button's label
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(500))
    client_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    scopes: Mapped[str] = mapped_column(String(500), default="openid email profile")
    email_claim: Mapped[str] = mapped_column(String(100), default="email")
    require_email_verified: Mapped[bool] = mapped_column(Boolean, default=True)
    group_claim: Mapped[str] = mapped_column(String(100), default="groups")
    group_roles: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    group_departments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    default_role: Mapped[str] = mapped_column(String(40), default="operator")
    allowed_domains: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: any
    auto_create: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DirectoryAccount(Base):
    """An operator whose first factor is a directory: LDAP (``external_id`` = the entry's DN, checked
    again every few minutes while they have a session) or an OpenID provider (``external_id`` = the
    ID token's ``sub``)."""

    __tablename__ = "directory_accounts"
    __table_args__ = (UniqueConstraint("source", "provider_id", "external_id"),)

    operator_id: Mapped[str] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(10))  # ldap | oidc
    provider_id: Mapped[str] = mapped_column(String(32))  # the LdapDirectory or OidcProvider id
    external_id: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime]
    checked_at: Mapped[datetime] = mapped_column(index=True)  # last time the directory said yes
