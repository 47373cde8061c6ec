"""What the directory settings accept (the settings page's forms validate against these)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from confide.auth.providers.ldap import build_filter
from confide.auth.providers.oidc import check_url
from confide.permissions.policy import BUILT_IN_ROLES, built_in, is_built_in

_ATTR = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_CLAIM = re.compile(r"^[A-Za-z0-9_.:/-]{1,100}$")
_PEM = re.compile(r"^-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----\s*$")
DN = Annotated[str, Field(min_length=3, max_length=1000)]
RoleKey = Annotated[str, Field(min_length=1, max_length=40)]


_ROLE_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def _role(value: str) -> str:
    """A built-in role's key (canonical: "admin" is "administrator") or what can be a custom role's
    id; the service then checks that the workspace has that role (``users.roles.checked_key``)."""
    value = value.strip()
    if is_built_in(value):
        return built_in(value).key
    if not _ROLE_ID.match(value):
        raise ValueError(f"“{value[:40]}” is not a role (one of: {', '.join(BUILT_IN_ROLES)}, or a custom role)")
    return value


def _domains(values: list[str]) -> list[str]:
    out = []
    for raw in values:
        value = raw.strip().lower().lstrip("@")
        if not _DOMAIN.match(value):
            raise ValueError(f"“{raw.strip()[:60]}” is not a domain name like example.com")
        out.append(value)
    return list(dict.fromkeys(out))


def _no_control(value: str, what: str) -> str:
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"the {what} must be one line")
    return value.strip()


class GroupRole(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group: Annotated[str, Field(min_length=1, max_length=1000)]
    role: RoleKey

    _r = field_validator("role")(_role)
    _g = field_validator("group")(lambda v: _no_control(v, "group"))


class GroupDepartment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group: Annotated[str, Field(min_length=1, max_length=1000)]
    department_id: Annotated[str, Field(min_length=1, max_length=32)]

    _g = field_validator("group")(lambda v: _no_control(v, "group"))


class LdapSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    server_urls: list[Annotated[str, Field(max_length=500)]] = Field(default_factory=list, max_length=5)
    tls_mode: Literal["ldaps", "starttls", "none"] = "starttls"
    ca_cert_pem: Annotated[str, Field(max_length=20_000)] | None = None
    bind_dn: Annotated[str, Field(max_length=1000)] = ""
    bind_password: Annotated[str, Field(max_length=1024)] | None = None  # None: keep the stored one
    user_base_dn: Annotated[str, Field(max_length=1000)] = ""
    user_filter: Annotated[str, Field(max_length=1000)] = "(|(mail={login})(sAMAccountName={login})(uid={login}))"
    attr_email: str = "mail"
    attr_name: str = "cn"
    attr_groups: str = "memberOf"
    group_roles: list[GroupRole] = Field(default_factory=list, max_length=100)
    group_departments: list[GroupDepartment] = Field(default_factory=list, max_length=200)
    required_groups: list[DN] = Field(default_factory=list, max_length=50)
    default_role: RoleKey = "operator"
    auto_create: bool = False
    login_domains: list[str] = Field(default_factory=list, max_length=50)
    timeout_s: Annotated[int, Field(ge=1, le=30)] = 5
    recheck_interval_s: Annotated[int, Field(ge=30, le=86_400)] = 300

    _role = field_validator("default_role")(_role)
    _domains = field_validator("login_domains")(_domains)

    @field_validator("server_urls")
    @classmethod
    def _urls(cls, values: list[str]) -> list[str]:
        out = []
        for raw in values:
            value = raw.strip()
            if not re.match(r"^ldaps?://[A-Za-z0-9.\-\[\]:]+(:\d{1,5})?/?$", value):
                raise ValueError(f"“{value[:60]}” is not a server URL like ldaps://dc1.example.com:636")
            out.append(value)
        return out

    @field_validator("attr_email", "attr_name", "attr_groups")
    @classmethod
    def _attr(cls, value: str) -> str:
        if not _ATTR.match(value.strip()):
            raise ValueError(f"“{value.strip()[:64]}” is not an LDAP attribute name")
        return value.strip()

    @field_validator("bind_dn", "user_base_dn")
    @classmethod
    def _dn(cls, value: str) -> str:
        return _no_control(value, "DN")

    @field_validator("ca_cert_pem")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not _PEM.match(value.strip()):
            raise ValueError("the CA certificate must be PEM (-----BEGIN CERTIFICATE----- …)")
        return value.strip() + "\n"

    @field_validator("user_filter")
    @classmethod
    def _filter(cls, value: str) -> str:
        value = _no_control(value, "user filter")
        try:
            sample = build_filter(value, "x")
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        depth = 0
        for ch in sample:
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth < 0:
                break
        if not sample.startswith("(") or depth != 0:
            raise ValueError("the user filter must be one parenthesised LDAP filter")
        return value

    @model_validator(mode="after")
    def _complete(self) -> LdapSettingsIn:
        for url in self.server_urls:
            if (self.tls_mode == "ldaps") != url.startswith("ldaps://"):
                raise ValueError("use ldaps:// URLs with LDAPS, and ldap:// URLs with StartTLS or no TLS")
        if self.enabled and not (self.server_urls and self.bind_dn and self.user_base_dn):
            raise ValueError("to turn the directory on, give its server URL, service account DN and user base DN")
        return self


class OidcProviderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=100)]
    enabled: bool = True
    issuer: Annotated[str, Field(min_length=8, max_length=500)]
    client_id: Annotated[str, Field(min_length=1, max_length=500)]
    client_secret: Annotated[str, Field(max_length=2000)] | None = None  # None: keep the stored one
    scopes: Annotated[str, Field(max_length=500)] = "openid email profile"
    email_claim: str = "email"
    require_email_verified: bool = True
    group_claim: str = "groups"
    group_roles: list[GroupRole] = Field(default_factory=list, max_length=100)
    group_departments: list[GroupDepartment] = Field(default_factory=list, max_length=200)
    default_role: RoleKey = "operator"
    allowed_domains: list[str] = Field(default_factory=list, max_length=50)
    auto_create: bool = False

    _role = field_validator("default_role")(_role)
    _domains = field_validator("allowed_domains")(_domains)

    @field_validator("name", "client_id")
    @classmethod
    def _line(cls, value: str) -> str:
        value = _no_control(value, "value")
        if not value:
            raise ValueError("this field cannot be empty")
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return check_url(value)

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: str) -> str:
        scopes = value.split()
        if any(not re.match(r"^[\x21\x23-\x5b\x5d-\x7e]{1,100}$", s) for s in scopes):
            raise ValueError("scopes are words separated by spaces")
        if "openid" not in scopes:
            scopes.insert(0, "openid")
        return " ".join(dict.fromkeys(scopes))

    @field_validator("email_claim", "group_claim")
    @classmethod
    def _claim(cls, value: str) -> str:
        value = value.strip()
        if value and not _CLAIM.match(value):
            raise ValueError(f"“{value[:60]}” is not a claim name")
        return value
