"""Redaction at ingest (ADR 0021): each site's policy, applied to what visitors (and operators)
write before it is stored or fanned out, and the originals kept, where the site asked for it,
encrypted under the visitor's data key and shown only with ``chats.view_redacted`` (each view
audited).

The message write path reads the policies of a batch's sites with its other reads (one indexed
query per batch, so a change applies to the next batch on every node) and takes the compiled
``Redactor`` from a cache keyed by (site, version): patterns are compiled once per version.
Detection itself is in ``detectors``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

import structlog
from sqlalchemy import Table, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto
from confide.core.crypto import DataKey
from confide.core.db import UnitOfWork
from confide.core.errors import Invalid
from confide.core.runtime import Runtime
from confide.permissions.access import access_conversation_by_id, access_offline_request_by_id, access_site_by_id
from confide.permissions.policy import Permission, require
from confide.redaction import detectors
from confide.redaction.detectors import Redaction, Redactor
from confide.redaction.models import RedactedOriginal, RedactionPolicy
from confide.redaction.schemas import PolicyIn
from confide.workspaces import service as workspaces

log = structlog.get_logger(__name__)

_POLICY = cast(Table, RedactionPolicy.__table__)
_ORIGINALS = cast(Table, RedactedOriginal.__table__)
_CACHE_MAX = 5_000
_cache: OrderedDict[tuple[str, int], Redactor | None] = OrderedDict()
_MISS = object()


def aad(row_id: str) -> str:
    return f"redacted_originals.text:{row_id}"


# ---------------------------------------------------------------- compiled policies
def _compiled(site_id: str, version: int, cards: Any, ibans: Any, keep: Any, patterns: Any) -> Redactor | None:
    """The site's redactor at ``version`` (``None``: nothing to mask), compiled once per version."""
    key = (site_id, int(version))
    found = _cache.get(key, _MISS)
    if found is not _MISS:  # (the SQLite writer's thread and the event loop share the cache)
        with contextlib.suppress(KeyError):
            _cache.move_to_end(key)
        return cast(Redactor | None, found)
    if isinstance(patterns, str | bytes):
        patterns = json.loads(patterns)
    enabled = [(p["name"], p["regex"]) for p in patterns or [] if p.get("enabled", True)]
    redactor: Redactor | None = detectors.build(
        cards=bool(cards), ibans=bool(ibans), keep_originals=bool(keep), patterns=enabled
    )
    if redactor is not None and not redactor.active:
        redactor = None
    _cache[key] = redactor
    if len(_cache) > _CACHE_MAX:
        with contextlib.suppress(KeyError):
            _cache.popitem(last=False)
    return redactor


_COLUMNS = (_POLICY.c.site_id, _POLICY.c.version, _POLICY.c.cards, _POLICY.c.ibans, _POLICY.c.keep_originals)


async def redactors_for(conn: AsyncConnection, site_ids: Iterable[str]) -> dict[str, Redactor]:
    """The active redactors of these sites (a site that masks nothing is absent)."""
    ids = list(set(site_ids))
    if not ids:
        return {}
    rows = (await conn.execute(select(*_COLUMNS, _POLICY.c.patterns).where(_POLICY.c.site_id.in_(ids)))).all()
    out = {}
    for site_id, version, cards, ibans, keep, patterns in rows:
        r = _compiled(site_id, version, cards, ibans, keep, patterns)
        if r is not None:
            out[site_id] = r
    return out


_SQLITE_SELECT = (
    "SELECT site_id, version, cards, ibans, keep_originals, patterns FROM redaction_policies WHERE site_id IN "
)


def redactors_for_sqlite(conn: sqlite3.Connection, site_ids: Iterable[str]) -> dict[str, Redactor]:
    """``redactors_for`` on the raw SQLite writer connection (in the writer thread)."""
    ids = list(set(site_ids))
    out: dict[str, Redactor] = {}
    for i in range(0, len(ids), 300):
        chunk = ids[i : i + 300]
        sql = _SQLITE_SELECT + "(" + ", ".join("?" * len(chunk)) + ")"  # only placeholders are spliced in
        for site_id, version, cards, ibans, keep, patterns in conn.execute(sql, chunk):
            r = _compiled(site_id, version, cards, ibans, keep, patterns)
            if r is not None:
                out[site_id] = r
    return out


