"""Every registered table with personal data has an export path and an erasure path.

The export path is the table's ``Export`` (core/personal_data.py): each personal column with
``exported=True`` is listed with a readable output name, and each encrypted one says how it is
decrypted (the associated data the domain writes, and whose key). The erasure path is each
personal column's ``Erasure`` plus a reach to its subject: ``erasure_problems`` is the place the
erasure helper's own check joins (``test_every_table_has_an_erasure_path``).
"""

from __future__ import annotations

import dataclasses

from confide import privacy_registry
from confide.core.db import Base
from confide.core.personal_data import (
    Export,
    Field,
    Out,
    Table,
    erasure_problems,
    export_problems,
    export_sections,
    out,
    rectifiable,
    rectification_problems,
    sealed,
    sealed_columns,
)

REGISTRY = privacy_registry.REGISTRY
META = Base.metadata


def _with(name: str, entry: Table) -> dict[str, Table]:
    return {**REGISTRY, name: entry}


def _export(name: str, **changes: object) -> Table:
    entry = REGISTRY[name]
    assert entry.export is not None
    return dataclasses.replace(entry, export=dataclasses.replace(entry.export, **changes))  # type: ignore[arg-type]


def test_every_table_with_exported_personal_data_has_an_export_path() -> None:
    assert export_problems(REGISTRY, META) == []


def test_every_table_has_an_erasure_path() -> None:
    # The erasure helper extends ``erasure_problems`` (its check joins here).
    assert erasure_problems(REGISTRY) == []


def test_a_table_without_export_fails() -> None:
    problems = export_problems(_with("offline_requests", dataclasses.replace(REGISTRY["offline_requests"],
                                                                           export=None)), META)
    assert problems == [
        "offline_requests: personal columns ['message_enc', 'page_url_enc'] are exported but the table has no export"
    ]


def test_a_new_exported_column_missing_from_the_export_fails() -> None:
    columns = {k: v for k, v in REGISTRY["messages"].export.columns.items() if k != "body_enc"}  # type: ignore[union-attr]
    assert export_problems(_with("messages", _export("messages", columns=columns)), META) == [
        "messages.body_enc: exported personal column missing from the table's export"
    ]


def test_an_encrypted_column_without_its_associated_data_fails() -> None:
    columns = {**REGISTRY["messages"].export.columns, "body_enc": Out("text")}  # type: ignore[union-attr]
    assert export_problems(_with("messages", _export("messages", columns=columns)), META) == [
        "messages.body_enc: encrypted but its export gives no associated data"
    ]


def test_wrong_columns_in_an_export_fail() -> None:
    columns = {
        **REGISTRY["prospects"].export.columns,  # type: ignore[union-attr]
        "shoe_size": Out("shoe_size"),
        "status": Out("status", aad="x"),
        **sealed("prospects", "name", key="owner"),
        "email_bidx": Out("email_hash"),
        "notes_enc": Out("notes", aad="prospects.notes:{row}"),
    }
    problems = export_problems(_with("prospects", _export("prospects", columns=columns)), META)
    assert problems == [
        "prospects.status: not encrypted but its export says how to decrypt it",
        "prospects.name_enc: key column 'owner' does not exist",
        "prospects.notes_enc: associated data names missing column 'row'",
        "prospects.shoe_size: exported but the table has no such column",
        "prospects.email_bidx: declared exported=False but listed in the export",
    ]


def test_an_output_name_used_twice_fails() -> None:
    columns = {**REGISTRY["conversations"].export.columns, "closed_at": Out("status")}  # type: ignore[union-attr]
    assert export_problems(_with("conversations", _export("conversations", columns=columns)), META) == [
        "conversations: output name 'status' used twice"
    ]


def test_a_table_left_out_must_say_why() -> None:
    left_out = dataclasses.replace(REGISTRY["offline_requests"], export=None, not_exported="kept for a test")
    assert export_problems(_with("offline_requests", left_out), META) == []


def test_a_table_with_no_personal_column_may_still_be_exported() -> None:
    assert REGISTRY["profiling_objections"].export == Export("Objection to profiling", 65, out("id", "created_at"))


def test_sections_come_in_a_stable_order_with_readable_titles() -> None:
    sections = export_sections(REGISTRY)
    names = [name for name, _ in sections]
    assert names[:3] == ["visitors", "conversations", "messages"]
    assert names == sorted(names, key=lambda n: (REGISTRY[n].export.order, n))  # type: ignore[union-attr]
    for name, spec in sections:
        assert spec.title[:1].isupper(), name
        assert all(o.name for o in spec.columns.values()), name


