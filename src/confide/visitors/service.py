"""Visitors are data subjects: their details are validated against the site's pre-chat form and
stored encrypted under their own data key, with keyed blind indexes for lookups."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from confide.consent import ledger as consent_ledger
from confide.consent import notices as consent_notices
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.errors import Invalid
from confide.core.runtime import Runtime
from confide.redaction import service as redaction
from confide.visitors import values
from confide.visitors.models import Visitor as Visitor  # re-exported: other domains hold visitors
from confide.visitors.models import VisitorTerm
from confide.workspaces.service import Site

_DEFAULT_MAX = values.DEFAULT_MAX


def validate_answers(
    site: Site, fields: dict[str, Any], consents: dict[str, Any], *, require_contact: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check answers against the site's form. Returns (clean fields, the consent choices)."""
    if not isinstance(fields, dict) or not isinstance(consents, dict):
        raise Invalid("fields and consents must be objects")
    form = {f["key"]: f for f in site.prechat_fields}
    unknown = sorted(set(fields) - set(form))
    if unknown:
        raise Invalid(f"unknown field: {unknown[0][:40]}")
    clean: dict[str, Any] = {}
    for key, spec in form.items():
        value = values.clean_answer(spec, fields.get(key))
        if value is not None:
            clean[key] = value
    if require_contact and not (clean.get("email") or clean.get("phone")):
        raise Invalid("an e-mail address or a phone number is needed so that we can answer")
    for key, granted in consents.items():
        if not isinstance(key, str) or len(key) > 40:
            raise Invalid(f"unknown consent purpose: {str(key)[:40]}")
        if not isinstance(granted, bool | dict):
            raise Invalid(f"consent {key}: must be true or false")
    # Each value is true/false or {"granted": bool, "notice_id": "…"} (the notice the form showed).
    # The purposes themselves are checked against what the widget offers when they are recorded
    # in the consent ledger (``record_consents``), in the same unit of work.
    return clean, dict(consents)


def phone_term(rt: Runtime, workspace_id: str, phone: str) -> str | None:
    """The blind-index term of a phone number (``values.phone_term``)."""
    return values.phone_term(rt.bidx, workspace_id, phone)


def _index(rt: Runtime, uow: UnitOfWork, workspace_id: str, visitor_id: str, name: str | None,
           phone: str | None) -> None:
    for t in values.terms(rt.bidx, workspace_id, name, phone):
        uow.session.add(VisitorTerm(visitor_id=visitor_id, term=t))


async def _reindex(rt: Runtime, uow: UnitOfWork, visitor: Visitor, key: crypto.DataKey) -> None:
    """The visitor's terms rebuilt from what is held now (name words and phone)."""
    vid = visitor.id
    name = key.decrypt(visitor.name_enc, f"visitors.name:{vid}") if visitor.name_enc else None
    phone = key.decrypt(visitor.phone_enc, f"visitors.phone:{vid}") if visitor.phone_enc else None
    await uow.session.execute(delete(VisitorTerm).where(VisitorTerm.visitor_id == vid))
    _index(rt, uow, visitor.workspace_id, vid, name, phone)