async def redactor_for_site(uow: UnitOfWork, site_id: str) -> Redactor | None:
    conn = await uow.session.connection()
    return (await redactors_for(conn, [site_id])).get(site_id)


def apply(redactor: Redactor | None, text: str, *, site_id: str) -> Redaction | None:
    """``redactor.redact(text)``, logging (ids only) a text withheld because its patterns ran out of time."""
    if redactor is None:
        return None
    found = redactor.redact(text)
    if found is not None and found.kinds == ("withheld",):
        log.warning("redaction.pattern_timeout", site_id=site_id)
    return found


def apply_many(redactor: Redactor, texts: list[str], *, site_id: str) -> list[Redaction | None]:
    """``apply`` of each of one site's texts (a writer batch), screened together (``redact_many``)."""
    found = redactor.redact_many(texts)
    if any(f is not None and f.kinds == ("withheld",) for f in found):
        log.warning("redaction.pattern_timeout", site_id=site_id)
    return found


# ---------------------------------------------------------------- originals, as rows
ORIGINAL_COLUMNS = (
    "id",
    "workspace_id",
    "site_id",
    "subject_id",
    "conversation_id",
    "offline_request_id",
    "ref_kind",
    "ref_id",
    "kinds",
    "text_enc",
    "created_at",
)


class Original(NamedTuple):
    """An original to keep, before its row exists (the write path builds it with its own rows)."""

    ref_kind: str  # message | prechat | offline
    ref_id: str
    text: str
    kinds: tuple[str, ...]


def original_row(
    key: DataKey,
    original: Original,
    *,
    workspace_id: str,
    site_id: str,
    subject_id: str,
    conversation_id: str | None = None,
    offline_request_id: str | None = None,
    now: datetime,
) -> dict[str, Any]:
    row_id = crypto.new_id()
    return {
        "id": row_id,
        "workspace_id": workspace_id,
        "site_id": site_id,
        "subject_id": subject_id,
        "conversation_id": conversation_id,
        "offline_request_id": offline_request_id,
        "ref_kind": original.ref_kind,
        "ref_id": original.ref_id,
        "kinds": list(original.kinds),
        "text_enc": key.encrypt(original.text, aad(row_id)),
        "created_at": now,
    }


async def insert_originals(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(_ORIGINALS), list(rows))


_SQLITE_INSERT = (  # column names from the constant above only
    f"INSERT INTO redacted_originals ({', '.join(ORIGINAL_COLUMNS)}) VALUES ({', '.join('?' * 11)})"  # noqa: S608
)


def insert_originals_sqlite(conn: sqlite3.Connection, rows: Sequence[dict[str, Any]], created_at: str) -> None:
    """``insert_originals`` on the raw SQLite writer connection (``created_at`` as SQLite's text)."""
    if rows:
        conn.executemany(
            _SQLITE_INSERT,
            [
                tuple(
                    created_at if c == "created_at" else json.dumps(r[c]) if c == "kinds" else r[c]
                    for c in ORIGINAL_COLUMNS
                )
                for r in rows
            ],
        )


# ---------------------------------------------------------------- pre-chat answers, offline requests
REDACTED_FIELD_TYPES = frozenset({"text", "textarea", "tel"})


async def mask_answers(
    uow: UnitOfWork, *, site_id: str, fields: dict[str, Any], types: dict[str, str]
) -> tuple[dict[str, Any], list[Original]]:
    """Pre-chat answers masked (free text, and telephone fields but an international number that
    starts with ``+``: e-mail addresses, choices and ticks are not free text). Returns the answers
    and the originals to keep (none unless the site keeps them)."""
    redactor = await redactor_for_site(uow, site_id)
    if redactor is None:
        return fields, []
    out = dict(fields)
    originals: list[Original] = []
    for key, value in fields.items():
        kind = types.get(key, "text")
        if not isinstance(value, str) or kind not in REDACTED_FIELD_TYPES:
            continue
        if kind == "tel" and value.startswith("+"):
            continue
        found = apply(redactor, value, site_id=site_id)
        if found is not None:
            out[key] = found.text
            if redactor.keep_originals:
                originals.append(Original("prechat", key, value, found.kinds))
    return out, originals


