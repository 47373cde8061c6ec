"""Find a person: one search by e-mail, phone, name, visitor id or verified identity, through the
blind indexes only, across every store; visits that share an e-mail address or a verified
identity are grouped into one ``Person``.

Lookups (all within the actor's workspace, all by keyed HMAC, never by plaintext):

- e-mail: ``visitors.email_bidx`` and ``prospects.email_bidx``;
- phone: the phone's term (its digits, ``visitors.service.phone_term``) in ``visitor_terms`` and
  in ``prospect_terms`` (the same term for the same number);
- name: every word's term in ``visitor_terms`` (as Stored Chats' visitor filter) and in
  ``prospect_terms``;
- visitor id: that visitor of the workspace;
- verified: the site's user id, as ``verified_identities.external_id_bidx`` of each site;
- word: words said in a chat (``conversation_terms``, as Stored Chats' text filter), the visitors
  of those chats; refused when more than ``MAX_PERSONS`` people said them (add words).

A data-subject request names the visitors it was linked to (``privacy_request_visitors``): found
by the request's e-mail, they join the person even when their own visit gave another address.

Then the group is closed over shared e-mail indexes and verified identities (a bounded number of
rounds), and every store's rows of each visitor are counted by walking the registry
(``privacy_registry.conditions_of``). A prospect that matches the e-mail, the phone or the name
joins its visitor's person when it has a visitor; one entered by hand (no visitor) is returned
with the person (``prospect_ids``).

The tables are read through the ORM metadata, like the registry's walk: the finder reads only
blind indexes, ids and counts itself; the one decryption (a visit's name and e-mail, to tell the
results apart) goes through ``visitors.service.profile``. Every result shown is recorded in the
read-access log (``subjects.found``, the visitor ids shown).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, func, or_, select

from confide import privacy_registry
from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.chats import service as chats
from confide.core.db import Base, UnitOfWork
from confide.core.errors import Invalid, NotFound
from confide.core.personal_data import Subject, export_sections
from confide.core.runtime import Runtime
from confide.permissions import scope
from confide.permissions.policy import Permission, require
from confide.privacy_requests import views as request_views
from confide.restriction import service as restriction
from confide.subjects.schemas import MAX_VISITORS, FindIn
from confide.verified import service as verified
from confide.visitors import service as visitors
from confide.workspaces import service as workspaces

_ROUNDS = 4  # closing a group over shared e-mails / identities: rounds at most
MAX_PERSONS = 50


def _t(name: str) -> Table:
    return Base.metadata.tables[name]


@dataclass
class Person:
    """One data subject as found: the visitor records that are the same person (shared e-mail or
    verified identity), and prospects entered by hand that match."""

    workspace_id: str
    visitor_ids: tuple[str, ...]
    prospect_ids: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)  # table -> rows held
    visits: list[dict[str, Any]] = field(default_factory=list)  # per visitor: id, site, first seen, name, e-mail
    restriction: dict[str, Any] | None = None  # Art. 18 (ADR 0031): since when, the reason code; None: none

    def view(self) -> dict[str, Any]:
        titles = {name: spec.title for name, spec in export_sections(privacy_registry.REGISTRY)}
        return {
            "visitor_ids": list(self.visitor_ids),
            "prospect_ids": list(self.prospect_ids),
            "visits": self.visits,
            "stores": [
                {"key": name, "title": titles.get(name, name), "count": n} for name, n in self.counts.items() if n
            ],
            "total": sum(self.counts.values()),
            "restriction": self.restriction,
        }


# ---------------------------------------------------------------- seeds
async def _prospects(
    uow: UnitOfWork, workspace_id: str, matches: Any, found: set[str], prospects: set[str]
) -> None:
    """The workspace's prospects that ``matches``: a visitor's joins that visitor (``found``), one
    entered by hand is a prospect of its own (``prospects``)."""
    p = _t("prospects")
    rows = (await uow.session.execute(
        select(p.c.id, p.c.visitor_id).where(p.c.workspace_id == workspace_id, matches)
    )).all()
    found.update(r.visitor_id for r in rows if r.visitor_id)
    prospects.update(r.id for r in rows if not r.visitor_id)


async def _seeds(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, query: FindIn) -> tuple[set[str], set[str]]:
    """(visitor ids, hand-entered prospect ids) matching the search itself."""
    workspace_id = actor.workspace_id
    v, p, pt, vi = _t("visitors"), _t("prospects"), _t("prospect_terms"), _t("verified_identities")
    session = uow.session
    value = query.value
    found: set[str] = set()
    prospects: set[str] = set()
    in_ws = v.c.workspace_id == workspace_id
    if query.by == "email":
        if "@" not in value:
            raise Invalid("value: not an e-mail address")
        digest = rt.bidx.email(workspace_id, value)
        found |= set((await session.scalars(select(v.c.id).where(in_ws, v.c.email_bidx == digest))).all())
        await _prospects(uow, workspace_id, p.c.email_bidx == digest, found, prospects)
        found |= set((await session.scalars(request_views.visitor_ids_by_email(workspace_id, digest))).all())
    elif query.by == "phone":
        term = visitors.phone_term(rt, workspace_id, value)
        if term is None:
            raise Invalid("value: a phone number has at least three digits")
        found |= set((await session.scalars(visitors.visitor_ids_by_phone(rt, workspace_id, value))).all())
        await _prospects(uow, workspace_id, p.c.id.in_(select(pt.c.prospect_id).where(pt.c.term == term)),
                         found, prospects)
    elif query.by == "name":
        terms = list(dict.fromkeys(rt.bidx.text_terms(workspace_id, "name", value)))
        if not terms:
            raise Invalid("value: search for words of at least two letters")
        found |= set((await session.scalars(
            select(v.c.id).where(in_ws, v.c.id.in_(visitors.visitor_ids_matching(rt, workspace_id, value)))
        )).all())
        pterms = list(dict.fromkeys(rt.bidx.text_terms(workspace_id, "prospect", value)))
        matching = (
            select(pt.c.prospect_id).where(pt.c.term.in_(pterms)).group_by(pt.c.prospect_id)
            .having(func.count() == len(pterms))
        )
        await _prospects(uow, workspace_id, p.c.id.in_(matching), found, prospects)
    elif query.by == "word":  # words the person wrote or was written in a chat
        said = (await session.scalars(chats.visitor_ids_saying(rt, workspace_id, value, limit=MAX_PERSONS + 1))).all()
        if len(said) > MAX_PERSONS:
            raise Invalid(f"more than {MAX_PERSONS} people's chats hold these words: add words to narrow the search")
        found |= set(said)
    elif query.by == "visitor":
        found |= set((await session.scalars(select(v.c.id).where(in_ws, v.c.id == value))).all())
    else:  # verified: the site's own user id, on each site of the workspace
        site_ids = [site.id for site in await workspaces.list_sites(uow, actor)]
        digests = [verified.external_id_term(rt, workspace_id, s, value) for s in site_ids]
        if digests:
            found |= set((await session.scalars(
                select(vi.c.subject_id).where(vi.c.workspace_id == workspace_id, vi.c.external_id_bidx.in_(digests))
            )).all())
    return found, prospects


async def _close(uow: UnitOfWork, workspace_id: str, seeds: set[str]) -> list[set[str]]:
    """The seeds' groups: visitors joined by a shared e-mail index or verified identity."""
    v, vi = _t("visitors"), _t("verified_identities")
    session = uow.session
    email_of: dict[str, str | None] = {}
    identity_of: dict[str, set[str]] = {}
    frontier = set(seeds)
    for _ in range(_ROUNDS):
        if not frontier:
            break
        rows = (await session.execute(
            select(v.c.id, v.c.email_bidx).where(v.c.workspace_id == workspace_id, v.c.id.in_(frontier))
        )).all()
        for r in rows:
            email_of[r.id] = r.email_bidx
        for r in (await session.execute(
            select(vi.c.subject_id, vi.c.external_id_bidx).where(vi.c.subject_id.in_(frontier))
        )).all():
            identity_of.setdefault(r.subject_id, set()).add(r.external_id_bidx)
        emails = {email_of[i] for i in frontier if email_of.get(i)}
        idents = set().union(*(identity_of.get(i, set()) for i in frontier))
        more: set[str] = set()
        if emails:
            more |= set((await session.scalars(
                select(v.c.id).where(v.c.workspace_id == workspace_id, v.c.email_bidx.in_(emails))
            )).all())
        if idents:
            more |= set((await session.scalars(
                select(vi.c.subject_id).where(vi.c.workspace_id == workspace_id, vi.c.external_id_bidx.in_(idents))
            )).all())
        frontier = more - set(email_of)
        if len(email_of) + len(frontier) > MAX_VISITORS * MAX_PERSONS:
            raise Invalid("too many visitors match: narrow the search")
    # Components: union-find over the shared keys.
    parent = {i: i for i in email_of}

    def root(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_key: dict[str, str] = {}
    for i in sorted(email_of):
        keys = ([f"e:{email_of[i]}"] if email_of[i] else []) + [f"v:{k}" for k in sorted(identity_of.get(i, ()))]
        for k in keys:
            if k in by_key:
                parent[root(i)] = root(by_key[k])
            else:
                by_key[k] = i
    groups: dict[str, set[str]] = {}
    for i in email_of:
        groups.setdefault(root(i), set()).add(i)
    return sorted(groups.values(), key=lambda g: min(g))


async def _counts(uow: UnitOfWork, visitor_ids: Iterable[str], prospect_ids: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, _spec in export_sections(privacy_registry.REGISTRY):
        counts[name] = 0
    # One count per table over the person's visits together: a row several visits reach (a request
    # found by the e-mail they share) is counted once.
    per_visit = [privacy_registry.conditions_of(Subject("visitor", vid)) for vid in visitor_ids]
    for name in counts:
        conds = [c[name] for c in per_visit if name in c]
        if conds:
            stmt = select(func.count()).select_from(_t(name)).where(or_(*conds))
            counts[name] += int(await uow.session.scalar(stmt) or 0)
    extra = list(prospect_ids)
    if extra:
        p = _t("prospects")
        counts["prospects"] = counts.get("prospects", 0) + int(
            await uow.session.scalar(select(func.count()).select_from(p).where(p.c.id.in_(extra))) or 0
        )
    return counts


async def _visits(rt: Runtime, uow: UnitOfWork, visitor_ids: Iterable[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for vid in sorted(visitor_ids):
        visitor = await visitors.get_visitor(uow, vid)
        if visitor is None:
            continue
        site = await workspaces.get_site(uow, visitor.site_id)
        try:
            held = await visitors.profile(rt, uow, visitor)
        except NotFound:  # a destroyed key (erased meanwhile): shown without details
            held = {"name": None, "email": None}
        out.append({
            "visitor_id": vid,
            "site": site.name if site is not None else None,
            "first_seen_at": visitor.created_at.isoformat(),
            "name": held.get("name"),
            "email": held.get("email"),
        })
    return out


# ---------------------------------------------------------------- the service
async def find(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, query: FindIn, *, via: str) -> list[Person]:
    """Everyone matching ``query`` in the actor's workspace, grouped per person (``subjects.view``).
    Writes the read-access log of the results shown (``via``: api, page, cli)."""
    require(actor, Permission.SUBJECTS_VIEW)
    ws = actor.workspace_id
    seeds, prospects = await _seeds(rt, uow, actor, query)
    groups = await _close(uow, ws, seeds) if seeds else []
    if len(groups) > MAX_PERSONS:
        raise Invalid("too many people match: narrow the search")
    p = _t("prospects")
    persons: list[Person] = []
    claimed: set[str] = set()
    for group in groups:
        if len(group) > MAX_VISITORS:
            raise Invalid("too many visits are one person here: narrow the search")
        # Hand-entered prospects with the same e-mail as one of the visits belong to this person.
        mine: set[str] = set()
        if prospects:
            digests = select(_t("visitors").c.email_bidx).where(_t("visitors").c.id.in_(group))
            mine = set((await uow.session.scalars(
                select(p.c.id).where(p.c.id.in_(prospects), p.c.email_bidx.in_(digests))
            )).all())
            claimed |= mine
        persons.append(Person(ws, tuple(sorted(group)), tuple(sorted(mine))))
    for pid in sorted(prospects - claimed):  # a prospect with no visitor is a person of its own
        persons.append(Person(ws, (), (pid,)))
    active = await restriction.active_of(uow, ws, [v for person in persons for v in person.visitor_ids])
    for person in persons:
        person.counts = await _counts(uow, person.visitor_ids, person.prospect_ids)
        person.visits = await _visits(rt, uow, person.visitor_ids)
        person.restriction = restriction.state_view(active, person.visitor_ids)
    shown = [vid for person in persons for vid in person.visitor_ids]
    for start in range(0, len(shown), audit.MAX_LISTED):
        await audit.record_list_view(rt, uow, "subjects.found", actor=actor, target_type="visitor",
                                     ids=shown[start:start + audit.MAX_LISTED], via=via, page=1, total=len(shown))
    alone = [pid for person in persons if not person.visitor_ids for pid in person.prospect_ids]
    if alone:
        await audit.record_list_view(rt, uow, "subjects.found", actor=actor, target_type="prospect",
                                     ids=alone[: audit.MAX_LISTED], via=via, page=1, total=len(alone))
    return persons


async def check_person(
    uow: UnitOfWork, actor: OperatorActor, visitor_ids: Iterable[str], prospect_ids: Iterable[str],
    permission: Permission,
) -> None:
    """Each id is a visitor (or a prospect) of the actor's workspace the actor may reach with
    ``permission``: through the scoped loader, so a foreign id looks exactly like a missing one."""
    require(actor, permission)
    for vid in visitor_ids:
        await scope.load(uow.session, actor, visitors.Visitor, vid, permission)
    p = _t("prospects")
    for pid in prospect_ids:
        found = await uow.session.scalar(
            select(p.c.id).where(p.c.id == pid, p.c.workspace_id == actor.workspace_id, p.c.visitor_id.is_(None))
        )
        if found is None:
            raise scope.not_found(visitors.Visitor)


__all__ = ["MAX_PERSONS", "Person", "check_person", "find"]
