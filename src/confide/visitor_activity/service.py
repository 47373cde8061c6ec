"""Visitor Activity: storing the page trail the widget reports, a site's tracking settings, and
reading the trail back (the back office's list, a visitor's trail, the console's visitor panel).

Nothing is stored unless ``basis.may_track`` allows it; a refused report writes nothing and
answers ``{"stored": false}``. Everything about a page (URL, title, referrer, address, browser)
is encrypted under the visitor's data key, bound to its column and row; the "page contains"
filter matches keyed word hashes of the URL (``activity_page_terms``), never plaintext.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from confide.audit import service as audit
from confide.auth.actors import OperatorActor, VisitorActor
from confide.auth.sessions import describe_client
from confide.core import clock, crypto, expiry
from confide.core.db import UnitOfWork
from confide.core.errors import Invalid, NotFound, Unauthorized
from confide.core.runtime import Runtime
from confide.permissions.access import (
    access_conversation_by_id,
    access_site_by_id,
    access_visitor_trail_by_id,
    activity_scope,
    without_restricted,
)
from confide.permissions.policy import Permission, require
from confide.visitor_activity import basis
from confide.visitor_activity.models import ActivitySettings, PageTerm, PageView
from confide.visitor_activity.schemas import (
    MAX_URL,
    ActivityFilters,
    ActivitySettingsIn,
    PageLeftIn,
    PageViewIn,
)
from confide.visitors import service as visitors
from confide.workspaces.service import Site

MAX_UA = 512  # a full User-Agent is kept up to this length
TRAIL_LIMIT = 200  # pages shown in one trail (most recent first)
MIN_JUSTIFICATION = 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
DEFAULTS = {"basis": "consent", "justification": "", "ip_mode": "truncated", "ua_mode": "family"}


# ---------------------------------------------------------------- the stored forms
def stored_address(address: str | None, mode: str) -> str | None:
    """``none``: nothing; ``truncated``: the /24 (IPv4) or /48 (IPv6) network, e.g. ``203.0.113.0/24``;
    ``full``: the address as resolved (``web/client_address``). Anything not an IP address: nothing."""
    if mode == "none" or not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if mode == "full":
        return str(ip)
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def stored_user_agent(user_agent: str | None, mode: str) -> str | None:
    """``none``: nothing; ``family``: "Firefox on Linux" (``auth.sessions.describe_client``);
    ``full``: the header, up to ``MAX_UA`` characters."""
    if mode == "none" or not user_agent:
        return None
    if mode == "family":
        return describe_client(user_agent)
    return _CONTROL.sub("", user_agent)[:MAX_UA] or None


def _page_url(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise Invalid(f"{what} must not contain control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"{what} must be an http or https address")
    if len(value) > MAX_URL:
        raise Invalid(f"{what} is too long")
    return value


# ---------------------------------------------------------------- settings
def settings_view(row: ActivitySettings | None) -> dict[str, Any]:
    if row is None:
        return dict(DEFAULTS)
    return {"basis": row.basis, "justification": row.justification, "ip_mode": row.ip_mode, "ua_mode": row.ua_mode}


async def site_settings(uow: UnitOfWork, site: Site) -> dict[str, Any]:
    return settings_view(await basis.settings_of(uow, site))


async def settings_for_sites(uow: UnitOfWork, site_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each site's settings (defaults where none are stored), for the settings page."""
    rows = (
        (await uow.session.scalars(select(ActivitySettings).where(ActivitySettings.site_id.in_(site_ids)))).all()
        if site_ids
        else []
    )
    found = {row.site_id: settings_view(row) for row in rows}
    return {site_id: found.get(site_id, dict(DEFAULTS)) for site_id in site_ids}


async def settings_for(uow: UnitOfWork, actor: OperatorActor, site_id: str) -> dict[str, Any]:
    """One site's settings for the settings page (``SETTINGS_READ``)."""
    require(actor, Permission.SETTINGS_READ)
    site = await access_site_by_id(uow.session, actor, site_id)
    return {"site": {"id": site.id, "name": site.name}, "settings": await site_settings(uow, site)}


