"""The personal-data registry's types, its check, and the walk from a data subject to its rows.

Each domain declares its own tables next to its models, in ``<domain>/privacy.py``::

    TABLES: dict[str, Table] = {
        # every column of the table, each Personal(...) or NOT_PERSONAL
        "messages": Table(
            {"id": NOT_PERSONAL, "conversation_id": NOT_PERSONAL, "body_enc": visitor_data(Category.CONTENT)},
            reach=reach("visitor", "conversation_id -> conversations.visitor_id"),
        ),
    }

and ``confide/privacy_registry.py`` (above every domain) assembles them into ``REGISTRY``
(``assemble``), refusing a table declared twice. ``tests/test_registry.py`` runs ``check`` and
``check_owners`` on the assembled registry: every ORM table and column classified, no stale
entry, every table declared by the ``privacy.py`` of the package whose models define it, and
every personal table able to reach its subject along columns that exist.

**Reach** says how a row of the table reaches its data subject, as a path of columns written
``reach(subject, "col -> table.col -> table.col")``:

- the first name is a column of the declaring table; each ``-> t.c`` follows the previous
  column to table ``t``'s ``id`` and continues with ``t``'s column ``c``; the last column holds
  the subject's id (a visitor's ``visitors.id``, an operator's ``operators.id``);
- ``reach("visitor", "id")`` on ``visitors`` and ``reach("visitor", "visitor_id")`` on
  ``conversations``: the row names its subject directly; ``reach("visitor", "conversation_id ->
  conversations.visitor_id")`` on ``messages``: one hop;
- ``when={"kind": "visitor"}`` restricts the reach to rows whose column equals a value (a table
  holding ids of several kinds of subject, such as ``presence``);
- a table may give several reaches (a tuple): a row is the subject's when any of them matches;
- ``reach=None`` (the default): the rows are not about one subject. Required for every table
  with a ``Personal`` column, for each subject its columns name; optional (and given where
  known) for tables whose rows belong to a subject without holding personal values.

``rows_of(registry, subject)`` turns the reaches into one ``SELECT`` per table of exactly that
subject's rows, so export and erasure walk every table generically. Each hop is a semi-join
(``col IN (SELECT id FROM t WHERE ...)``) rather than a ``JOIN``: the same condition serves a
``DELETE`` or an ``UPDATE`` on SQLite and PostgreSQL, and a row never comes out twice.

Core knows no domain: tables and columns are named as strings, and the check ties them to the
ORM metadata in both directions (ADR 0003, ADR 0023).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, MetaData, Select, or_, select
from sqlalchemy import Table as SqlTable


class Category(StrEnum):
    IDENTITY = "identity"  # names
    CONTACT = "contact"  # e-mail, phone
    CONTENT = "content"  # what the subject wrote
    PROFILE = "profile"  # custom pre-chat answers
    BEHAVIOUR = "behaviour"  # pages visited, ratings
    CONSENT = "consent"  # choices made
    ACCOUNT = "account"  # staff accounts
    PSEUDONYMOUS = "pseudonymous"  # keyed hashes that only match a known value
    KEY = "key"  # wrapped data keys


class Storage(StrEnum):
    ENCRYPTED = "encrypted"  # AES-GCM under the subject's data key
    BLIND_INDEX = "blind_index"  # keyed HMAC
    PLAIN = "plain"  # stored as is (reason given in ``note``)


class Erasure(StrEnum):
    DELETE_ROW = "delete_row"  # the row is deleted with the subject
    DESTROY_KEY = "destroy_key"  # crypto-shredding
    ANONYMISE = "anonymise"  # staff accounts are anonymised, not deleted (audit trail)


# The kinds of data subject, each with the table and column that hold its id.
SUBJECTS: dict[str, tuple[str, str]] = {"visitor": ("visitors", "id"), "operator": ("operators", "id")}


@dataclass(frozen=True)
class Personal:
    category: Category
    subject: str  # whose data: "visitor" | "operator"
    purpose: str
    lawful_basis: str
    retention: str  # retention class
    storage: Storage
    erasure: Erasure = Erasure.DELETE_ROW
    exported: bool = True
    note: str = ""


class _NotPersonal:
    def __repr__(self) -> str:
        return "NOT_PERSONAL"


NOT_PERSONAL = _NotPersonal()
Classification = Personal | _NotPersonal


@dataclass(frozen=True)
class Hop:
    """Follow ``column`` of the table we are at to the row of ``table`` whose ``key`` equals it."""

    column: str
    table: str
    key: str = "id"


@dataclass(frozen=True)
class Reach:
    """How a row reaches its subject: ``via`` hops from the declaring table, then ``column`` (of
    the last table reached) holds the subject's id. ``when``: (column, value) pairs the declaring
    table's row must match. Write it with ``reach(...)``."""

    subject: str
    column: str
    via: tuple[Hop, ...] = ()
    when: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        parts = [self.via[0].column if self.via else self.column]
        for i, hop in enumerate(self.via):
            nxt = self.via[i + 1].column if i + 1 < len(self.via) else self.column
            parts.append(f"{hop.table}.{nxt}" if hop.key == "id" else f"{hop.table}({hop.key}).{nxt}")
        when = "".join(f" [{c}={v}]" for c, v in self.when)
        return f"{self.subject}: {' -> '.join(parts)}{when}"