async def mask_text(uow: UnitOfWork, *, site_id: str, text: str, ref_kind: str) -> tuple[str, Original | None]:
    """One text masked (an offline request's message); the original to keep, if the site keeps them
    (``ref_id`` is filled in by the caller once its row has an id)."""
    redactor = await redactor_for_site(uow, site_id)
    found = apply(redactor, text, site_id=site_id)
    if found is None or redactor is None:
        return text, None
    return found.text, (Original(ref_kind, "", text, found.kinds) if redactor.keep_originals else None)


async def keep_originals(
    rt: Runtime,
    uow: UnitOfWork,
    originals: Sequence[Original],
    *,
    workspace_id: str,
    site_id: str,
    subject_id: str,
    conversation_id: str | None = None,
    offline_request_id: str | None = None,
) -> None:
    """Store the originals of one subject, encrypted under their data key, in the caller's unit."""
    if not originals:
        return
    key = await rt.keyring.get_for_write(uow.session, subject_id)
    now = clock.now()
    rows = [
        original_row(
            key,
            o,
            workspace_id=workspace_id,
            site_id=site_id,
            subject_id=subject_id,
            conversation_id=conversation_id,
            offline_request_id=offline_request_id,
            now=now,
        )
        for o in originals
    ]
    await uow.session.flush()
    await insert_originals(await uow.session.connection(), rows)


# ---------------------------------------------------------------- reading the originals
def _original_view(key: DataKey, row: RedactedOriginal) -> dict[str, Any]:
    return {
        "id": row.id,
        "ref_kind": row.ref_kind,
        "ref_id": row.ref_id,
        "kinds": list(row.kinds or []),
        "text": key.decrypt(row.text_enc, aad(row.id)),
        "created_at": clock.iso(row.created_at),
    }


async def _read(rt: Runtime, uow: UnitOfWork, subject_id: str, clause: Any) -> list[dict[str, Any]]:
    rows = (
        await uow.session.scalars(
            select(RedactedOriginal)
            .where(RedactedOriginal.subject_id == subject_id, clause)
            .order_by(RedactedOriginal.created_at, RedactedOriginal.id)
        )
    ).all()
    if not rows:
        return []
    key = await rt.keyring.get(uow.session, subject_id)
    return [_original_view(key, r) for r in rows]


async def originals_of_conversation(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, conversation_id: str
) -> list[dict[str, Any]]:
    """The originals of a conversation's masked messages and of its visitor's pre-chat answers,
    for an operator with ``chats.view_redacted`` who can read the conversation; audited."""
    require(actor, Permission.CHATS_VIEW_REDACTED)
    conv = await access_conversation_by_id(uow.session, actor, conversation_id)
    own = RedactedOriginal.conversation_id == conv.id
    return await _viewed(rt, uow, actor, conv.visitor_id, own, "conversation", conv.id)


async def originals_of_offline_request(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, request_id: str
) -> list[dict[str, Any]]:
    require(actor, Permission.CHATS_VIEW_REDACTED)
    row = await access_offline_request_by_id(uow.session, actor, request_id)
    own = RedactedOriginal.offline_request_id == row.id
    return await _viewed(rt, uow, actor, row.visitor_id, own, "offline_request", row.id)


async def _viewed(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, visitor_id: str, own: Any, target_type: str, target_id: str
) -> list[dict[str, Any]]:
    """The originals of one record (``own``) and of its visitor's pre-chat answers, read and audited."""
    prechat = (RedactedOriginal.ref_kind == "prechat") & RedactedOriginal.conversation_id.is_(None)
    items = await _read(rt, uow, visitor_id, or_(own, prechat))
    await audit.record(
        rt,
        uow,
        "redaction.originals_viewed",
        actor=actor,
        target_type=target_type,
        target_id=target_id,
        detail={"count": len(items)},
    )
    return items