async def save_settings(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, site_id: str, data: ActivitySettingsIn
) -> dict[str, Any]:
    """Legitimate interest needs its justification written down (Art. 6(1)(f), 5(2) accountability)."""
    require(actor, Permission.SETTINGS_MANAGE)
    site = await access_site_by_id(uow.session, actor, site_id)
    justification = data.justification.strip()
    if data.basis == "legitimate_interest" and len(justification) < MIN_JUSTIFICATION:
        raise Invalid(
            "legitimate interest for activity tracking needs a documented justification "
            f"(at least {MIN_JUSTIFICATION} characters)"
        )
    # One upsert: two administrators saving a site's first settings at once never collide.
    values = {
        "basis": data.basis,
        "justification": justification,
        "ip_mode": data.ip_mode,
        "ua_mode": data.ua_mode,
        "updated_at": clock.now(),
        "updated_by": actor.operator_id,
    }
    insert = postgresql_insert if uow.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(ActivitySettings).values(site_id=site.id, workspace_id=site.workspace_id, **values)
    await uow.session.execute(stmt.on_conflict_do_update(index_elements=["site_id"], set_=values))
    await audit.record(
        rt,
        uow,
        "visitor_activity.settings_changed",
        actor=actor,
        target_type="site",
        target_id=site.id,
        detail={"basis": data.basis, "ip_mode": data.ip_mode, "ua_mode": data.ua_mode},
    )
    return {k: values[k] for k in DEFAULTS}


# ---------------------------------------------------------------- the widget's reports
async def report(
    rt: Runtime,
    uow: UnitOfWork,
    site: Site,
    actor: VisitorActor,
    body: PageViewIn | PageLeftIn,
    *,
    address: str | None,
    user_agent: str | None,
) -> dict[str, Any]:
    """Store one report of the visitor's page trail, if ``basis.may_track`` allows it; otherwise
    write nothing and say so (``stored: false``). ``previous``: the time spent on a page of this
    visitor's (another's id: ``NotFound``, nothing written)."""
    visitor = await visitors.get_visitor(uow, actor.visitor_id)
    if visitor is None or visitor.site_id != site.id or visitor.workspace_id != actor.workspace_id:
        raise Unauthorized("invalid or expired visitor token")
    url = title = referrer = None
    if isinstance(body, PageViewIn):  # validated before anything is written
        url = _page_url(body.url, "url")
        referrer = _page_url(body.referrer, "referrer") if body.referrer else None
        if _CONTROL.search(body.title.replace("\t", " ")):
            raise Invalid("title must not contain control characters")
        title = " ".join(body.title.split()) or None
    if not await basis.may_track(uow, site, visitor):
        return {"stored": False, "view_id": None}
    if body.previous is not None:
        result = await uow.session.execute(
            update(PageView)
            .where(PageView.id == body.previous.view_id, PageView.visitor_id == visitor.id)
            .values(seconds_on_page=body.previous.seconds)
        )
        if getattr(result, "rowcount", 0) != 1:
            raise NotFound("page view not found")
    if url is None:
        return {"stored": True, "view_id": None}
    settings = await basis.settings_of(uow, site)
    chosen = settings_view(settings)
    key = await rt.keyring.get_for_write(uow.session, visitor.id)
    view_id = crypto.new_id()
    ip = stored_address(address, chosen["ip_mode"])
    ua = stored_user_agent(user_agent, chosen["ua_mode"])

    def enc(value: str | None, column: str) -> bytes | None:
        return key.encrypt(value, f"activity_pages.{column}:{view_id}") if value else None

    uow.session.add(
        PageView(
            id=view_id,
            workspace_id=site.workspace_id,
            site_id=site.id,
            visitor_id=visitor.id,
            viewed_at=clock.now(),
            url_enc=key.encrypt(url, f"activity_pages.url:{view_id}"),
            title_enc=enc(title, "title"),
            referrer_enc=enc(referrer, "referrer"),
            ip_enc=enc(ip, "ip"),
            ua_enc=enc(ua, "ua"),
        )
    )
    await uow.session.flush()
    for term in dict.fromkeys(rt.bidx.text_terms(site.workspace_id, "url", url)):
        uow.session.add(PageTerm(page_id=view_id, term=term))
    return {"stored": True, "view_id": view_id}


