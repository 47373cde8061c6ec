"""Personal-data registry entries of the tables of confide.two_factor (see core/personal_data.py for the format)."""

from __future__ import annotations

from confide.core.personal_data import (
    NOT_PERSONAL,
    STAFF,
    STAFF_BASIS,
    Category,
    Erasure,
    Export,
    Personal,
    Storage,
    Table,
    out,
    reach,
    staff_data,
)

_N = NOT_PERSONAL

TABLES: dict[str, Table] = {
    # -- two-factor (ADR 0014): the TOTP secret encrypted, codes and tickets as digests only.
    "totp_factors": Table(
        {
            "operator_id": _N,
            "created_at": _N,
            "confirmed_at": _N,
            "last_used_step": _N,
            "secret_enc": Personal(
                Category.ACCOUNT,
                "operator",
                STAFF,
                STAFF_BASIS,
                "account",
                Storage.ENCRYPTED,
                Erasure.DELETE_ROW,
                exported=False,
                note="TOTP shared secret, AES-GCM under a key derived from the master key; never exported",
            ),
        },
        reach=reach("operator", "operator_id"),
    ),
    "recovery_codes": Table(
        {c: _N for c in ("id", "operator_id", "code_digest", "created_at", "used_at")},
        reach=reach("operator", "operator_id"),
    ),
    "passkey_credentials": Table(
        {
            "id": _N,
            "operator_id": _N,
            "credential_id": _N,
            "public_key": _N,
            "sign_count": _N,
            "created_at": _N,
            "last_used_at": _N,
            "label": staff_data(Category.ACCOUNT, "the name an operator gave their passkey (e.g. a device)"),
        },
        reach=reach("operator", "operator_id"),
        export=Export("Staff passkeys", 230, out("id", "label", "created_at")),
    ),
    "two_factor_tickets": Table(
        {
            c: _N
            for c in (
                "id",
                "token_digest",
                "operator_id",
                "method",
                "stage",
                "attempts",
                "created_at",
                "expires_at",
                "used_at",
            )
        },
        reach=reach("operator", "operator_id"),
    ),
    "webauthn_challenges": Table(
        {c: _N for c in ("operator_id", "purpose", "challenge", "expires_at")}, reach=reach("operator", "operator_id")
    ),
    "two_factor_policies": Table({c: _N for c in ("workspace_id", "require_all", "roles", "updated_at")}),
}