async def create_visitor(
    rt: Runtime,
    uow: UnitOfWork,
    site: Site,
    fields: dict[str, Any],
    consents: dict[str, Any],
    *,
    visitor_id: str | None = None,
) -> Visitor:
    """A new data subject with its own key. ``visitor_id``: an id claimed beforehand (a verified
    identity claims its subject's id first, ADR 0022)."""
    visitor_id = visitor_id or crypto.new_id()
    # Card numbers, IBANs and the site's patterns are masked before anything is stored (redaction).
    types = {f["key"]: f["type"] for f in site.prechat_fields}
    fields, originals = await redaction.mask_answers(uow, site_id=site.id, fields=fields, types=types)
    key = await rt.keyring.create(uow.session, workspace_id=site.workspace_id, subject_id=visitor_id)
    custom = {k: v for k, v in fields.items() if k not in ("name", "email", "phone")}
    email = fields.get("email")
    visitor = Visitor(
        id=visitor_id,
        workspace_id=site.workspace_id,
        site_id=site.id,
        created_at=clock.now(),
        name_enc=key.encrypt(fields["name"], f"visitors.name:{visitor_id}") if fields.get("name") else None,
        email_enc=key.encrypt(email, f"visitors.email:{visitor_id}") if email else None,
        email_bidx=rt.bidx.email(site.workspace_id, email) if email else None,
        phone_enc=key.encrypt(fields["phone"], f"visitors.phone:{visitor_id}") if fields.get("phone") else None,
        fields_enc=key.encrypt_json(custom, f"visitors.fields:{visitor_id}") if custom else None,
        consents={},  # ---- consent: choices live in the consent ledger now (record_consents); column kept, unused
    )
    uow.session.add(visitor)
    await uow.session.flush()
    await redaction.keep_originals(
        rt, uow, originals, workspace_id=site.workspace_id, site_id=site.id, subject_id=visitor_id
    )
    _index(rt, uow, site.workspace_id, visitor_id, fields.get("name"), fields.get("phone"))
    return visitor


async def update_details(
    rt: Runtime, uow: UnitOfWork, site: Site, visitor: Visitor, fields: dict[str, Any], consents: dict[str, Any]
) -> None:
    """A returning visitor (a verified identity, ADR 0022) answered the pre-chat form again: what is
    given now replaces what was held (name, e-mail, phone, each custom answer); what is left out
    is kept. The form's consent choices go to the ledger (record_consents). Masked as a new
    visitor's answers are (redaction)."""
    key = await rt.keyring.get_for_write(uow.session, visitor.id)
    vid = visitor.id
    types = {f["key"]: f["type"] for f in site.prechat_fields}
    fields, originals = await redaction.mask_answers(uow, site_id=site.id, fields=fields, types=types)
    await redaction.keep_originals(rt, uow, originals, workspace_id=site.workspace_id, site_id=site.id, subject_id=vid)
    if fields.get("name"):
        visitor.name_enc = key.encrypt(fields["name"], f"visitors.name:{vid}")
    if fields.get("email"):
        visitor.email_enc = key.encrypt(fields["email"], f"visitors.email:{vid}")
        visitor.email_bidx = rt.bidx.email(site.workspace_id, fields["email"])
    if fields.get("phone"):
        visitor.phone_enc = key.encrypt(fields["phone"], f"visitors.phone:{vid}")
    if fields.get("name") or fields.get("phone"):
        await _reindex(rt, uow, visitor, key)
    custom = {k: v for k, v in fields.items() if k not in ("name", "email", "phone")}
    if custom:
        held = key.decrypt_json(visitor.fields_enc, f"visitors.fields:{vid}") if visitor.fields_enc else {}
        visitor.fields_enc = key.encrypt_json({**held, **custom}, f"visitors.fields:{vid}")
    await uow.session.flush()


async def record_consents(
    rt: Runtime,
    uow: UnitOfWork,
    site: Site,
    visitor: Visitor,
    choices: dict[str, Any],
    *,
    conversation_id: str | None = None,
) -> None:
    """The form's consent boxes, into the ledger: one row per purpose the widget offered."""
    await consent_ledger.record_choices(
        rt, uow, site=site, subject_id=visitor.id, choices=choices, conversation_id=conversation_id
    )


async def add_contact(
    rt: Runtime, uow: UnitOfWork, site: Site, visitor: Visitor, *, email: object = None, phone: object = None
) -> None:
    """A way to answer the visitor (leaving a message from the chat): an e-mail address or a phone
    number given now replaces the one held; with neither given nor held, ``Invalid``."""
    given: dict[str, Any] = {}
    for key, value in (("email", email), ("phone", phone)):
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if not isinstance(value, str):
            raise Invalid(f"{key} must be text")
        value = value.strip()
        if len(value) > _DEFAULT_MAX:
            raise Invalid(f"{key} is too long")
        value = values.clean_email(value) if key == "email" else values.check_phone(value)
        given[key] = value
    if not given and visitor.email_enc is None and visitor.phone_enc is None:
        raise Invalid("an e-mail address or a phone number is needed so that we can answer")
    data_key = await rt.keyring.get_for_write(uow.session, visitor.id)
    if "email" in given:
        visitor.email_enc = data_key.encrypt(given["email"], f"visitors.email:{visitor.id}")
        visitor.email_bidx = rt.bidx.email(site.workspace_id, given["email"])
    if "phone" in given:
        visitor.phone_enc = data_key.encrypt(given["phone"], f"visitors.phone:{visitor.id}")
        await _reindex(rt, uow, visitor, data_key)
    await uow.session.flush()