def test_every_encrypted_visitor_column_uses_the_domain_s_associated_data() -> None:
    # The domains write "<table>.<column>:<row id>" (chats.messages.aad, prospects._aad,
    # redaction.aad, visitors/offline/visitor_activity inline): each declaration names exactly that.
    assert REGISTRY["messages"].export.columns["body_enc"].aad == "messages.body:{id}"  # type: ignore[union-attr]
    assert REGISTRY["conversations"].export.columns["page_url_enc"].aad == (  # type: ignore[union-attr]
        "conversations.page_url:{id}"
    )
    assert REGISTRY["prospects"].export.columns["name_enc"].key == "subject_id"  # type: ignore[union-attr]
    assert REGISTRY["redacted_originals"].export.columns["text_enc"].aad == (  # type: ignore[union-attr]
        "redacted_originals.text:{id}"
    )


# ---------------------------------------------------------------- rectification (ADR 0032)
def test_every_identity_and_contact_column_has_a_rectification_path_and_every_ciphertext_rotates() -> None:
    assert rectification_problems(REGISTRY) == []


def test_an_identity_or_contact_column_without_a_rectification_path_fails() -> None:
    entry = REGISTRY["prospects"]
    assert entry.rectify is not None
    without = {k: v for k, v in entry.rectify.items() if k != "phone"}
    assert rectification_problems(_with("prospects", dataclasses.replace(entry, rectify=without))) == [
        "prospects.phone_enc: contact data without a rectification path"
    ]
    # A reason instead of a path is accepted (and shows in the declaration).
    reasoned = dataclasses.replace(entry, rectify=without, not_rectified="kept as entered, for a reason")
    assert rectification_problems(_with("prospects", reasoned)) == []


def test_an_encrypted_column_key_rotation_cannot_reach_fails() -> None:
    entry = REGISTRY["privacy_requests"]
    # without its own key's note and its export (whose Outs name the key wrapped in the row)
    bare = dataclasses.replace(entry, own_key="", export=None, not_exported="a test")
    assert rectification_problems(_with("privacy_requests", bare)) == [
        "privacy_requests.email_enc: encrypted, but no Out says how to re-encrypt it on key rotation",
        "privacy_requests.details_enc: encrypted, but no Out says how to re-encrypt it on key rotation",
    ]


def test_a_rectification_declaration_that_does_not_fit_fails() -> None:
    entry = REGISTRY["visitors"]
    assert entry.rectify is not None
    clean = entry.rectify["email"].clean
    broken = {
        **entry.rectify,
        "nickname": Field("name_enc", clean),
        "email": Field("email_bidx", clean, index=("no_such_column", lambda b, w, v: v)),
    }
    problems = rectification_problems(_with("visitors", dataclasses.replace(entry, rectify=broken)))
    assert sorted(problems) == sorted([
        "visitors: rectifies unknown field 'nickname'",
        "visitors.email_bidx: rectified but not an encrypted personal column",
        "visitors: blind-index column 'no_such_column' does not exist",
        "visitors.email_enc: contact data without a rectification path",
    ])


def test_every_rectified_field_is_checked_by_its_domain_and_reaches_the_stores() -> None:
    held = {name: {f for f in (e.rectify or {})} for name, e in REGISTRY.items() if e.rectify}
    assert held == {"visitors": {"name", "email", "phone", "answer"}, "prospects": {"name", "email", "phone"},
                    "profiling_objections": {"email"}}
    assert [name for name, _, _ in rectifiable(REGISTRY, "email")] == ["profiling_objections", "prospects", "visitors"]
    # Every ciphertext a visitor's key rotation re-encrypts comes from the registry's Out declarations.
    assert set(sealed_columns(REGISTRY)) == {"activity_pages", "conversations", "messages", "offline_requests",
                                             "prospects", "redacted_originals", "visitors"}


def test_a_json_field_without_its_form_fails() -> None:
    entry = REGISTRY["visitors"]
    assert entry.rectify is not None
    answer = dataclasses.replace(entry.rectify["answer"], form=None)
    broken = dataclasses.replace(entry, rectify={**entry.rectify, "answer": answer})
    assert rectification_problems(_with("visitors", broken)) == [
        "visitors.fields_enc: a JSON field without the form that checks it"
    ]