def reach(subject: str, path: str, *, when: Mapping[str, str] | None = None) -> Reach:
    """``reach("visitor", "conversation_id -> conversations.visitor_id")``: see the module docstring."""
    steps = [s.strip() for s in path.split("->")]
    if not steps or any(not s for s in steps) or "." in steps[0]:
        raise ValueError(f"bad reach path {path!r}: 'column -> table.column -> ...'")
    hops: list[Hop] = []
    column = steps[0]
    for step in steps[1:]:
        table, sep, nxt = step.partition(".")
        if not sep or not table or not nxt or "." in nxt:
            raise ValueError(f"bad reach step {step!r} in {path!r}: 'table.column'")
        hops.append(Hop(column, table))
        column = nxt
    return Reach(subject, column, tuple(hops), tuple(sorted((when or {}).items())))


# A value of an export package's row: what JSON, CSV, a sheet and a PDF can all hold.
Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class WrappedKey:
    """A data key kept in a row of its own rather than in ``subject_keys`` (a data-subject request,
    which often comes from someone who is no visitor): the ``wrapped_key`` column of the ``table``
    row whose ``id`` is the exported row's ``id_column``, unwrapped under the master key with the
    associated data ``aad`` (a template over that row's ``id``: ``"privacy_request:{id}"``)."""

    table: str
    id_column: str
    aad: str

    def ref(self, row: Mapping[str, Any]) -> str:
        """The exported row's name for its key (``"<table>:<id>"``), ``""`` when it names none."""
        ident = row.get(self.id_column)
        return f"{self.table}:{ident}" if ident else ""


@dataclass(frozen=True)
class Out:
    """How one column of a table appears in a subject's export.

    ``name``: the readable output name. For an encrypted column (``Storage.ENCRYPTED``):
    ``aad``, the associated data the domain encrypts it with, a ``str.format`` template over the
    row's columns (``"messages.body:{id}"``); ``key``: ``None`` when it is encrypted under the
    key of the subject being exported, else the column holding the subject id of the key it is
    encrypted under (``"subject_id"``: a prospect entered by hand has a key of its own);
    ``wrapped``: instead of a subject key, a key wrapped in a row (``WrappedKey``);
    ``json``: the plaintext is JSON (``DataKey.encrypt_json``)."""

    name: str
    aad: str | None = None
    key: str | None = None
    json: bool = False
    wrapped: WrappedKey | None = None


# A domain's own step for a format a declaration cannot say: the decrypted row (output names ->
# values) in, the row to export out (it may add, rename or drop names; values JSON-able).
ExportHook = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Export:
    """How a table's rows appear in a subject's export: one section titled ``title``, placed by
    ``order`` (ascending; ties by table name), with the columns of ``columns`` in that order. It
    must name every personal column with ``exported=True``; it may add non-personal ones for
    context (ids, times, states). ``hook``: see ``ExportHook``."""

    title: str
    order: int
    columns: Mapping[str, Out]
    hook: ExportHook | None = None


