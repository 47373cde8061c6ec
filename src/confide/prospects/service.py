"""Prospects: created by an operator (from a chat, an offline request, or by hand) or automatically
from pre-chat and offline data; listed, opened, edited and deleted through ``permissions/``.

Contact data and notes are encrypted under the data key of the prospect's subject: the visitor's
when the prospect comes from a chat or an offline request (the same person, erased together), a
key of its own otherwise (destroyed when the prospect is deleted). Lookups go through keyed blind
indexes: ``email_bidx`` (exact e-mail) and ``prospect_terms`` (words of the name and company, and
the phone's term: the same as a visitor's for the same number, so Find a person finds both).

Automatic creation runs only where the site turned it on, the visitor gave an e-mail address, has
not objected (``profiling_objections``, matched by the e-mail's blind index, so an objection holds
for every later chat with that address) and ``basis.may_profile`` allows it.

Edits carry the version the editor saw; the row is locked (``FOR UPDATE``) and an edit of a stale
version is a conflict (409), so two operators editing at once never overwrite each other silently.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto, expiry
from confide.core.db import UnitOfWork
from confide.core.errors import Conflict, Invalid, NotFound
from confide.core.runtime import Runtime
from confide.permissions.access import (
    access_conversation_by_id,
    access_department_by_id,
    access_offline_request_by_id,
    access_operator_by_id,
    access_prospect_by_id,
    access_site_by_id,
    prospect_placement_allowed,
    prospect_scope,
    without_restricted,
)
from confide.permissions.policy import Permission, require
from confide.prospects import basis
from confide.prospects import values as prospect_values
from confide.prospects.models import ProfilingObjection, Prospect, ProspectSettings, ProspectTerm
from confide.prospects.schemas import ProspectFilters, ProspectIn, ProspectPatch, ProspectSettingsIn
from confide.realtime import events
from confide.users import operators as user_operators
from confide.visitors import service as visitors
from confide.visitors.service import Visitor
from confide.workspaces import service as workspaces
from confide.workspaces.service import Site

_CONTACT = ("name", "email", "phone", "company")
_EDITABLE = ("status", "value", "currency", "owner_id", "notes", *_CONTACT)
_INDEXED = frozenset({"name", "company", "phone"})  # the fields prospect_terms are made of


# ---------------------------------------------------------------- helpers
def _aad(column: str, prospect_id: str) -> str:
    return f"prospects.{column}:{prospect_id}"


def _clean_contact(values: dict[str, Any]) -> dict[str, str | None]:
    """Trimmed contact fields; an empty value clears the field; e-mail and phone validated."""
    out: dict[str, str | None] = {}
    for key, value in values.items():
        text = value.strip() if isinstance(value, str) else None
        if not text:
            out[key] = None
            continue
        out[key] = prospect_values.clean_one(key, text)
    return out


def _minor(value: Decimal | None) -> int | None:
    return None if value is None else int((value * 100).to_integral_value())


def _terms(rt: Runtime, workspace_id: str, contact: dict[str, str | None]) -> list[str]:
    return prospect_values.terms(rt.bidx, workspace_id, contact.get("name"), contact.get("company"),
                                 contact.get("phone"))


def _own_subject(row: Prospect) -> bool:
    """A prospect entered by hand is its own data subject (a key of its own, not a visitor's)."""
    return row.visitor_id is None or row.subject_id != row.visitor_id


async def _rotate_own_key(rt: Runtime, uow: UnitOfWork, row: Prospect) -> crypto.DataKey:
    """A correction of a hand-entered prospect's details leaves the old values unrecoverable, as
    rectification does for a visitor (Art. 16, ADR 0032): its key is replaced by a new one and
    every ciphertext of the row re-encrypted under it, so that a backup's copy of the old row dies
    with the old key; every node forgets the old key after the commit (``KeysDestroyed``). The
    caller writes the corrected values under the returned key."""
    sid = row.subject_id
    old = (await rt.keyring.lock(uow.session, [sid])).get(sid)
    if old is None:
        raise NotFound("prospect not found")  # its key is destroyed: it is being erased
    held = await _decrypt(rt, uow, row, old)
    key = await rt.keyring.replace(uow.session, sid)
    for field, value in held.items():
        setattr(row, f"{field}_enc", key.encrypt(value, _aad(field, row.id)) if value else None)
    keyring = rt.keyring

    async def forget_here() -> None:  # this node at once; the others by the event
        keyring.forget(sid)

    uow.after_commit(forget_here)
    events.publish(rt, uow, events.KeysDestroyed((sid,)))
    if rt.db.is_sqlite:  # the old wrapped key and ciphertexts leave the file's free pages and the WAL
        await uow.session.execute(text("PRAGMA secure_delete = ON"))
        rt.db.truncate_wal_after_commit(uow)
    return key


async def _write_contact(
    rt: Runtime, uow: UnitOfWork, row: Prospect, contact: dict[str, str | None], *, reindex: bool,
    key: crypto.DataKey | None = None,
) -> None:
    key = key or await rt.keyring.get_for_write(uow.session, row.subject_id)
    for field, value in contact.items():
        setattr(row, f"{field}_enc", key.encrypt(value, _aad(field, row.id)) if value else None)
        if field == "email":
            row.email_bidx = rt.bidx.email(row.workspace_id, value) if value else None
    if reindex:
        current = await _decrypt(rt, uow, row, key)
        await uow.session.execute(delete(ProspectTerm).where(ProspectTerm.prospect_id == row.id))
        for term in _terms(rt, row.workspace_id, current):
            uow.session.add(ProspectTerm(prospect_id=row.id, term=term))


async def _decrypt(
    rt: Runtime, uow: UnitOfWork, row: Prospect, key: crypto.DataKey | None = None
) -> dict[str, str | None]:
    key = key or await rt.keyring.get(uow.session, row.subject_id)
    out: dict[str, str | None] = {}
    for field in (*_CONTACT, "notes"):
        blob = getattr(row, f"{field}_enc")
        out[field] = key.decrypt(blob, _aad(field, row.id)) if blob else None
    return out


async def get_settings(uow: UnitOfWork, site_id: str) -> ProspectSettings | None:
    return await uow.session.get(ProspectSettings, site_id)


async def _currency(uow: UnitOfWork, site_id: str, given: str | None) -> str:
    if given:
        return given
    found = await get_settings(uow, site_id)
    return found.currency if found is not None else "EUR"


async def _check_owner(uow: UnitOfWork, actor: OperatorActor, owner_id: str | None) -> None:
    if owner_id is not None:
        try:
            await access_operator_by_id(uow.session, actor, owner_id)
        except NotFound:
            raise Invalid("the owner must be an operator of this workspace") from None


# ---------------------------------------------------------------- objections (Art. 21)
async def record_objection(rt: Runtime, uow: UnitOfWork, workspace_id: str, email: str) -> bool:
    """The person with this e-mail address objects to profiling: stored as its blind index only,
    honoured at once by every automatic creation. True when newly recorded (idempotent)."""
    try:
        normal = validate_email(email.strip(), check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError:
        raise Invalid("not a valid e-mail address") from None
    table: Any = ProfilingObjection.__table__
    conn = await uow.session.connection()
    ins: Any = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    stmt = ins.values(
        id=crypto.new_id(), workspace_id=workspace_id, email_bidx=rt.bidx.email(workspace_id, normal),
        created_at=clock.now(),
    ).on_conflict_do_nothing(index_elements=["workspace_id", "email_bidx"])
    result: Any = await uow.session.execute(stmt)
    return bool(result.rowcount)


async def objected(uow: UnitOfWork, workspace_id: str, email_bidx: str | None) -> bool:
    if email_bidx is None:
        return False
    found = await uow.session.scalar(
        select(ProfilingObjection.id).where(
            ProfilingObjection.workspace_id == workspace_id, ProfilingObjection.email_bidx == email_bidx
        )
    )
    return found is not None


async def record_objection_by_operator(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, email: str) -> bool:
    """An operator records a person's objection (said in a chat, by mail, by phone)."""
    require(actor, Permission.PROSPECTS_MANAGE)
    new = await record_objection(rt, uow, actor.workspace_id, email)
    await audit.record(rt, uow, "prospects.objection_recorded", actor=actor, target_type="profiling_objection",
                       detail={"new": new})
    return new


async def object_for_prospect(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, prospect_id: str) -> bool:
    """Record the objection of the person a prospect is about (by its e-mail address)."""
    row = await access_prospect_by_id(uow.session, actor, prospect_id, permission=Permission.PROSPECTS_MANAGE)
    email = (await _decrypt(rt, uow, row))["email"]
    if not email:
        raise Invalid("this prospect has no e-mail address to record the objection by")
    new = await record_objection(rt, uow, row.workspace_id, email)
    await audit.record(rt, uow, "prospects.objection_recorded", actor=actor, target_type="prospect",
                       target_id=row.id, detail={"new": new})
    return new


# ---------------------------------------------------------------- creation
async def _insert(
    rt: Runtime,
    uow: UnitOfWork,
    *,
    site_id: str,
    workspace_id: str,
    department_id: str | None,
    visitor_id: str | None,
    source: str,
    contact: dict[str, str | None],
    status: str = "new",
    value_minor: int | None = None,
    currency: str,
    owner_id: str | None = None,
    notes: str | None = None,
    conversation_id: str | None = None,
    offline_request_id: str | None = None,
    created_by: str | None = None,
) -> Prospect:
    prospect_id = crypto.new_id()
    subject_id = visitor_id or crypto.new_id()
    if visitor_id is None:  # entered by hand: a data subject of its own
        await rt.keyring.create(uow.session, workspace_id=workspace_id, subject_id=subject_id)
    now = clock.now()
    row = Prospect(
        id=prospect_id, workspace_id=workspace_id, site_id=site_id, department_id=department_id,
        subject_id=subject_id, visitor_id=visitor_id, conversation_id=conversation_id,
        offline_request_id=offline_request_id, source=source, status=status, value_minor=value_minor,
        currency=currency, owner_id=owner_id, version=1, created_by=created_by, created_at=now, updated_at=now,
    )
    uow.session.add(row)
    await uow.session.flush()
    await _write_contact(rt, uow, row, {**contact, "notes": notes}, reindex=False)
    for term in _terms(rt, workspace_id, contact):
        uow.session.add(ProspectTerm(prospect_id=row.id, term=term))
    await uow.session.flush()
    return row


async def _visitor_contact(rt: Runtime, uow: UnitOfWork, visitor_id: str) -> dict[str, str | None]:
    visitor = await visitors.get_visitor(uow, visitor_id)
    if visitor is None:
        return {}
    profile = await visitors.profile(rt, uow, visitor)
    fields = profile.get("fields") or {}
    company = fields.get("company") if isinstance(fields.get("company"), str) else None
    return {"name": profile["name"], "email": profile["email"], "phone": profile["phone"], "company": company}


async def create(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, data: ProspectIn) -> dict[str, Any]:
    """An operator adds a prospect: from a chat they can read, an offline request they can read, or
    by hand for a site (and department) within their reach."""
    require(actor, Permission.PROSPECTS_MANAGE)
    if data.conversation_id is not None and data.offline_request_id is not None:
        raise Invalid("give a conversation or an offline request, not both")
    visitor_id: str | None = None
    conversation_id: str | None = None
    offline_request_id: str | None = None
    department_id: str | None
    if data.conversation_id is not None:
        conv = await access_conversation_by_id(uow.session, actor, data.conversation_id)
        site_id, department_id, visitor_id = conv.site_id, conv.department_id, conv.visitor_id
        conversation_id, source = conv.id, "chat"
    elif data.offline_request_id is not None:
        req = await access_offline_request_by_id(uow.session, actor, data.offline_request_id)
        site_id, department_id, visitor_id = req.site_id, req.department_id, req.visitor_id
        offline_request_id, source = req.id, "offline_request"
    else:
        if data.site_id is None:
            raise Invalid("choose the site the prospect belongs to")
        site = await access_site_by_id(uow.session, actor, data.site_id)
        site_id, department_id, source = site.id, None, "manual"
        if data.department_id is not None:
            dept = await access_department_by_id(uow.session, actor, data.department_id)
            department_id = workspaces.check_department_belongs(dept, site).id
    if (data.conversation_id or data.offline_request_id) and data.department_id is not None:
        raise Invalid("the department of a prospect from a chat or an offline request is theirs")
    if not await prospect_placement_allowed(uow.session, actor, site_id, department_id):
        raise Invalid("this prospect would be outside your departments")
    await _check_owner(uow, actor, data.owner_id)
    contact = await _visitor_contact(rt, uow, visitor_id) if visitor_id else {}
    given = _clean_contact({k: getattr(data, k) for k in (*_CONTACT, "notes") if getattr(data, k) is not None})
    notes = given.pop("notes", None)
    contact = {k: given.get(k, contact.get(k)) for k in _CONTACT}
    if not (contact.get("name") or contact.get("email") or contact.get("phone") or contact.get("company")):
        raise Invalid("a prospect needs a name, an e-mail address, a phone number or a company")
    row = await _insert(
        rt, uow, site_id=site_id, workspace_id=actor.workspace_id, department_id=department_id,
        visitor_id=visitor_id, source=source, contact=contact, status=data.status, value_minor=_minor(data.value),
        currency=await _currency(uow, site_id, data.currency), owner_id=data.owner_id,
        notes=notes, conversation_id=conversation_id,
        offline_request_id=offline_request_id, created_by=actor.operator_id,
    )
    await audit.record(rt, uow, "prospects.created", actor=actor, target_type="prospect", target_id=row.id,
                       detail={"source": source})
    return await view(rt, uow, row)


async def create_automatically(
    rt: Runtime,
    uow: UnitOfWork,
    site: Site,
    visitor: Visitor,
    *,
    department_id: str | None = None,
    conversation_id: str | None = None,
    offline_request_id: str | None = None,
) -> Prospect | None:
    """From pre-chat or offline data, in the unit that stored it: only where the site turned it on,
    the visitor gave an e-mail address, has not objected and profiling has a basis; at most one
    prospect per e-mail address in a workspace. Returns the prospect, or None."""
    settings = await get_settings(uow, site.id)
    if settings is None or not settings.auto_create or visitor.email_bidx is None:
        return None
    if await objected(uow, site.workspace_id, visitor.email_bidx):
        return None
    if not await basis.may_profile(uow, site, visitor):
        return None
    existing = await uow.session.scalar(
        select(Prospect.id).where(Prospect.workspace_id == site.workspace_id, Prospect.email_bidx == visitor.email_bidx)
    )
    if existing is not None:
        return None
    row = await _insert(
        rt, uow, site_id=site.id, workspace_id=site.workspace_id, department_id=department_id,
        visitor_id=visitor.id, source="automatic", contact=await _visitor_contact(rt, uow, visitor.id),
        currency=settings.currency, conversation_id=conversation_id, offline_request_id=offline_request_id,
    )
    await audit.record(rt, uow, "prospects.created", actor_type="system", workspace_id=site.workspace_id,
                       target_type="prospect", target_id=row.id, detail={"source": "automatic"})
    return row


# ---------------------------------------------------------------- reading
async def view(rt: Runtime, uow: UnitOfWork, row: Prospect) -> dict[str, Any]:
    data = await _decrypt(rt, uow, row)
    site = await workspaces.get_site(uow, row.site_id)
    dept = await workspaces.get_department(uow, row.department_id) if row.department_id else None
    owner = await user_operators.operator_name(uow, row.owner_id)
    return {
        "id": row.id,
        "site": {"id": row.site_id, "name": site.name if site else None},
        "department": {"id": dept.id, "name": dept.name} if dept else None,
        **data,
        "source": row.source,
        "status": row.status,
        "value": None if row.value_minor is None else f"{Decimal(row.value_minor).scaleb(-2):.2f}",
        "currency": row.currency,
        "owner": {"id": row.owner_id, "name": owner} if row.owner_id else None,
        "visitor_id": row.visitor_id,
        "conversation_id": row.conversation_id,
        "offline_request_id": row.offline_request_id,
        "version": row.version,
        "created_at": clock.iso(row.created_at),
        "updated_at": clock.iso(row.updated_at),
    }


async def open_prospect(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, prospect_id: str, *, via: str
) -> dict[str, Any]:
    """One prospect, decrypted: a read of personal data, audited in the same unit."""
    row = await access_prospect_by_id(uow.session, actor, prospect_id)
    await audit.record(rt, uow, "prospects.viewed", actor=actor, target_type="prospect", target_id=row.id,
                       detail={"via": via})
    return await view(rt, uow, row)


async def search(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, filters: ProspectFilters
) -> tuple[list[dict[str, Any]], int]:
    stmt = without_restricted(actor, prospect_scope(actor, select(Prospect)), Prospect.visitor_id)
    if filters.date_from:
        stmt = stmt.where(Prospect.created_at >= filters.date_from)
    if filters.date_to:
        stmt = stmt.where(Prospect.created_at <= filters.date_to)
    for column, value in (
        (Prospect.site_id, filters.site_id),
        (Prospect.department_id, filters.department_id),
        (Prospect.status, filters.status),
        (Prospect.source, filters.source),
        (Prospect.owner_id, filters.owner_id),
    ):
        if value:
            stmt = stmt.where(column == value)
    query = (filters.text or "").strip()
    if query:
        if "@" in query:
            try:
                email = validate_email(query, check_deliverability=False, test_environment=True).normalized
            except EmailNotValidError:
                raise Invalid("not a valid e-mail address") from None
            stmt = stmt.where(Prospect.email_bidx == rt.bidx.email(actor.workspace_id, email))
        else:
            terms = list(dict.fromkeys(rt.bidx.text_terms(actor.workspace_id, "prospect", query)))
            if not terms:
                raise Invalid("search for words of at least two letters")
            matching = (
                select(ProspectTerm.prospect_id)
                .where(ProspectTerm.term.in_(terms))
                .group_by(ProspectTerm.prospect_id)
                .having(func.count() == len(terms))
            )
            stmt = stmt.where(Prospect.id.in_(matching))
    total = int(await uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = (
        await uow.session.scalars(
            stmt.order_by(Prospect.created_at.desc(), Prospect.id)
            .offset((filters.page - 1) * filters.per_page)
            .limit(filters.per_page)
        )
    ).all()
    return [await view(rt, uow, row) for row in rows], total


async def owner_choices(uow: UnitOfWork, actor: OperatorActor) -> list[dict[str, str]]:
    """The operators a prospect may be given to (any operator of the workspace)."""
    return [{"id": op.id, "name": op.name} for op in await user_operators.list_operators(uow, actor)]


# ---------------------------------------------------------------- editing
async def update(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, prospect_id: str, patch: ProspectPatch
) -> dict[str, Any]:
    row = await access_prospect_by_id(
        uow.session, actor, prospect_id, permission=Permission.PROSPECTS_MANAGE, for_update=True
    )
    if row.version != patch.version:
        raise Conflict("this prospect was changed meanwhile; reload it and edit again")
    given = patch.model_fields_set & set(_EDITABLE)
    if "owner_id" in given:
        await _check_owner(uow, actor, patch.owner_id)
        row.owner_id = patch.owner_id
    if "status" in given:
        if patch.status is None:
            raise Invalid("status cannot be empty")
        row.status = patch.status
    if "value" in given:
        row.value_minor = _minor(patch.value)
    if "currency" in given and patch.currency is not None:
        row.currency = patch.currency
    contact = _clean_contact({k: getattr(patch, k) for k in (*_CONTACT, "notes") if k in given})
    rotated = False
    if contact:
        # A visitor's prospect shares the visitor's key: correcting the person everywhere, old
        # values unrecoverable, is rectification's (Find a person -> Correct), which reaches it.
        held = await _decrypt(rt, uow, row)
        changed = any(held[field] != value for field, value in contact.items())
        key = await _rotate_own_key(rt, uow, row) if changed and _own_subject(row) else None
        rotated = key is not None
        await _write_contact(rt, uow, row, contact, reindex=bool(_INDEXED & set(contact)), key=key)
    row.version += 1
    row.updated_at = clock.now()
    await uow.session.flush()
    await audit.record(rt, uow, "prospects.updated", actor=actor, target_type="prospect", target_id=row.id,
                       detail={"changed": len(given), "version": row.version, "status": row.status,
                               "key_rotated": rotated})
    return await view(rt, uow, row)


async def remove(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, prospect_id: str) -> None:
    """Delete a prospect; a prospect entered by hand is its own data subject: its key is destroyed."""
    row = await access_prospect_by_id(
        uow.session, actor, prospect_id, permission=Permission.PROSPECTS_MANAGE, for_update=True
    )
    own_subject = _own_subject(row)
    subject_id = row.subject_id
    await uow.session.execute(delete(ProspectTerm).where(ProspectTerm.prospect_id == row.id))
    await uow.session.delete(row)
    await uow.session.flush()
    if own_subject:
        await rt.keyring.destroy(uow.session, subject_id)
    await audit.record(rt, uow, "prospects.deleted", actor=actor, target_type="prospect", target_id=prospect_id)


# ---------------------------------------------------------------- per-site settings
def settings_view(site: Site, row: ProspectSettings | None) -> dict[str, Any]:
    return {
        "site": {"id": site.id, "name": site.name},
        "auto_create": bool(row and row.auto_create),
        "basis": row.basis if row else basis.CONSENT,
        "interest_note": row.interest_note if row else "",
        "currency": row.currency if row else "EUR",
    }


async def list_settings(uow: UnitOfWork, actor: OperatorActor) -> list[dict[str, Any]]:
    require(actor, Permission.SETTINGS_READ)
    sites = await workspaces.list_sites(uow, actor)
    return [settings_view(site, await get_settings(uow, site.id)) for site in sites]


async def update_settings(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, site_id: str, data: ProspectSettingsIn
) -> dict[str, Any]:
    require(actor, Permission.SETTINGS_MANAGE)
    site = await access_site_by_id(uow.session, actor, site_id)
    if data.basis == basis.LEGITIMATE_INTEREST and not data.interest_note.strip():
        raise Invalid("document the legitimate interest (the balancing test) before relying on it")
    # One row per site, created by whichever of two racing saves comes first, then locked and updated.
    table: Any = ProspectSettings.__table__
    conn = await uow.session.connection()
    ins: Any = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    await uow.session.execute(
        ins.values(site_id=site.id, workspace_id=site.workspace_id, auto_create=False, basis=basis.CONSENT,
                   interest_note="", currency="EUR", updated_at=clock.now()).on_conflict_do_nothing(
            index_elements=["site_id"])
    )
    row = await uow.session.get(ProspectSettings, site.id, with_for_update=True, populate_existing=True)
    assert row is not None
    row.auto_create = data.auto_create
    row.basis = data.basis
    row.interest_note = data.interest_note.strip()
    row.currency = data.currency
    row.updated_at = clock.now()
    row.updated_by = actor.operator_id
    await uow.session.flush()
    await audit.record(rt, uow, "prospects.settings_changed", actor=actor, target_type="site", target_id=site.id,
                       detail={"auto_create": data.auto_create, "basis": data.basis})
    return settings_view(site, row)


# ---------------------------------------------------------------- retention (ADR 0030)
def _expired(criteria: expiry.Expired) -> list[Any]:
    return [
        Prospect.workspace_id == criteria.workspace_id,
        Prospect.site_id == criteria.site_id,
        Prospect.updated_at < criteria.before,
        expiry.not_held(Prospect.visitor_id, criteria.held_visitors),
        expiry.not_held(Prospect.subject_id, criteria.held_visitors),
        expiry.not_held(Prospect.conversation_id, criteria.held_conversations),
    ]


async def expired_prospects(uow: UnitOfWork, criteria: expiry.Expired, *, limit: int) -> list[str]:
    """Ids of prospects not changed since ``criteria.before`` (not held), oldest first, locked."""
    return await expiry.take(uow, Prospect.id, _expired(criteria), Prospect.updated_at, limit)


async def count_expired_prospects(uow: UnitOfWork, criteria: expiry.Expired) -> int:
    return await expiry.count(uow, Prospect.id, _expired(criteria))


async def delete_prospects(uow: UnitOfWork, prospect_ids: list[str]) -> int:
    return await expiry.delete_ids(uow, Prospect.id, prospect_ids)