# ---------------------------------------------------------------- the policy, for administrators
def policy_view(site_id: str, row: RedactionPolicy | None) -> dict[str, Any]:
    if row is None:
        off = {"cards": False, "ibans": False, "keep_originals": False}
        return {"site_id": site_id, **off, "patterns": [], "version": 0}
    return {
        "site_id": site_id,
        "cards": row.cards,
        "ibans": row.ibans,
        "keep_originals": row.keep_originals,
        "patterns": [dict(p) for p in row.patterns or []],
        "version": row.version,
    }


async def get_policy(uow: UnitOfWork, actor: OperatorActor, site_id: str) -> dict[str, Any]:
    require(actor, Permission.SETTINGS_READ)
    site = await access_site_by_id(uow.session, actor, site_id)
    return policy_view(site.id, await uow.session.get(RedactionPolicy, site.id))


async def overview(uow: UnitOfWork, actor: OperatorActor) -> list[dict[str, Any]]:
    """Every site the actor reaches, with its policy (Settings → Redaction)."""
    require(actor, Permission.SETTINGS_READ)
    sites = await workspaces.list_sites(uow, actor)
    rows = {
        r.site_id: r
        for r in (
            await uow.session.scalars(
                select(RedactionPolicy).where(RedactionPolicy.site_id.in_([s.id for s in sites]))
            )
        ).all()
    }
    return [{"site": {"id": s.id, "name": s.name}, **policy_view(s.id, rows.get(s.id))} for s in sites]


async def set_policy(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, site_id: str, data: PolicyIn
) -> dict[str, Any]:
    """Replace a site's policy (one upsert: two administrators saving at once both bump the
    version, and the writers pick up the last one at their next batch); audited."""
    require(actor, Permission.SETTINGS_MANAGE)
    site = await access_site_by_id(uow.session, actor, site_id)
    patterns = [p.model_dump() for p in data.patterns]
    for p in patterns:  # validated by the schema; checked again here for callers that built one by hand
        try:
            detectors.check_pattern(p["regex"])
        except detectors.PatternError as exc:
            raise Invalid(f"pattern {p['name']}: {exc}") from None
    values = {
        "site_id": site.id,
        "workspace_id": site.workspace_id,
        "cards": data.cards,
        "ibans": data.ibans,
        "keep_originals": data.keep_originals,
        "patterns": patterns,
        "version": 1,
        "updated_at": clock.now(),
        "updated_by": actor.operator_id,
    }
    conn = await uow.session.connection()
    ins: Any = postgresql.insert(_POLICY) if conn.dialect.name == "postgresql" else sqlite.insert(_POLICY)
    changed = {k: ins.excluded[k] for k in ("cards", "ibans", "keep_originals", "patterns", "updated_at", "updated_by")}
    await conn.execute(
        ins.values(**values).on_conflict_do_update(
            index_elements=["site_id"], set_={**changed, "version": _POLICY.c.version + 1}
        )
    )
    await audit.record(
        rt,
        uow,
        "redaction.policy_changed",
        actor=actor,
        target_type="site",
        target_id=site.id,
        detail={
            "cards": data.cards,
            "ibans": data.ibans,
            "keep_originals": data.keep_originals,
            "patterns": len(patterns),
            "patterns_enabled": sum(1 for p in patterns if p["enabled"]),
        },
    )
    row = await uow.session.scalar(
        select(RedactionPolicy).where(RedactionPolicy.site_id == site.id).execution_options(populate_existing=True)
    )
    return policy_view(site.id, row)


async def widget_flags(uow: UnitOfWork, site_id: str) -> dict[str, bool]:
    """What the widget tells the visitor is masked on this site."""
    row = await uow.session.get(RedactionPolicy, site_id)
    if row is None:
        return {"cards": False, "ibans": False, "custom": False}
    return {
        "cards": bool(row.cards),
        "ibans": bool(row.ibans),
        "custom": any(p.get("enabled", True) for p in row.patterns or []),
    }