def out(*names: str) -> dict[str, Out]:
    """Columns exported as they are named: ``out("id", "created_at")``."""
    return {n: Out(n) for n in names}


def sealed(table: str, column: str, *, name: str | None = None, key: str | None = None,
           json: bool = False, wrapped: WrappedKey | None = None) -> dict[str, Out]:
    """The usual encrypted column ``<column>_enc`` of ``table``, encrypted with the associated data
    ``"<table>.<column>:<row id>"`` (what the domains write): ``{"<column>_enc": Out(...)}``."""
    return {f"{column}_enc": Out(name or column, aad=f"{table}.{column}:{{id}}", key=key, json=json,
                                 wrapped=wrapped)}


# ---------------------------------------------------------------------------------- rectification
# The fields a person can have corrected (Art. 16, ADR 0032): "answer:<key>" names one custom
# pre-chat answer.
FIELDS = ("name", "email", "phone", "answer")

# A domain's check of a corrected value, exactly as on entry: (field, value) -> the value to store
# (normalised), or ``Invalid``.
Clean = Callable[[str, object], str]
# A domain's check of a value against one field of a form: (the field's spec, value) -> the value.
FormClean = Callable[[Mapping[str, Any], str], Any]
# A domain's blind index of one value: (the runtime's BlindIndex, workspace id, value) -> digest.
Index = Callable[[Any, str, str], str]
# A domain's terms of a row from its decrypted values: (BlindIndex, workspace id, values by
# encrypted column) -> the terms.
TermsOf = Callable[[Any, str, Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class Terms:
    """A table of blind-index terms of the declaring table's rows, rebuilt from the row's values:
    ``table`` holds (``column`` = the row id, ``term``)."""

    table: str
    column: str
    of: TermsOf


@dataclass(frozen=True)
class Field:
    """Where one correctable field is held in a table (``Table.rectify``). ``column``: the
    encrypted column (its associated data and key come from the table's ``Out`` of that column:
    one declaration for export, rotation and rectification); ``clean``: the domain's check on
    entry; ``index``: the row's blind-index column of the value and the domain's computation;
    ``json``: the column holds a JSON object and the field is one of its keys (``answer:<key>``)."""

    column: str  # "": the table holds only the value's blind index
    clean: Clean
    index: tuple[str, Index] | None = None
    json: bool = False
    # For a JSON field (``answer:<key>``): the row's column naming the site whose pre-chat form
    # defines the key, and the domain's check of a value against that form field.
    form: tuple[str, FormClean] | None = None


@dataclass(frozen=True)
class Table:
    columns: dict[str, Classification]
    reach: Reach | tuple[Reach, ...] | None = None
    export: Export | None = None
    # Why a table holding personal data is left out of exports (e.g. a flag row living inside one
    # transaction); a table with an exported personal column must have an ``export``.
    not_exported: str = ""
    # Rectification (ADR 0032): field name ("name", "email", ...) -> where the table holds it;
    # ``terms``: the table's term rows rebuilt after a correction; ``not_rectified``: why an
    # IDENTITY or CONTACT column has no rectification path.
    rectify: Mapping[str, Field] | None = None
    terms: Terms | None = None
    not_rectified: str = ""
    # Why the table's ciphertexts are not under a subject key (a key of its own in the row): a
    # subject's key rotation leaves them be. Every other encrypted column reached from a subject
    # must have an ``Out`` with its associated data, so that rotation can re-encrypt it.
    own_key: str = ""

    @property
    def reaches(self) -> tuple[Reach, ...]:
        if self.reach is None:
            return ()
        return (self.reach,) if isinstance(self.reach, Reach) else self.reach

    def subjects(self) -> set[str]:
        """The subjects this table's personal columns belong to."""
        return {kind.subject for kind in self.columns.values() if isinstance(kind, Personal)}


def not_personal(*columns: str) -> dict[str, Classification]:
    return {c: NOT_PERSONAL for c in columns}


# Shared wording of the classifications (kept word for word from the single registry of ADR 0003).
CHAT = "provide live chat support"
CONTRACT = "Art. 6(1)(b) steps at the data subject's request / legitimate interest 6(1)(f)"
CONSENT_BASIS = "Art. 7 accountability: proof of consent"
STAFF = "operate staff accounts"
STAFF_BASIS = "Art. 6(1)(b) employment contract / 6(1)(f) security"


def visitor_data(
    category: Category,
    storage: Storage = Storage.ENCRYPTED,
    *,
    retention: str = "chat",
    purpose: str = CHAT,
    basis: str = CONTRACT,
    exported: bool = True,
    note: str = "",
) -> Personal:
    return Personal(category, "visitor", purpose, basis, retention, storage, Erasure.DELETE_ROW, exported, note)


def staff_data(category: Category, note: str = "") -> Personal:
    return Personal(category, "operator", STAFF, STAFF_BASIS, "account", Storage.PLAIN, Erasure.ANONYMISE, True, note)


# ---------------------------------------------------------------------------------- assembly


def assemble(declared: Mapping[str, Mapping[str, Table]]) -> dict[str, Table]:
    """One registry from each package's ``TABLES`` (package name -> its tables); a table
    declared by two packages is refused."""
    registry: dict[str, Table] = {}
    owner: dict[str, str] = {}
    for package, tables in declared.items():
        for name, entry in tables.items():
            if name in registry:
                raise ValueError(f"table {name!r} declared by both {owner[name]} and {package}")
            registry[name] = entry
            owner[name] = package
    return registry


def personal_columns(registry: Mapping[str, Table]) -> list[tuple[str, str, Personal]]:
    """Every (table, column, classification) that holds personal data."""
    return [
        (table, column, kind)
        for table, entry in registry.items()
        for column, kind in entry.columns.items()
        if isinstance(kind, Personal)
    ]


# ---------------------------------------------------------------------------------- checks


def check(registry: Mapping[str, Table], metadata: MetaData) -> list[str]:
    """Every problem of ``registry`` against the ORM ``metadata`` (empty: all good)."""
    problems: list[str] = []
    tables = metadata.tables
    for name in sorted(set(tables) - set(registry)):
        problems.append(f"{name}: table not classified in any privacy.py")
    for name in sorted(set(registry) - set(tables)):
        problems.append(f"{name}: the registry names a table that does not exist")
    for name, entry in sorted(registry.items()):
        table = tables.get(name)
        if table is None:
            continue
        columns = {c.name for c in table.columns}
        declared = set(entry.columns)
        if columns - declared:
            problems.append(f"{name}: unclassified columns {sorted(columns - declared)}")
        if declared - columns:
            problems.append(f"{name}: the registry names missing columns {sorted(declared - columns)}")
        for column, kind in entry.columns.items():
            if not isinstance(kind, Personal):
                continue
            if kind.subject not in SUBJECTS:
                problems.append(f"{name}.{column}: unknown subject {kind.subject!r}")
            if kind.subject == "visitor" and kind.storage is Storage.PLAIN and not kind.note:
                problems.append(f"{name}.{column}: visitor data in plain text without a documented reason")
            if kind.storage is Storage.ENCRYPTED and not (column.endswith("_enc") or column == "wrapped_key"):
                problems.append(f"{name}.{column}: encrypted columns are named *_enc")
        reached = {r.subject for r in entry.reaches}
        for subject in sorted(entry.subjects() - reached):
            problems.append(f"{name}: holds personal data of a {subject} but has no reach to one")
        for r in entry.reaches:
            problems.extend(f"{name}: reach {r}: {p}" for p in _check_reach(metadata, table, r))
    return problems


def _check_reach(metadata: MetaData, start: SqlTable, r: Reach) -> list[str]:
    if r.subject not in SUBJECTS:
        return [f"unknown subject {r.subject!r}"]
    problems = [f"no column {start.name}.{c}" for c, _ in r.when if c not in start.c]
    at = start
    for hop in r.via:
        if hop.column not in at.c:
            return [*problems, f"no column {at.name}.{hop.column}"]
        target = metadata.tables.get(hop.table)
        if target is None:
            return [*problems, f"no table {hop.table}"]
        if hop.key not in target.c:
            return [*problems, f"no column {hop.table}.{hop.key}"]
        fks = at.c[hop.column].foreign_keys
        if fks and not any(fk.column.table.name == hop.table and fk.column.name == hop.key for fk in fks):
            problems.append(f"{at.name}.{hop.column} is a foreign key to another table than {hop.table}.{hop.key}")
        at = target
    if r.column not in at.c:
        return [*problems, f"no column {at.name}.{r.column}"]
    root_table, root_key = SUBJECTS[r.subject]
    end = at.c[r.column]
    if at.name == root_table:
        if r.column != root_key:
            problems.append(f"ends at {root_table}.{r.column}, not the {r.subject}'s id {root_table}.{root_key}")
    elif end.foreign_keys and not any(
        fk.column.table.name == root_table and fk.column.name == root_key for fk in end.foreign_keys
    ):
        problems.append(f"ends at {at.name}.{r.column}, a foreign key to another table than {root_table}.{root_key}")
    return problems


def defining_packages(mappers: Iterable[Any]) -> dict[str, str]:
    """Table name -> the package (``confide.chats``) whose module maps it, from ORM mappers."""
    owners: dict[str, str] = {}
    for mapper in mappers:
        module: str = mapper.class_.__module__
        for table in mapper.tables:
            owners[table.name] = ".".join(module.split(".")[:2])
    return owners


def check_owners(declared: Mapping[str, Mapping[str, Table]], defined: Mapping[str, str]) -> list[str]:
    """Each table is declared by the ``privacy.py`` of the package that defines its model."""
    problems: list[str] = []
    by_package: dict[str, list[str]] = {}
    for table, package in defined.items():
        by_package.setdefault(package, []).append(table)
    for package, names in sorted(by_package.items()):
        if package not in declared:
            problems.append(
                f"{package} defines tables {sorted(names)} but has no {package}.privacy in privacy_registry"
            )
            continue
        for name in sorted(names):
            if name not in declared[package]:
                problems.append(f"{name}: defined in {package} but not declared in {package}.privacy")
    for package, tables in sorted(declared.items()):
        for name in sorted(tables):
            owner = defined.get(name)
            if owner is not None and owner != package:
                problems.append(f"{name}: declared in {package}.privacy but defined in {owner}")
    return problems


def export_problems(registry: Mapping[str, Table], metadata: MetaData) -> list[str]:
    """Every table whose personal, exported columns have no export path, and every export
    declaration that does not fit its table (empty: all good)."""
    problems: list[str] = []
    for name, entry in sorted(registry.items()):
        exported = [c for c, k in entry.columns.items() if isinstance(k, Personal) and k.exported]
        if entry.export is None:
            if exported and not entry.not_exported:
                problems.append(f"{name}: personal columns {exported} are exported but the table has no export")
            continue
        table = metadata.tables.get(name)
        columns = {c.name for c in table.columns} if table is not None else set(entry.columns)
        declared = entry.export.columns
        for column in exported:
            if column not in declared:
                problems.append(f"{name}.{column}: exported personal column missing from the table's export")
        names = [o.name for o in declared.values()]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"{name}: output name {dup!r} used twice")
        for column, how in declared.items():
            if column not in columns:
                problems.append(f"{name}.{column}: exported but the table has no such column")
                continue
            kind = entry.columns.get(column)
            if isinstance(kind, Personal) and not kind.exported:
                problems.append(f"{name}.{column}: declared exported=False but listed in the export")
            encrypted = isinstance(kind, Personal) and kind.storage is Storage.ENCRYPTED
            if encrypted and not how.aad:
                problems.append(f"{name}.{column}: encrypted but its export gives no associated data")
            if not encrypted and (how.aad or how.key or how.json or how.wrapped):
                problems.append(f"{name}.{column}: not encrypted but its export says how to decrypt it")
            if how.key is not None and how.wrapped is not None:
                problems.append(f"{name}.{column}: names both a subject key column and a wrapped key")
            if how.wrapped is not None:
                problems.extend(f"{name}.{column}: {p}" for p in _wrapped_problems(how.wrapped, columns, metadata))
            if how.aad:
                try:
                    fields = _format_fields(how.aad)
                except ValueError:
                    problems.append(f"{name}.{column}: malformed associated-data template {how.aad!r}")
                    continue
                for f in sorted(fields - columns):
                    problems.append(f"{name}.{column}: associated data names missing column {f!r}")
            if how.key is not None and how.key not in columns:
                problems.append(f"{name}.{column}: key column {how.key!r} does not exist")
    return problems


def _wrapped_problems(w: WrappedKey, columns: set[str], metadata: MetaData) -> list[str]:
    problems = []
    if w.id_column not in columns:
        problems.append(f"wrapped key's id column {w.id_column!r} does not exist")
    holder = metadata.tables.get(w.table)
    if holder is None:
        problems.append(f"wrapped key's table {w.table!r} does not exist")
    elif "wrapped_key" not in holder.c or "id" not in holder.c:
        problems.append(f"wrapped key's table {w.table!r} has no id and wrapped_key columns")
    try:
        if _format_fields(w.aad) != {"id"}:
            problems.append(f"wrapped key's associated data {w.aad!r} must name exactly {{id}}")
    except ValueError:
        problems.append(f"malformed wrapped key associated data {w.aad!r}")
    return problems


def _format_fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def erasure_problems(registry: Mapping[str, Table]) -> list[str]:
    """The seam of the erasure check: every personal column says how it is erased (``Erasure``);
    a table with personal columns must reach its subject so that erasure can find its rows.
    (``check`` already fails a personal table without a reach; the erasure helper extends this.)"""
    problems: list[str] = []
    for name, entry in sorted(registry.items()):
        for column, kind in entry.columns.items():
            if isinstance(kind, Personal) and not isinstance(kind.erasure, Erasure):
                problems.append(f"{name}.{column}: no erasure path")
        if entry.subjects() and not entry.reaches:
            problems.append(f"{name}: personal rows no erasure can reach")
    return problems


def rectification_problems(registry: Mapping[str, Table]) -> list[str]:
    """Every IDENTITY or CONTACT column without a rectification path (or a reason), every
    encrypted column reached from a visitor that key rotation could not re-encrypt, and every
    rectification declaration that does not fit its table (empty: all good)."""
    problems: list[str] = []
    for name, entry in sorted(registry.items()):
        declared = dict(entry.rectify or {})
        covered = {f.column for f in declared.values()}
        outs = entry.export.columns if entry.export else {}
        for field, where in declared.items():
            if field not in FIELDS:
                problems.append(f"{name}: rectifies unknown field {field!r}")
            kind = entry.columns.get(where.column)
            if not where.column:  # only a blind index of the value is held (an objection's e-mail)
                if where.index is None:
                    problems.append(f"{name}: rectifies {field!r} but names neither a column nor an index")
            elif not isinstance(kind, Personal) or kind.storage is not Storage.ENCRYPTED:
                problems.append(f"{name}.{where.column}: rectified but not an encrypted personal column")
            elif not (outs.get(where.column) and outs[where.column].aad):
                problems.append(f"{name}.{where.column}: rectified but its Out gives no associated data")
            if where.json and where.form is None:
                problems.append(f"{name}.{where.column}: a JSON field without the form that checks it")
            if where.form is not None and where.form[0] not in entry.columns:
                problems.append(f"{name}: form column {where.form[0]!r} does not exist")
            if where.index is not None and where.index[0] not in entry.columns:
                problems.append(f"{name}: blind-index column {where.index[0]!r} does not exist")
        for column, kind in entry.columns.items():
            if not isinstance(kind, Personal):
                continue
            if kind.category in (Category.IDENTITY, Category.CONTACT) and column not in covered \
                    and not entry.not_rectified:
                problems.append(f"{name}.{column}: {kind.category.value} data without a rectification path")
            reached = any(r.subject == "visitor" for r in entry.reaches)
            # a column under a key wrapped in a row (``Out.wrapped``) is no subject key's: rotation leaves it
            if kind.storage is Storage.ENCRYPTED and reached and not entry.own_key and column != "wrapped_key" \
                    and not (column in outs and (outs[column].aad or outs[column].wrapped)):
                problems.append(f"{name}.{column}: encrypted, but no Out says how to re-encrypt it on key rotation")
    return problems


def rectifiable(registry: Mapping[str, Table], field: str) -> list[tuple[str, Field, Out | None]]:
    """Every (table, where, the Out of its column; None: only a blind index) holding ``field``."""
    found: list[tuple[str, Field, Out | None]] = []
    for name, entry in sorted(registry.items()):
        where = (entry.rectify or {}).get(field)
        if where is not None:
            outs = entry.export.columns if entry.export else {}
            found.append((name, where, outs.get(where.column) if where.column else None))
    return found


def sealed_columns(registry: Mapping[str, Table]) -> dict[str, dict[str, Out]]:
    """Per table reached from a visitor, its encrypted columns under a subject key (the ones a
    key rotation re-encrypts), with their Out (associated data, key column, JSON)."""
    found: dict[str, dict[str, Out]] = {}
    for name, entry in sorted(registry.items()):
        if entry.own_key or not any(r.subject == "visitor" for r in entry.reaches) or entry.export is None:
            continue
        cols = {
            c: entry.export.columns[c]
            for c, k in entry.columns.items()
            if isinstance(k, Personal) and k.storage is Storage.ENCRYPTED and c in entry.export.columns
            and entry.export.columns[c].wrapped is None  # under a key of its row, not the subject's
        }
        if cols:
            found[name] = cols
    return found


def export_sections(registry: Mapping[str, Table]) -> list[tuple[str, Export]]:
    """The exported tables in the package's stable order: (table, its export)."""
    found = [(name, e.export) for name, e in registry.items() if e.export is not None]
    return sorted(found, key=lambda item: (item[1].order, item[0]))


# ---------------------------------------------------------------------------------- the walk


@dataclass(frozen=True)
class Subject:
    kind: str  # "visitor" | "operator"
    id: str


def reach_condition(metadata: MetaData, table: SqlTable, r: Reach, subject_id: str) -> ColumnElement[bool]:
    """The WHERE condition selecting ``table``'s rows that ``r`` leads to ``subject_id``."""
    tables = [table] + [metadata.tables[hop.table].alias() for hop in r.via]
    # From the end of the path back to its start: each hop is ``column IN (SELECT key ...)``.
    cond: ColumnElement[bool] = tables[-1].c[r.column] == subject_id
    for i in range(len(r.via) - 1, -1, -1):
        hop = r.via[i]
        inner = select(tables[i + 1].c[hop.key]).where(cond)
        cond = tables[i].c[hop.column].in_(inner)
    for column, value in r.when:
        cond = cond & (table.c[column] == value)
    return cond


def conditions_of(
    registry: Mapping[str, Table], metadata: MetaData, subject: Subject
) -> dict[str, ColumnElement[bool]]:
    """For each table with a reach to ``subject.kind``, the condition on its rows that are the
    subject's (a table with several reaches: any of them), usable in SELECT, UPDATE and DELETE."""
    conditions: dict[str, ColumnElement[bool]] = {}
    for name, entry in registry.items():
        reaches = [r for r in entry.reaches if r.subject == subject.kind]
        if not reaches:
            continue
        table = metadata.tables[name]
        conds = [reach_condition(metadata, table, r, subject.id) for r in reaches]
        conditions[name] = conds[0] if len(conds) == 1 else or_(*conds)
    return conditions


def rows_of(registry: Mapping[str, Table], metadata: MetaData, subject: Subject) -> dict[str, Select[Any]]:
    """For each table with a reach to ``subject.kind``, the select of exactly that subject's rows."""
    return {
        name: select(metadata.tables[name]).where(cond)
        for name, cond in conditions_of(registry, metadata, subject).items()
    }
