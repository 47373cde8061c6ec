"""Personal-data registry entries of the tables of confide.identity (see core/personal_data.py for the format)."""

from __future__ import annotations

from confide.core.personal_data import (
    NOT_PERSONAL,
    Category,
    Export,
    Table,
    out,
    reach,
    staff_data,
)

_N = NOT_PERSONAL

TABLES: dict[str, Table] = {
    # Directory login and single sign-on (identity/): settings hold no one's personal data (the
    # service account is not a person; its password and the client secrets are stored encrypted).
    "ldap_directories": Table(
        {
            c: _N
            for c in (
                "id",
                "workspace_id",
                "enabled",
                "server_urls",
                "tls_mode",
                "ca_cert_pem",
                "bind_dn",
                "bind_password_enc",
                "user_base_dn",
                "user_filter",
                "attr_email",
                "attr_name",
                "attr_groups",
                "group_roles",
                "group_departments",
                "required_groups",
                "default_role",
                "auto_create",
                "login_domains",
                "timeout_s",
                "recheck_interval_s",
                "updated_at",
            )
        },
    ),
    "oidc_providers": Table(
        {
            c: _N
            for c in (
                "id",
                "workspace_id",
                "name",
                "enabled",
                "issuer",
                "client_id",
                "client_secret_enc",
                "scopes",
                "email_claim",
                "require_email_verified",
                "group_claim",
                "group_roles",
                "group_departments",
                "default_role",
                "allowed_domains",
                "auto_create",
                "created_at",
                "updated_at",
            )
        },
    ),
    "directory_accounts": Table(
        {
            "operator_id": _N,
            "workspace_id": _N,
            "source": _N,
            "provider_id": _N,
            "created_at": _N,
            "checked_at": _N,
            "external_id": staff_data(
                Category.ACCOUNT,
                "the directory entry's DN (often holds the name) or the provider's subject id; "
                "looked up at every directory log-in and re-check, so kept plain",
            ),
        },
        reach=reach("operator", "operator_id"),
        export=Export("Staff directory account", 240, out("source", "external_id", "created_at")),
    ),
}
