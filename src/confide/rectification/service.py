"""Rectification of a person's details (GDPR Art. 16, issue 8 point 6, ADR 0032, docs/privacy/rights.md).

``rectify`` replaces one field (name, e-mail, phone, or ``answer:<key>``: a custom pre-chat
answer, checked by the site's form field) of a person everywhere it is held, and
leaves the old value unrecoverable, in ONE transaction:

1. the new value is checked by every store that holds the field, exactly as that store checks it
   on entry (``Field.clean`` in the registry: the pre-chat form's rules for a visitor, an operator's
   entry rules for a prospect); one refusal and nothing is written;
2. the visitors are locked (``FOR UPDATE``, in id order) through ``permissions``
   (``subjects.rectify``; another workspace's id looks exactly like a missing one);
3. the person's conversations are locked (the message writer's first lock), then their data keys
   (``KeyRing.lock``, ``FOR UPDATE`` in id order; writers of new ciphertexts read their key under a
   shared lock, ``KeyRing.for_write``, so a message written at the same time is either stored
   before and re-encrypted here, or stored after with the new key);
4. every row the registry reaches from the person is read first (``conditions_of``: an objection
   reached through the e-mail's blind index still matches), locked;
5. **key rotation**: each data key of the person (the visitor's, and any other subject key their
   rows name: ``Out.key``) is replaced by a new one, and every ciphertext under it (every encrypted
   column with an ``Out`` in the registry, ``sealed_columns``) is decrypted with the old key and
   encrypted with the new one, the corrected value in place of the old; a copy of an old
   ciphertext (a backup) can no longer be read with any key there is;
6. the blind indexes of the field are rebuilt (``Field.index``: ``visitors.email_bidx``,
   ``prospects.email_bidx``, ``profiling_objections.email_bidx``) and so are the term tables of
   the changed rows (``Table.terms``: ``visitor_terms``, ``prospect_terms``);
7. the audit row names ids, the field's name and counts, never a value; after the commit every node
   forgets the old keys (``KeysDestroyed``).

On SQLite the updates run with ``PRAGMA secure_delete`` and the WAL is truncated after the commit,
as for erasure. Not reached (ADR 0032): a data-subject request's own address (kept as received,
proof of handling), a queued e-mail's payload (sent as queued), erasure tombstones (they name
erased people, not this one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from sqlalchemy import ColumnElement, and_, bindparam, delete, exists, insert, or_, select, text, update
from sqlalchemy import Table as SqlTable

from confide import privacy_registry
from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core.crypto import DataKey
from confide.core.db import Base, UnitOfWork
from confide.core.errors import Invalid, NotFound
from confide.core.personal_data import Field, Out, Subject, rectifiable, sealed_columns
from confide.core.runtime import Runtime
from confide.erasure.service import request_id_of, visitor_ids_of
from confide.permissions.access import access_visitors_to_rectify
from confide.realtime import events
from confide.workspaces import service as workspaces

log = structlog.get_logger(__name__)

REASONS = ("request", "staff", "other")  # codes, never free text
MAX_VALUE = 4000  # no store takes more; each store's own limit is checked by its ``clean``
_ROOT = "visitors"


def fields() -> list[str]:
    """The fields some table of the registry declares correctable."""
    return sorted({f for entry in privacy_registry.REGISTRY.values() for f in (entry.rectify or {})})


def _json_fields() -> set[str]:
    return {f for e in privacy_registry.REGISTRY.values() for f, where in (e.rectify or {}).items() if where.json}


def field_of(value: object) -> str:
    """``name``, ``email``, ``phone`` or ``answer:<key>`` (a custom pre-chat answer)."""
    known = fields()
    plain = [f for f in known if f not in _json_fields()]
    shown = ", ".join([*plain, *(f"{f}:<key>" for f in sorted(_json_fields()))])
    if not isinstance(value, str):
        raise Invalid(f"field must be one of {shown}")
    base, sep, key = value.partition(":")
    if base not in known or bool(sep) != (base in _json_fields()):
        raise Invalid(f"field must be one of {shown}")
    if sep and (not key or len(key) > 40 or key in known):
        raise Invalid(f"{base}: give the key of a custom pre-chat field (name, e-mail and phone are fields "
                      "of their own)")
    return value


def _base(field: str) -> tuple[str, str | None]:
    base, sep, key = field.partition(":")
    return base, (key if sep else None)


def reason_of(value: object) -> str:
    if value not in REASONS:
        raise Invalid(f"reason must be one of {', '.join(REASONS)}")
    return str(value)


def cleaned(field: str, value: object) -> dict[str, str]:
    """Per table holding ``field``, the value it stores, checked by that table's domain."""
    if not isinstance(value, str):
        raise Invalid(f"{field}: must be text")
    if len(value) > MAX_VALUE:
        raise Invalid(f"{field} is too long")
    base, _key = _base(field)
    return {table: where.clean(base, value) for table, where, _ in rectifiable(privacy_registry.REGISTRY, base)}


