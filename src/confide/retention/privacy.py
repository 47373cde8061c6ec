"""Personal-data registry entries of the tables of confide.retention (see core/personal_data.py)."""

from __future__ import annotations

from confide.core.personal_data import NOT_PERSONAL, Category, Storage, Table, not_personal, reach, visitor_data

_N = NOT_PERSONAL
HOLD_PURPOSE = "keep data under a legal hold"
HOLD_BASIS = "Art. 17(3)(e) and 6(1)(c)/(f): establishment, exercise or defence of legal claims"
_REASON = visitor_data(
    Category.CONTENT,
    Storage.PLAIN,
    retention="legal_hold",
    purpose=HOLD_PURPOSE,
    basis=HOLD_BASIS,
    note="written by staff (a case reference is asked for, not personal details); kept with the hold",
)

TABLES: dict[str, Table] = {
    "retention_policies": Table(
        not_personal("workspace_id", "scope", "category", "days", "updated_at", "updated_by")
    ),
    "legal_holds": Table(
        {
            "id": _N,
            "workspace_id": _N,
            "target_type": _N,
            "target_id": _N,
            "placed_by": _N,
            "placed_at": _N,
            "lifted_by": _N,
            "lifted_at": _N,
            "reason": _REASON,
            "lift_reason": _REASON,
        },
        # A hold is placed for legal claims (Art. 17(3)(e)); its reasons are staff notes about a
        # case, which Art. 15(4) and 23(1)(j) allow a controller to keep out of an access copy.
        not_exported="staff notes on a legal claim (Art. 15(4), 23(1)(j)); the hold itself is stated on request",
        reach=(
            reach("visitor", "target_id", when={"target_type": "visitor"}),
            reach("visitor", "target_id -> conversations.visitor_id", when={"target_type": "conversation"}),
        ),
    ),
}
