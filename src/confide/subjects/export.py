"""One person's export package: every row the registry reaches from each of their visitor ids,
decrypted, in the shape of ``docs/privacy/export-schema.json`` (``confide.subject-export/1``).

Three steps, so that nothing heavy runs on the event loop or inside a write transaction (rule 12):

1. ``gather`` (async, in a read-only unit): walk ``privacy_registry.rows_of`` for each visitor id
   (and the hand-entered prospects found with them), and fetch the data keys and the names the
   transcripts need. Nothing is decrypted yet.
2. ``build`` (sync, CPU: run it with ``asyncio.to_thread``): decrypt each column as its table's
   ``Export`` declares (associated data and whose key), apply the domains' export hooks, and
   assemble sections, transcripts and the Art. 15 facts (from the registry and the settings).
3. ``render_package`` (sync): JSON here (``package_json``); CSV, Excel and PDF by
   ``confide.subjects.render.render`` once that module exists (the render helper's seam).

``export_person`` runs the three for a staff member (``subjects.export``) and then audits
``subject.exported`` (ids and the format only) in a write unit of its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from typing import Any, NamedTuple

from sqlalchemy import Table, select

from confide import privacy_registry
from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.config import Settings
from confide.core import clock
from confide.core.crypto import DataKey
from confide.core.db import Base, UnitOfWork
from confide.core.errors import Invalid, NotFound
from confide.core.personal_data import Category, Export, Personal, Subject, WrappedKey, export_sections
from confide.core.runtime import Runtime
from confide.permissions.policy import Permission
from confide.restriction import service as restriction
from confide.retention import categories as retention_categories
from confide.retention import service as retention
from confide.subjects import render
from confide.subjects.find import check_person
from confide.subjects.schemas import FORMATS, ExportIn

SCHEMA = "confide.subject-export/1"

# What each retention class keeps when no retention period governs it (``retention.categories``
# maps the others to the periods set per site, which ``gather`` reads).
RETENTION_PERIODS: dict[str, str] = {
    "chat": "as long as the site's retention period for conversations, then deleted",
    "offline_request": "as long as the site's retention period for offline requests, then deleted",
    "visitor_activity": "as long as the site's retention period for visitor activity, then deleted",
    "prospect": "until the lead is closed and the site's retention period for prospects has passed",
    "consent": "as long as the choice is relevant, as proof of consent (Art. 7(1))",
    "objection": "as long as the objection stands",
}
RIGHTS: tuple[tuple[str, str], ...] = (
    ("access", "Ask for this export again at any time: write to {contact}."),
    ("rectification", "Ask us to correct anything wrong or incomplete: write to {contact}."),
    ("erasure", "Ask us to erase your data; we delete it and destroy its encryption keys: write to {contact}."),
    ("restriction", "Ask us to keep your data but stop processing it: write to {contact}."),
    ("portability", "This package's JSON form is machine-readable; ask for it in another format at {contact}."),
    ("objection", "Object to processing based on legitimate interest or to profiling: write to {contact}."),
    ("withdraw_consent", "Withdraw a consent at any time in the chat window's Privacy view or at {contact}."),
    ("complaint", "Lodge a complaint with your data-protection supervisory authority."),
)
_ORDER_KEYS = ("created_at", "viewed_at", "at", "seq", "id")
SENDERS = ("visitor", "operator", "system")


class Delivered(NamedTuple):
    data: bytes
    content_type: str
    filename: str


def _t(name: str) -> Table:
    return Base.metadata.tables[name]


@dataclass
class Gathered:
    """Everything read for one package, still encrypted."""

    workspace_id: str
    workspace_name: str
    visitor_ids: tuple[str, ...]
    prospect_ids: tuple[str, ...]
    searched_by: str
    generated_at: datetime
    controller: dict[str, str]
    rows: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)  # table -> (subject, row)
    keys: dict[str, DataKey | None] = field(default_factory=dict)
    sites: dict[str, str] = field(default_factory=dict)
    operators: dict[str, str] = field(default_factory=dict)
    purposes: list[dict[str, str]] = field(default_factory=list)  # the workspace's consent purposes
    periods: dict[str, str] = field(default_factory=dict)  # retention class -> how long, in words
    restriction: dict[str, Any] | None = None  # Art. 18 (ADR 0031): since when, why; None: not restricted


def _sections() -> list[tuple[str, Export]]:
    """The tables of a visitor's export (those reaching a visitor), in the package's order."""
    registry = privacy_registry.REGISTRY
    return [(n, s) for n, s in export_sections(registry) if any(r.subject == "visitor" for r in registry[n].reaches)]


def controller_of(settings: Settings, workspace_name: str) -> dict[str, str]:
    contact = settings.controller_contact or parseaddr(settings.mail_from)[1] or settings.mail_from
    return {"name": settings.controller_name or workspace_name, "contact": contact}


# ---------------------------------------------------------------- 1. gather (read-only unit)
async def gather(
    rt: Runtime,
    uow: UnitOfWork,
    workspace_id: str,
    visitor_ids: Sequence[str],
    prospect_ids: Sequence[str] = (),
    *,
    searched_by: str,
) -> Gathered:
    """Read every row of the person (the ids must have been checked: ``find.check_person``, or
    a link bound to them). Rows of other workspaces are never read: each visitor id is confirmed
    in ``workspace_id`` first."""
    session = uow.session
    ws = (await session.execute(select(_t("workspaces").c.name).where(_t("workspaces").c.id == workspace_id))).first()
    if ws is None:
        raise NotFound("workspace not found")
    v = _t("visitors")
    mine = set((await session.scalars(
        select(v.c.id).where(v.c.workspace_id == workspace_id, v.c.id.in_(list(visitor_ids)))
    )).all())
    if mine != set(visitor_ids):
        raise NotFound("visitor not found")
    got = Gathered(workspace_id, ws.name, tuple(visitor_ids), tuple(prospect_ids), searched_by, clock.now(),
                   controller_of(rt.settings, ws.name))
    sections = _sections()
    seen: dict[str, set[tuple[Any, ...]]] = {}
    for vid in visitor_ids:
        selects = privacy_registry.rows_of(Subject("visitor", vid))
        for name, _spec in sections:
            stmt = selects.get(name)
            if stmt is None:
                continue
            pk = [c.name for c in _t(name).primary_key.columns]
            for row in (await session.execute(stmt)).mappings().all():
                ident = tuple(row[c] for c in pk)
                if ident in seen.setdefault(name, set()):
                    continue
                seen[name].add(ident)
                got.rows.setdefault(name, []).append((vid, dict(row)))
    if prospect_ids:
        p = _t("prospects")
        for row in (await session.execute(
            select(p).where(p.c.workspace_id == workspace_id, p.c.id.in_(list(prospect_ids)), p.c.visitor_id.is_(None))
        )).mappings().all():
            got.rows.setdefault("prospects", []).append((row["subject_id"], dict(row)))
    # The keys: the subject's own, and every key column a declaration names.
    wanted: set[str] = set(visitor_ids)
    for name, spec in sections:
        key_columns = {o.key for o in spec.columns.values() if o.key}
        for _vid, row in got.rows.get(name, []):
            wanted |= {row[c] for c in key_columns if row.get(c)}
    for subject_id in sorted(wanted):
        try:
            got.keys[subject_id] = await rt.keyring.get(session, subject_id)
        except NotFound:  # destroyed (erased): its ciphertexts are unreadable, shown as null
            got.keys[subject_id] = None
    await _wrapped_keys(rt, uow, got, sections)
    site_ids = {row.get("site_id") for rows in got.rows.values() for _v, row in rows if row.get("site_id")}
    s = _t("sites")
    if site_ids:
        got.sites = {r.id: r.name for r in (await session.execute(
            select(s.c.id, s.c.name).where(s.c.workspace_id == workspace_id, s.c.id.in_(site_ids))
        )).all()}
    senders = {row["sender_id"] for _v, row in got.rows.get("messages", []) if row.get("sender") == "operator"}
    o = _t("operators")
    if senders:
        got.operators = {r.id: r.name for r in (await session.execute(
            select(o.c.id, o.c.name).where(o.c.workspace_id == workspace_id, o.c.id.in_(senders))
        )).all()}
    got.periods = await _periods(rt, uow, workspace_id, got.rows.keys(), got.sites)
    cp = _t("consent_purposes")
    got.purposes = [
        {"name": r.name, "lawful_basis": r.lawful_basis, "recipients": r.recipients or "",
         "retention_class": r.retention_class or ""}
        for r in (await session.execute(
            select(cp.c.name, cp.c.lawful_basis, cp.c.recipients, cp.c.retention_class)
            .where(cp.c.workspace_id == workspace_id, cp.c.enabled.is_(True)).order_by(cp.c.key)
        )).all()
    ]
    got.restriction = restriction.state_view(await restriction.active_of(uow, workspace_id, visitor_ids), visitor_ids)
    return got


async def _periods(rt: Runtime, uow: UnitOfWork, workspace_id: str, tables: Iterable[str],
                   sites: Mapping[str, str]) -> dict[str, str]:
    """How long each retention class of the person's data is kept, from the periods in force on the
    sites their data came from (``retention.service``): one sentence per class."""
    classes = {
        kind.retention for name in tables for kind in privacy_registry.REGISTRY[name].columns.values()
        if isinstance(kind, Personal) and kind.subject == "visitor"
    }
    found = await retention.overrides(uow, workspace_id)
    out: dict[str, str] = {}
    for cls in sorted(classes):
        category = retention_categories.category_of_class(cls)
        if category is None:
            continue
        info = retention_categories.INFO[category]
        scopes: list[tuple[str | None, str]] = sorted(sites.items(), key=lambda item: item[1]) or [(None, "")]
        per_site = [(name, retention.resolve(rt.settings, found, site_id, category)[0]) for site_id, name in scopes]
        if len({days for _n, days in per_site}) == 1:
            days = per_site[0][1]
            out[cls] = _period_text(days, info.counts_from)
        else:
            out[cls] = "; ".join(f"on {name}: {_period_text(days, info.counts_from)}" for name, days in per_site)
    return out


def _period_text(days: int, counts_from: str) -> str:
    if days <= 0:
        return "kept until you ask us to erase it"
    return f"{retention_categories.describe(days)} after {counts_from}, then deleted"


async def _wrapped_keys(rt: Runtime, uow: UnitOfWork, got: Gathered, sections: Sequence[tuple[str, Export]]) -> None:
    """The keys kept in rows of their own (``WrappedKey``: a data-subject request's) that the
    gathered rows name, unwrapped under ``got.keys["<table>:<id>"]`` (``None``: destroyed)."""
    wanted: dict[WrappedKey, set[str]] = {}
    for name, spec in sections:
        for how in spec.columns.values():
            w = how.wrapped
            if w is not None:
                wanted.setdefault(w, set()).update(
                    row[w.id_column] for _v, row in got.rows.get(name, []) if row.get(w.id_column)
                )
    for w, ids in wanted.items():
        holder = _t(w.table)
        found = {r.id: r.wrapped_key for r in (await uow.session.execute(
            select(holder.c.id, holder.c.wrapped_key).where(holder.c.id.in_(sorted(ids)))
        )).all()}
        for ident in sorted(ids):
            wrapped = found.get(ident)
            got.keys[f"{w.table}:{ident}"] = (
                rt.keyring.wrapper.unwrap(bytes(wrapped), w.aad.format(id=ident)) if wrapped is not None else None
            )


# ---------------------------------------------------------------- 2. build (CPU, off the loop)
def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        raise TypeError("an undeclared ciphertext reached the export")
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _row_out(name: str, spec: Export, subject_id: str, row: Mapping[str, Any], keys: Mapping[str, DataKey | None]
             ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column, how in spec.columns.items():
        value = row.get(column)
        if how.aad and value is not None:
            if how.wrapped is not None:
                key = keys.get(how.wrapped.ref(row))
            else:
                key = keys.get(row[how.key] if how.key else subject_id)
            if key is None:
                value = None
            else:
                aad = how.aad.format(**row)
                value = key.decrypt_json(bytes(value), aad) if how.json else key.decrypt(bytes(value), aad)
        out[how.name] = value
    if spec.hook is not None:
        out = spec.hook(out)
    return {k: _scalar(v) for k, v in out.items()}


def _order(row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(row[k]) if row.get(k) is not None else "" for k in _ORDER_KEYS if k in row)


def _facts(got: Gathered, held_tables: Iterable[str]) -> dict[str, Any]:
    registry = privacy_registry.REGISTRY
    held = set(held_tables)
    purposes: dict[tuple[str, str], set[str]] = {}
    categories: set[str] = set()
    retention: set[str] = set()
    for name in sorted(held):
        for kind in registry[name].columns.values():
            if not isinstance(kind, Personal) or kind.subject != "visitor":
                continue
            if kind.category in (Category.KEY, Category.PSEUDONYMOUS):
                continue  # keys and keyed hashes: how data is protected, not data about the person
            purposes.setdefault((kind.purpose, kind.lawful_basis), set()).add(kind.category.value)
            categories.add(kind.category.value)
            retention.add(kind.retention)
    listed = [
        {"purpose": purpose, "lawful_basis": basis, "categories": sorted(cats)}
        for (purpose, basis), cats in sorted(purposes.items())
    ]
    listed += [
        {"purpose": p["name"], "lawful_basis": p["lawful_basis"], "categories": []} for p in got.purposes
    ]
    recipients = ["the controller's staff who answer chats and requests (operators, within their departments)",
                  "the hosting provider that runs this chat service for the controller (processor, Art. 28)"]
    for p in got.purposes:
        for line in p["recipients"].splitlines():
            if line.strip() and line.strip() not in recipients:
                recipients.append(line.strip())
    contact = got.controller["contact"]
    sites = sorted(set(got.sites.values()))
    return {
        "controller": dict(got.controller),
        "purposes": listed,
        "categories": sorted(categories),
        "recipients": recipients,
        "retention": [
            {"category": c, "period": got.periods.get(c) or RETENTION_PERIODS.get(
                c, retention_categories.OTHER_CLASSES.get(c, "as set in the controller's retention policy"))}
            for c in sorted(retention)
        ],
        "source": (
            "From you, through the chat window" + (f" of {', '.join(sites)}" if sites else "")
            + "; from the staff who answered you (messages, notes); and, where a site vouched for you, "
            "from that site (verified identity)."
        ),
        "rights": [{"right": right, "how": how.format(contact=contact)} for right, how in RIGHTS],
        **({"restriction": _restricted(got.restriction)} if got.restriction else {}),
    }


def _restricted(state: Mapping[str, Any]) -> str:
    """The Art. 15 fact of a restriction (Art. 18): one sentence, rendered as is in every format."""
    return (f"Processing of your data is restricted since {state['since']} ({state['reason_label']}): "
            "it is stored and not otherwise processed; you will be told when the restriction is lifted.")


def build(got: Gathered) -> dict[str, Any]:
    """The package (a JSON-able dict), decrypting as the registry declares. CPU-bound and
    synchronous: call it with ``asyncio.to_thread``."""
    sections: list[dict[str, Any]] = []
    decrypted: dict[str, list[dict[str, Any]]] = {}
    for name, spec in _sections():
        rows = [_row_out(name, spec, sid, row, got.keys) for sid, row in got.rows.get(name, [])]
        raw_order = [_order(row) for _sid, row in got.rows.get(name, [])]
        rows = [r for _o, r in sorted(zip(raw_order, rows, strict=True), key=lambda pair: pair[0])]
        decrypted[name] = rows
        columns = [o.name for o in spec.columns.values()]
        for row in rows:  # names a hook added (one per custom answer), in first-seen order
            columns += [k for k in row if k not in columns]
        columns = [c for c in columns if any(c in row for row in rows)] if rows else columns
        sections.append({"key": name, "title": spec.title, "columns": columns,
                         "rows": [{c: row.get(c) for c in columns} for row in rows]})
    names = {row["id"]: row.get("name") for row in decrypted.get("visitors", [])}
    by_conversation: dict[str, list[dict[str, Any]]] = {}
    for row in decrypted.get("messages", []):
        by_conversation.setdefault(str(row["conversation"]), []).append(row)
    visitor_of = {row["id"]: vid for vid, row in got.rows.get("conversations", [])}
    sender_of = {row["id"]: row.get("sender_id") for _v, row in got.rows.get("messages", [])}
    transcripts = []
    for conv in decrypted.get("conversations", []):
        messages = sorted(by_conversation.get(str(conv["id"]), []), key=lambda m: (m.get("seq") or 0))
        out_messages = []
        for m in messages:
            sender = m.get("sender") if m.get("sender") in SENDERS else "system"
            who: str | None = None
            if sender == "visitor":
                who = names.get(visitor_of.get(conv["id"], ""))
            elif sender == "operator":
                who = got.operators.get(str(sender_of.get(m["id"])))
            out_messages.append({"at": m.get("sent_at"), "sender": sender, "name": who, "text": m.get("text") or ""})
        transcripts.append({
            "conversation_id": conv["id"],
            "site": got.sites.get(str(conv.get("site")), conv.get("site")),
            "started_at": conv.get("started_at"),
            "closed_at": conv.get("closed_at"),
            "messages": out_messages,
        })
    held = [name for name, rows in decrypted.items() if rows]
    return {
        "schema": SCHEMA,
        "generated_at": got.generated_at.isoformat(),
        "workspace": {"id": got.workspace_id, "name": got.workspace_name},
        "person": {"visitor_ids": list(got.visitor_ids), "prospect_ids": list(got.prospect_ids),
                   "searched_by": got.searched_by},
        "facts": _facts(got, held),
        "sections": sections,
        "transcripts": transcripts,
    }


# ---------------------------------------------------------------- 3. render
def package_json(package: Mapping[str, Any]) -> bytes:
    """The package as UTF-8 JSON (the machine-readable form, Art. 20)."""
    return json.dumps(package, ensure_ascii=False, indent=2).encode("utf-8")


def filename_of(package: Mapping[str, Any], fmt: str) -> str:
    day = str(package["generated_at"])[:10]
    ids = package["person"]["visitor_ids"] or package["person"]["prospect_ids"]
    return f"personal-data-{ids[0][:12]}-{day}.{'zip' if fmt == 'csv' else fmt}"


def require_format(fmt: str) -> None:
    """``Invalid`` unless ``fmt`` is one of the four formats."""
    if fmt not in FORMATS:
        raise Invalid(f"fmt: one of {', '.join(FORMATS)}")


def render_package(package: Mapping[str, Any], fmt: str) -> Delivered:
    """The package in ``fmt``: JSON here (the schema's document), CSV, Excel and PDF by
    ``subjects.render`` (ADR 0027). CPU-bound: callers run it off the event loop."""
    require_format(fmt)
    if fmt == "json":
        return Delivered(package_json(package), "application/json", filename_of(package, fmt))
    rendered = render.render(dict(package), fmt)
    return Delivered(rendered.data, rendered.content_type, rendered.filename)


async def produce(got: Gathered, fmt: str) -> Delivered:
    """Build and render off the event loop."""
    package = await asyncio.to_thread(build, got)
    return await asyncio.to_thread(render_package, package, fmt)


# ---------------------------------------------------------------- staff download
async def export_person(rt: Runtime, actor: OperatorActor, body: ExportIn, *, via: str) -> Delivered:
    """A staff member's download of one person's export (``subjects.export``): read in a
    read-only unit, built and rendered off the loop, then ``subject.exported`` audited (ids and
    format only). The units are opened here, not at the edge, because the build must run between
    them (rule 12): each is still one transaction committed or rolled back in one place."""
    if not body.visitor_ids and not body.prospect_ids:
        raise Invalid("name at least one visitor or prospect of the person")
    require_format(body.fmt)
    async with rt.db.unit_of_work(readonly=True) as uow:
        await check_person(uow, actor, body.visitor_ids, body.prospect_ids, Permission.SUBJECTS_EXPORT)
        got = await gather(rt, uow, actor.workspace_id, body.visitor_ids, body.prospect_ids,
                           searched_by=body.searched_by)
    delivered = await produce(got, body.fmt)
    async with rt.db.unit_of_work() as uow:
        await record_exported(rt, uow, got, body.fmt, via=via, actor=actor)
    return delivered


async def record_exported(rt: Runtime, uow: UnitOfWork, got: Gathered, fmt: str, *, via: str,
                          actor: OperatorActor | None = None, link_id: str | None = None) -> None:
    ids = list(got.visitor_ids) or list(got.prospect_ids)
    detail: dict[str, Any] = {"fmt": fmt, "via": via, "ids": ids[: audit.MAX_LISTED]}
    if link_id is not None:
        detail["link"] = link_id
    # Without a staff member: the person themselves, through an e-mailed link.
    await audit.record(rt, uow, "subject.exported", actor=actor, workspace_id=got.workspace_id,
                       actor_type=None if actor is not None else "visitor",
                       actor_id=None if actor is not None else ids[0],
                       target_type="visitor" if got.visitor_ids else "prospect", target_id=ids[0], detail=detail)
