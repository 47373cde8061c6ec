"""Personal-data registry entries of the tables of confide.users (see core/personal_data.py for the format)."""

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
    "operators": Table(
        {
            "id": _N,
            "workspace_id": _N,
            "password_hash": _N,
            "role": _N,
            "status": _N,
            "max_chats": _N,
            "disabled": _N,
            "must_change_password": _N,
            "password_changed_at": _N,
            "last_assigned_at": _N,
            "created_at": _N,
            "last_login_at": _N,  # mail helper (0008): the account review's last login
            "last_login_method": _N,
            "email": staff_data(Category.ACCOUNT, "login name; looked up on every login, so kept plain"),
            "name": staff_data(Category.IDENTITY, "shown to visitors as the operator's name"),
        },
        reach=reach("operator", "id"),
        export=Export("Staff account", 200, out("id", "email", "name", "created_at")),
        not_rectified="staff correct an account's name in user management (users.manage), audited there",
    ),
    "operator_departments": Table({"operator_id": _N, "department_id": _N}, reach=reach("operator", "operator_id")),
    # Custom roles: a name and description an administrator chose for a job, not about a person.
    "roles": Table(
        {
            c: _N
            for c in ("id", "workspace_id", "name", "description", "scope", "permissions", "created_at", "updated_at")
        },
    ),
    # Pseudonymous ids and a time a few seconds ahead; rows are deleted once expired (ADR 0005).
    # reach: an operator's sockets by operators.id; a visitor's by the conversation id
    "presence": Table(
        {c: _N for c in ("kind", "subject_id", "node_id", "expires_at")},
        reach=(
            reach("operator", "subject_id", when={"kind": "operator"}),
            reach("visitor", "subject_id -> conversations.visitor_id", when={"kind": "visitor"}),
        ),
    ),
    # accounts (ADR 0012): sessions keep a short client description ("Firefox on Linux") and no
    # address; the throttle keys are keyed hashes of a typed e-mail or an address, forgotten after a day.
    "operator_sessions": Table(
        {
            **{
                c: _N
                for c in (
                    "id",
                    "token_digest",
                    "operator_id",
                    "created_at",
                    "expires_at",
                    "revoked_at",
                    "last_seen_at",
                    "idle_timeout_s",
                    "method",
                    "end_reason",
                )
            },
            "client": staff_data(Category.ACCOUNT, "browser and system family only, shown in the user's session list"),
        },
        reach=reach("operator", "operator_id"),
        export=Export("Staff sessions", 210, out("id", "created_at", "last_seen_at", "method", "client")),
    ),
    "password_history": Table(
        {c: _N for c in ("id", "operator_id", "password_hash", "created_at")}, reach=reach("operator", "operator_id")
    ),
    "account_policies": Table(
        {
            c: _N
            for c in (
                "workspace_id",
                "password_min_length",
                "password_max_age_days",
                "session_idle_timeout_s",
                "session_max_per_operator",
                "updated_at",
            )
        },
    ),
    # The invited person's address and name, until they accept (then the account holds them).
    # reach: the invitee by the invitation's id (as jobs.subject_id names them), then the account it made
    "operator_invites": Table(
        {
            **{
                c: _N
                for c in (
                    "id",
                    "workspace_id",
                    "token_digest",
                    "role",
                    "department_ids",
                    "invited_by",
                    "created_at",
                    "expires_at",
                    "used_at",
                    "revoked_at",
                    "operator_id",
                )
            },
            "email": staff_data(Category.ACCOUNT, "the invited login name; compared with existing accounts"),
            "name": staff_data(Category.IDENTITY, "the name the invitation proposes"),
        },
        reach=(reach("operator", "id"), reach("operator", "operator_id")),
        export=Export("Staff invitations", 220, out("id", "email", "name", "role", "created_at", "used_at")),
        not_rectified="an invitation is revoked and sent again with the right name (user management)",
    ),
    "account_review_policies": Table({c: _N for c in ("workspace_id", "interval_days", "inactive_days", "updated_at")}),
    # Account ids with role, method and state codes at sign-off: ids and codes only, no names.
    "account_reviews": Table(
        {c: _N for c in ("id", "workspace_id", "signed_by", "signed_at", "account_count", "accounts")}
    ),
}