async def profile(rt: Runtime, uow: UnitOfWork, visitor: Visitor) -> dict[str, Any]:
    """The visitor's details, decrypted, for an authorised reader."""
    key = await rt.keyring.get(uow.session, visitor.id)
    vid = visitor.id
    return {
        "id": vid,
        "name": key.decrypt(visitor.name_enc, f"visitors.name:{vid}") if visitor.name_enc else None,
        "email": key.decrypt(visitor.email_enc, f"visitors.email:{vid}") if visitor.email_enc else None,
        "phone": key.decrypt(visitor.phone_enc, f"visitors.phone:{vid}") if visitor.phone_enc else None,
        "fields": key.decrypt_json(visitor.fields_enc, f"visitors.fields:{vid}") if visitor.fields_enc else {},
        "consents": await consent_ledger.granted_keys(uow, visitor.workspace_id, vid),
        "consent_purposes": await consent_notices.statement_purposes(uow, visitor.workspace_id),
    }


async def newest_email(rt: Runtime, uow: UnitOfWork, visitor_ids: list[str]) -> str | None:
    """The e-mail address of the newest of these visits that gave one (where to write to the
    person: an export link, a restriction's lift), or ``None``."""
    newest: tuple[Any, str] | None = None
    for vid in visitor_ids:
        visitor = await get_visitor(uow, vid)
        if visitor is None or visitor.email_enc is None:
            continue
        email = (await profile(rt, uow, visitor)).get("email")
        if email and (newest is None or visitor.created_at > newest[0]):
            newest = (visitor.created_at, email)
    return newest[1] if newest else None


async def get_visitor(uow: UnitOfWork, visitor_id: str) -> Visitor | None:
    return await uow.session.get(Visitor, visitor_id)


async def share_lock(uow: UnitOfWork, visitor_ids: list[str]) -> None:
    """Hold these visitor rows ``FOR SHARE`` (in id order) until the end of the transaction: an
    erasure or a rectification (which lock them ``FOR UPDATE`` before anything else) waits for the
    caller, or the caller for them (``prospects.reindex``: visitors before their prospects)."""
    ids = sorted(set(visitor_ids))
    if ids:
        await uow.session.execute(
            select(Visitor.id).where(Visitor.id.in_(ids)).order_by(Visitor.id).with_for_update(read=True)
        )


def visitor_ids_by_phone(rt: Runtime, workspace_id: str, phone: str) -> Any:
    """A subquery of the workspace's visitor ids whose phone number is ``phone`` (digits compared)."""
    term = phone_term(rt, workspace_id, phone)
    if term is None:
        return select(Visitor.id).where(Visitor.id.is_(None))
    return select(Visitor.id).where(
        Visitor.workspace_id == workspace_id,
        Visitor.id.in_(select(VisitorTerm.visitor_id).where(VisitorTerm.term == term)),
    )


def visitor_ids_matching(rt: Runtime, workspace_id: str, query: str) -> Any:
    """A subquery of visitor ids whose e-mail is ``query`` or whose name holds all of its words."""
    query = query.strip()
    if "@" in query:
        return select(Visitor.id).where(
            Visitor.workspace_id == workspace_id, Visitor.email_bidx == rt.bidx.email(workspace_id, query)
        )
    terms = list(dict.fromkeys(rt.bidx.text_terms(workspace_id, "name", query)))
    if not terms:
        return select(Visitor.id).where(Visitor.id.is_(None))
    stmt = select(VisitorTerm.visitor_id).where(VisitorTerm.term.in_(terms)).group_by(VisitorTerm.visitor_id)
    return stmt.having(func.count() == len(terms))