class _Row:
    __slots__ = ("pk", "subject", "table", "values")

    def __init__(self, table: str, pk: tuple[Any, ...], subject: str, values: dict[str, Any]) -> None:
        self.table, self.pk, self.subject, self.values = table, pk, subject, values


def _key_of(row: Mapping[str, Any], how: Out, visitor_id: str) -> str:
    return visitor_id if how.key is None else str(row[how.key])


def _pk_where(table: SqlTable, pk: tuple[Any, ...]) -> ColumnElement[bool]:
    return and_(*(c == v for c, v in zip(table.primary_key.columns, pk, strict=True)))


def _any(table: SqlTable, per_subject: list[tuple[str, dict[str, ColumnElement[bool]]]]) -> ColumnElement[bool]:
    conds = [conds[table.name] for _, conds in per_subject if table.name in conds]
    return conds[0] if len(conds) == 1 else or_(*conds)


async def rectify(
    rt: Runtime,
    uow: UnitOfWork,
    actor: OperatorActor | None,
    workspace_id: str,
    visitor_ids: Iterable[str],
    field: str,
    value: object,
    *,
    request_id: str | None = None,
    reason: str = "request",
) -> dict[str, Any]:
    """Correct ``field`` of the person with these visitor ids to ``value`` everywhere (see the
    module docstring). ``actor=None``: the CLI. Answers ids and counts (no value)."""
    ids = visitor_ids_of(list(visitor_ids))
    request = request_id_of(request_id)
    reason = reason_of(reason)
    field = field_of(field)
    base, answer_key = _base(field)
    new_values = cleaned(field, value)  # every store's check, before anything is read or written
    session = uow.session
    if rt.db.is_sqlite:
        await session.execute(text("PRAGMA secure_delete = ON"))
    found = await access_visitors_to_rectify(session, actor, workspace_id, ids, for_update=True)
    if len(found) != len(ids):
        raise NotFound("visitor not found")
    per_subject = [(vid, privacy_registry.conditions_of(Subject("visitor", vid))) for vid in ids]
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    sealed = sealed_columns(privacy_registry.REGISTRY)
    holders = {name: (where, how) for name, where, how in rectifiable(privacy_registry.REGISTRY, base)}
    forms: dict[str, dict[str, Any]] = {}  # site id -> its pre-chat form by key (JSON fields)

    # The message writer's order: conversations first, then the keys.
    conversations = tables["conversations"]
    await session.execute(
        select(conversations.c.id).where(_any(conversations, per_subject)).order_by(conversations.c.id)
        .with_for_update()
    )
    subject_ids = set(ids)
    for name, columns in sealed.items():
        key_columns = sorted({how.key for how in columns.values() if how.key})
        if key_columns:
            table = tables[name]
            rows = await session.execute(select(*(table.c[k] for k in key_columns)).where(_any(table, per_subject)))
            subject_ids.update(str(v) for r in rows for v in r if v)
    old_keys = await rt.keyring.lock(session, subject_ids)

    # Every row first (reaches through the e-mail's blind index still match), then the writes.
    plan: list[_Row] = []
    seen: set[tuple[str, tuple[Any, ...]]] = set()
    for table in Base.metadata.sorted_tables:
        if table.name not in sealed and table.name not in holders:
            continue
        pk = list(table.primary_key.columns)
        for vid, conds in per_subject:
            if table.name not in conds:
                continue
            rows = await session.execute(select(table).where(conds[table.name]).order_by(*pk).with_for_update())
            for r in rows.mappings():
                key = tuple(r[c.name] for c in pk)
                if (table.name, key) not in seen:
                    seen.add((table.name, key))
                    plan.append(_Row(table.name, key, vid, dict(r)))

    new_keys: dict[str, DataKey] = {sid: await rt.keyring.replace(session, sid) for sid in sorted(old_keys)}
    counts: dict[str, int] = {}
    rewritten: dict[str, list[dict[str, Any]]] = {}
    for row in plan:
        table = tables[row.table]
        changes: dict[str, Any] = {}
        plain: dict[str, Any] = {}
        for column, how in sealed.get(row.table, {}).items():
            blob, sid = row.values[column], _key_of(row.values, how, row.subject)
            if blob is None or sid not in old_keys:
                plain[column] = None
                continue
            aad = how.aad.format(**row.values) if how.aad else ""
            old = old_keys[sid]
            plain[column] = old.decrypt_json(bytes(blob), aad) if how.json else old.decrypt(bytes(blob), aad)
        held = holders.get(row.table)
        corrected = False
        if held is not None:
            where = held[0]
            if where.json and where.form is not None and answer_key is not None:
                spec = (await _form(uow, forms, str(row.values[where.form[0]]))).get(answer_key)
                if spec is None:  # the transaction rolls back: nothing is written
                    raise Invalid(f"unknown field: {answer_key[:40]}")
                answers = dict(plain.get(where.column) or {})
                answers[answer_key] = where.form[1](spec, new_values[row.table])
                plain[where.column] = answers
                corrected = True
            elif where.column and (plain.get(where.column) is not None or row.table == _ROOT):
                plain[where.column] = new_values[row.table]
                corrected = True
            elif not where.column:
                corrected = True
            if corrected and where.index is not None:
                changes[where.index[0]] = where.index[1](rt.bidx, workspace_id, new_values[row.table])
        for column, how in sealed.get(row.table, {}).items():
            if plain.get(column) is None:
                continue
            sid = _key_of(row.values, how, row.subject)
            aad = how.aad.format(**row.values) if how.aad else ""
            new = new_keys[sid]
            changes[column] = new.encrypt_json(plain[column], aad) if how.json else new.encrypt(plain[column], aad)
        if held is not None and not held[0].column and corrected:
            await _move_index(uow, table, row, held[0], changes, workspace_id)
        elif changes:
            rewritten.setdefault(row.table, []).append({"_pk": row.pk, **changes})
        if corrected:
            counts[row.table] = counts.get(row.table, 0) + 1
            entry = privacy_registry.REGISTRY[row.table]
            if entry.terms is not None and held is not None and held[0].column:
                await _reindex(rt, uow, tables[entry.terms.table], entry.terms.column, entry, row, plain,
                               workspace_id)
    for name, updates in rewritten.items():
        await _write(uow, tables[name], updates)
    reencrypted = sum(len(u) for u in rewritten.values())

    rotated = sorted(new_keys)
    await audit.record(
        rt, uow, "subject.rectified",
        actor=actor,
        actor_type=None if actor is not None else "system",
        workspace_id=workspace_id,
        target_type="visitor",
        target_id=ids[0],
        detail={"visitors": ids, "field": field, "request": request, "reason": reason,
                "rows": sum(counts.values()), "reencrypted": reencrypted, "keys_rotated": len(rotated)},
    )
    if rotated:
        keyring = rt.keyring

        async def forget_here() -> None:  # this node at once; the others by the event
            for sid in rotated:
                keyring.forget(sid)

        uow.after_commit(forget_here)
        events.publish(rt, uow, events.KeysDestroyed(tuple(rotated)))
    if rt.db.is_sqlite:
        rt.db.truncate_wal_after_commit(uow)
    log.info("subject_rectified", visitors=len(ids), field=field, rows=sum(counts.values()),
             keys_rotated=len(rotated))
    return {"visitor_ids": ids, "field": field, "tables": dict(sorted(counts.items())),
            "reencrypted_rows": reencrypted, "keys_rotated": len(rotated), "request_id": request,
            "reason": reason}


