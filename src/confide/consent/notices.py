"""A workspace's processing purposes and their versioned notices, as rows (ADR 0018): the default
purposes of a new workspace and a site's own, the look-ups every other consent module and domain
makes, and what the widget offers (its consent checkboxes, each with the exact notice shown).

Each purpose carries a lawful basis (``purposes.py`` holds the keys and the defaults). Notices are
versioned per purpose (one version counter across languages) and never edited: publishing a text
makes a new version (``admin.publish_notice``). Changing them is the back office's (``admin``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from confide.consent import purposes as K
from confide.consent.models import Notice, Purpose
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.errors import NotFound
from confide.workspaces.models import Site


def new_notice(purpose: Purpose, version: int, language: str, text: str, material: bool, by: str | None) -> Notice:
    """One version of a purpose's notice (with the digest of its text), not added to the session."""
    return Notice(
        id=crypto.new_id(),
        workspace_id=purpose.workspace_id,
        purpose_id=purpose.id,
        version=version,
        language=language,
        text=text,
        sha256=crypto.sha256_hex(text),
        material=material,
        created_at=clock.now(),
        created_by=by,
    )


async def add_purpose(
    uow: UnitOfWork,
    workspace_id: str,
    *,
    key: str,
    name: str,
    basis: str,
    notice: str,
    language: str = K.DEFAULT_LANGUAGE,
    description: str = "",
    retention_class: str = "",
    recipients: str = "",
    required: bool = False,
    enabled: bool = True,
    by: str | None = None,
) -> Purpose:
    """A new purpose with its first notice (version 1)."""
    now = clock.now()
    purpose = Purpose(
        id=crypto.new_id(),
        workspace_id=workspace_id,
        key=key,
        name=name,
        lawful_basis=basis,
        description=description,
        retention_class=retention_class,
        recipients=recipients,
        enabled=enabled,
        required=required,
        latest_version=1,
        material_version=0,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(purpose)
    await uow.session.flush()
    uow.session.add(new_notice(purpose, 1, language, notice, False, by))
    await uow.session.flush()
    return purpose


async def seed_defaults(uow: UnitOfWork, workspace_id: str) -> None:
    """The default purposes of a new workspace (keys already there are left as they are)."""
    have = set((await uow.session.scalars(select(Purpose.key).where(Purpose.workspace_id == workspace_id))).all())
    for d in K.DEFAULTS:
        if d.key not in have:
            await add_purpose(
                uow,
                workspace_id,
                key=d.key,
                name=d.name,
                basis=d.lawful_basis,
                notice=d.notice,
                description=d.description,
                retention_class=d.retention_class,
                recipients=d.recipients,
                required=d.required,
            )


async def adopt_site_purposes(uow: UnitOfWork, workspace_id: str, site_purposes: list[dict[str, Any]]) -> None:
    """A site's list of offered purposes names workspace purposes by key; a key the workspace does
    not have yet becomes a consent-based purpose whose first notice is the site's label."""
    if not site_purposes:
        return
    await seed_defaults(uow, workspace_id)
    have = set((await uow.session.scalars(select(Purpose.key).where(Purpose.workspace_id == workspace_id))).all())
    for item in site_purposes:
        key = str(item.get("key", ""))
        if key and key not in have:
            label = str(item.get("label") or key)[:4000]
            await add_purpose(uow, workspace_id, key=key, name=label[:200], basis=K.CONSENT, notice=label,
                              retention_class="consent")
            have.add(key)


async def list_purposes(uow: UnitOfWork, workspace_id: str) -> list[Purpose]:
    stmt = select(Purpose).where(Purpose.workspace_id == workspace_id).order_by(Purpose.created_at, Purpose.key)
    return list((await uow.session.scalars(stmt)).all())


async def get_purpose(uow: UnitOfWork, workspace_id: str, key: object) -> Purpose | None:
    if not isinstance(key, str) or len(key) > 40:
        return None
    return await uow.session.scalar(select(Purpose).where(Purpose.workspace_id == workspace_id, Purpose.key == key))


async def notices_of(uow: UnitOfWork, purpose: Purpose) -> list[Notice]:
    stmt = select(Notice).where(Notice.purpose_id == purpose.id).order_by(Notice.version.desc(), Notice.language)
    return list((await uow.session.scalars(stmt)).all())


async def current_notice(uow: UnitOfWork, purpose: Purpose, language: str | None = None) -> Notice | None:
    """The newest notice in ``language``, else in the default language, else in any language."""
    for lang in dict.fromkeys([language or K.DEFAULT_LANGUAGE, K.DEFAULT_LANGUAGE, None]):
        stmt = select(Notice).where(Notice.purpose_id == purpose.id)
        if lang is not None:
            stmt = stmt.where(Notice.language == lang)
        notice = await uow.session.scalar(stmt.order_by(Notice.version.desc()).limit(1))
        if notice is not None:
            return notice
    return None


async def notice_in_workspace(uow: UnitOfWork, workspace_id: str, notice_id: object) -> Notice:
    if not isinstance(notice_id, str) or len(notice_id) > 64:
        raise NotFound("notice not found")
    notice = await uow.session.scalar(
        select(Notice).where(Notice.id == notice_id, Notice.workspace_id == workspace_id)
    )
    if notice is None:
        raise NotFound("notice not found")
    return notice


async def offered_purposes(uow: UnitOfWork, site: Site) -> list[Purpose]:
    """What the site's widget asks about: the enabled consent-based purposes of the workspace, or
    only those the site lists (``site.purposes`` keys) when it lists any."""
    chosen = [str(p.get("key")) for p in site.purposes or []]
    out = [
        p
        for p in await list_purposes(uow, site.workspace_id)
        if p.enabled and p.lawful_basis == K.CONSENT and (not chosen or p.key in chosen)
    ]
    if chosen:
        order = {k: i for i, k in enumerate(chosen)}
        out.sort(key=lambda p: order.get(p.key, 0))
    return out


async def widget_purposes(uow: UnitOfWork, site: Site, language: str | None = None) -> list[dict[str, Any]]:
    """The widget's consent checkboxes: each offered purpose with the exact notice it shows."""
    out = []
    for purpose in await offered_purposes(uow, site):
        notice = await current_notice(uow, purpose, language)
        if notice is None:
            continue
        out.append({
            "key": purpose.key,
            "name": purpose.name,
            "label": notice.text,
            "version": notice.version,
            "notice_id": notice.id,
            "language": notice.language,
        })
    return out


async def statement_purposes(uow: UnitOfWork, workspace_id: str) -> list[dict[str, str]]:
    """The purposes an operator may record a visitor's statement about (enabled, refusable)."""
    return [{"key": p.key, "name": p.name} for p in await list_purposes(uow, workspace_id)
            if p.enabled and not p.required]