# ---------------------------------------------------------------- reading
async def _views(rt: Runtime, uow: UnitOfWork, rows: list[PageView]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        key = await rt.keyring.get(uow.session, row.visitor_id)
        vid = row.id

        def dec(blob: bytes | None, column: str) -> str | None:
            return key.decrypt(blob, f"activity_pages.{column}:{vid}") if blob else None  # noqa: B023

        out.append(
            {
                "id": vid,
                "site_id": row.site_id,
                "visitor_id": row.visitor_id,
                "viewed_at": clock.iso(row.viewed_at),
                "url": dec(row.url_enc, "url"),
                "title": dec(row.title_enc, "title"),
                "referrer": dec(row.referrer_enc, "referrer"),
                "ip": dec(row.ip_enc, "ip"),
                "user_agent": dec(row.ua_enc, "ua"),
                "seconds_on_page": row.seconds_on_page,
            }
        )
    return out


async def search(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, filters: ActivityFilters
) -> tuple[list[dict[str, Any]], int]:
    """The page views the actor may read (``VISITORS_READ``, sites of their reach), filtered."""
    require(actor, Permission.VISITORS_READ)
    stmt = without_restricted(actor, activity_scope(actor, select(PageView)), PageView.visitor_id)
    if filters.date_from:
        stmt = stmt.where(PageView.viewed_at >= filters.date_from)
    if filters.date_to:
        stmt = stmt.where(PageView.viewed_at <= filters.date_to)
    if filters.site_id:
        stmt = stmt.where(PageView.site_id == filters.site_id)
    if filters.visitor:
        stmt = stmt.where(
            PageView.visitor_id.in_(visitors.visitor_ids_matching(rt, actor.workspace_id, filters.visitor))
        )
    if filters.url:
        terms = list(dict.fromkeys(rt.bidx.text_terms(actor.workspace_id, "url", filters.url)))
        if not terms:
            raise Invalid("search the page for words of at least two letters")
        matching = (
            select(PageTerm.page_id)
            .where(PageTerm.term.in_(terms))
            .group_by(PageTerm.page_id)
            .having(func.count() == len(terms))
        )
        stmt = stmt.where(PageView.id.in_(matching))
    total = int(await uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = (
        await uow.session.scalars(
            stmt.order_by(PageView.viewed_at.desc(), PageView.id)
            .offset((filters.page - 1) * filters.per_page)
            .limit(filters.per_page)
        )
    ).all()
    items = await _views(rt, uow, list(rows))
    names: dict[str, str | None] = {}
    for item in items:
        if item["visitor_id"] not in names:
            visitor = await visitors.get_visitor(uow, item["visitor_id"])
            names[item["visitor_id"]] = (await visitors.profile(rt, uow, visitor))["name"] if visitor else None
        item["visitor_name"] = names[item["visitor_id"]]
    return items, total


async def _trail_of(rt: Runtime, uow: UnitOfWork, visitor_id: str) -> list[dict[str, Any]]:
    rows = (
        await uow.session.scalars(
            select(PageView)
            .where(PageView.visitor_id == visitor_id)
            .order_by(PageView.viewed_at.desc(), PageView.id)
            .limit(TRAIL_LIMIT)
        )
    ).all()
    return await _views(rt, uow, list(rows))


async def visitor_trail(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, visitor_id: str) -> dict[str, Any]:
    """One visitor's trail (a read of personal data: audited in the same unit)."""
    visitor = await access_visitor_trail_by_id(uow.session, actor, visitor_id)
    profile = await visitors.profile(rt, uow, visitor)
    pages = await _trail_of(rt, uow, visitor.id)
    await audit.record(
        rt,
        uow,
        "visitor_activity.viewed",
        actor=actor,
        target_type="visitor",
        target_id=visitor.id,
        detail={"via": "visitor_activity"},
    )
    return {"visitor": {"id": visitor.id, "name": profile["name"], "site_id": visitor.site_id}, "pages": pages}


async def chat_trail(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, conversation_id: str) -> dict[str, Any]:
    """The trail of a chat's visitor, for the console's visitor panel (``CHATS_PARTICIPATE``, the
    chat in the operator's reach; audited)."""
    conv = await access_conversation_by_id(uow.session, actor, conversation_id, permission=Permission.CHATS_PARTICIPATE)
    pages = await _trail_of(rt, uow, conv.visitor_id)
    await audit.record(
        rt,
        uow,
        "visitor_activity.viewed",
        actor=actor,
        target_type="visitor",
        target_id=conv.visitor_id,
        detail={"via": "console", "conversation": conv.id},
    )
    return {"conversation_id": conv.id, "pages": pages}


async def note_listed(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, items: list[dict[str, Any]]) -> None:
    """The read-access log of the list: one row per visitor whose pages were shown."""
    for visitor_id in dict.fromkeys(item["visitor_id"] for item in items):
        await audit.record(
            rt,
            uow,
            "visitor_activity.viewed",
            actor=actor,
            target_type="visitor",
            target_id=visitor_id,
            detail={"via": "visitor_activity_list"},
        )


# ---------------------------------------------------------------- retention (ADR 0030)
def _expired(criteria: expiry.Expired) -> list[Any]:
    return [
        PageView.workspace_id == criteria.workspace_id,
        PageView.site_id == criteria.site_id,
        PageView.viewed_at < criteria.before,
        expiry.not_held(PageView.visitor_id, criteria.held_visitors),
    ]


async def expired_page_views(uow: UnitOfWork, criteria: expiry.Expired, *, limit: int) -> list[str]:
    """Ids of page views older than ``criteria.before`` (not held), oldest first, locked."""
    return await expiry.take(uow, PageView.id, _expired(criteria), PageView.viewed_at, limit)


async def count_expired_page_views(uow: UnitOfWork, criteria: expiry.Expired) -> int:
    return await expiry.count(uow, PageView.id, _expired(criteria))


async def delete_page_views(uow: UnitOfWork, page_ids: list[str]) -> int:
    return await expiry.delete_ids(uow, PageView.id, page_ids)