async def _form(uow: UnitOfWork, forms: dict[str, dict[str, Any]], site_id: str) -> dict[str, Any]:
    if site_id not in forms:
        site = await workspaces.get_site(uow, site_id)
        forms[site_id] = {f["key"]: f for f in (site.prechat_fields if site is not None else [])}
    return forms[site_id]


async def _write(uow: UnitOfWork, table: SqlTable, updates: list[dict[str, Any]]) -> None:
    """The rows' new ciphertexts (and indexes), grouped by the columns they change."""
    pk = list(table.primary_key.columns)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for u in updates:
        groups.setdefault(tuple(sorted(k for k in u if k != "_pk")), []).append(u)
    for columns, rows in groups.items():
        stmt = update(table).where(*(c == bindparam(f"k_{c.name}") for c in pk)).values(
            {c: bindparam(f"v_{c}") for c in columns}
        )
        params = [
            {**{f"k_{c.name}": v for c, v in zip(pk, r["_pk"], strict=True)}, **{f"v_{c}": r[c] for c in columns}}
            for r in rows
        ]
        await (await uow.session.connection()).execute(stmt, params)


async def _move_index(uow: UnitOfWork, table: SqlTable, row: _Row, where: Field, changes: dict[str, Any],
                      workspace_id: str) -> None:
    """A row holding only the value's blind index (an objection): it follows the corrected value;
    when the workspace already holds a row for the new value (the same objection), the old goes."""
    assert where.index is not None
    column, digest = where.index[0], changes[where.index[0]]
    dup = exists().where(table.c[column] == digest, table.c.workspace_id == workspace_id)
    if await uow.session.scalar(select(dup)):
        await uow.session.execute(delete(table).where(_pk_where(table, row.pk)))
    else:
        await uow.session.execute(update(table).where(_pk_where(table, row.pk)).values({column: digest}))


async def _reindex(rt: Runtime, uow: UnitOfWork, terms: SqlTable, column: str, entry: Any, row: _Row,
                   plain: dict[str, Any], workspace_id: str) -> None:
    """The row's term rows rebuilt from its values now (the domain's ``Terms.of``)."""
    row_id = row.values["id"]
    await uow.session.execute(delete(terms).where(terms.c[column] == row_id))
    found = entry.terms.of(rt.bidx, workspace_id, plain)
    if found:
        await uow.session.execute(insert(terms), [{column: row_id, "term": t} for t in found])
