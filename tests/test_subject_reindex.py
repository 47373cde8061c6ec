"""``confide subject reindex``: visitors indexed before the phone's blind-index term existed are
found by phone once their terms are rebuilt from what is held; the rebuild is idempotent, goes
past a destroyed key, leaves other workspaces alone when told, is audited with counts only, and a
visitor's own update or a rectification at the same time ends consistent (PostgreSQL, at once)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import delete, select, text

from confide.audit import service as audit
from confide.erasure import service as erasure
from confide.rectification import service as rectification
from confide.subjects import find
from confide.subjects.schemas import FindIn
from confide.visitors import reindex, values
from confide.visitors import service as visitors
from confide.visitors.models import VisitorTerm
from confide.workspaces import service as workspaces
from tests.cli_helpers import run_cli
from tests.conftest import World
from tests.helpers_api import actor, other_workspace

PEOPLE = (("Quentin Reindexer", "+44 20 7946 0101"), ("Rosalind Oldterm", "+49 30 555 0102"),
          ("Sabine Phonefound", "0033 1 23 45 01 03"))


async def _seed(rt: Any, world: World, people: tuple[tuple[str, str | None], ...] = PEOPLE) -> list[str]:
    """Visitors with a name and a phone, then their phone terms deleted: the state before the
    phone's term existed (their name words kept, as they were then)."""
    ids = []
    async with rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, world.site_id)
        assert site is not None
        for name, phone in people:
            fields = {"name": name, **({"phone": phone} if phone else {})}
            ids.append((await visitors.create_visitor(rt, uow, site, fields, {})).id)
        for phone in [p for _, p in people if p]:
            term = visitors.phone_term(rt, world.workspace_id, phone)
            await uow.session.execute(delete(VisitorTerm).where(VisitorTerm.term == term))
    return ids


async def _find(rt: Any, world: World, by: str, value: str) -> list[tuple[str, ...]]:
    staff = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        persons = await find.find(rt, uow, staff, FindIn(by=by, value=value), via="test")
    return [p.visitor_ids for p in persons]


async def _terms(rt: Any) -> list[tuple[str, str]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return [tuple(r) for r in await uow.session.execute(  # type: ignore[misc]
            text("select visitor_id, term from visitor_terms order by visitor_id, term"))]


async def _consistent(rt: Any, vid: str) -> tuple[str | None, str | None]:
    """The visitor's terms are exactly those of the values stored now; returns (name, phone)."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        visitor = await visitors.get_visitor(uow, vid)
        assert visitor is not None
        held = await visitors.profile(rt, uow, visitor)
        terms = set((await uow.session.scalars(
            select(VisitorTerm.term).where(VisitorTerm.visitor_id == vid))).all())
    assert terms == set(values.terms(rt.bidx, visitor.workspace_id, held["name"], held["phone"]))
    return held["name"], held["phone"]


async def _audit(rt: Any) -> list[tuple[str | None, dict[str, Any]]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = (await uow.session.execute(text(
            "select workspace_id, detail from audit_events where action = 'subject.reindexed' order by seq"))).all()
    return [(r[0], r[1] if isinstance(r[1], dict) else json.loads(r[1])) for r in rows]


async def test_visitors_without_a_phone_term_are_found_by_phone_after_the_reindex(rt: Any, world: World) -> None:
    ids = await _seed(rt, world, (*PEOPLE, ("Nophone Person", None)))
    for (name, phone), vid in zip(PEOPLE, ids, strict=False):
        assert await _find(rt, world, "phone", phone) == []  # the old state: missed by phone
        assert await _find(rt, world, "name", name) == [(vid,)]  # but found by name
    seen: list[tuple[str, int, int]] = []

    report = await reindex.run(rt, workspace_id=world.workspace_id, batch_size=2,
                               progress=lambda ws, done, total: seen.append((ws, done, total)))
    assert (report.workspaces, report.visitors, report.changed, report.unreadable) == (1, 4, 3, 0)
    assert seen == [(world.workspace_id, 2, 4), (world.workspace_id, 4, 4)]  # batches of two, keyset by id
    for (name, phone), vid in zip(PEOPLE, ids, strict=False):
        assert await _find(rt, world, "phone", phone) == [(vid,)]
        # the digits only: the number written another way is the same person
        assert await _find(rt, world, "phone", "".join(c for c in phone if c.isdigit())) == [(vid,)]
        assert await _find(rt, world, "name", name) == [(vid,)]
    for vid in ids:
        await _consistent(rt, vid)

    # Idempotent: a second run finds every term right and writes nothing.
    before = await _terms(rt)
    again = await reindex.run(rt, workspace_id=world.workspace_id)
    assert (again.visitors, again.changed, again.unreadable) == (4, 0, 0)
    assert await _terms(rt) == before

    # Audited per run and workspace with counts only; the chain still verifies.
    rows = await _audit(rt)
    assert rows == [(world.workspace_id, {"visitors": 4, "changed": 3, "unreadable": 0}),
                    (world.workspace_id, {"visitors": 4, "changed": 0, "unreadable": 0})]
    async with rt.db.unit_of_work(readonly=True) as uow:
        dump = " ".join(str(r) for r in (await uow.session.execute(text("select * from audit_events"))).all())
        assert (await audit.verify(rt, uow)).ok
    for name, phone in PEOPLE:
        assert name.split()[1].lower() not in dump.lower()
        assert phone not in dump
        assert "".join(c for c in phone if c.isdigit())[-6:] not in dump


async def test_a_workspace_alone_or_every_workspace(rt: Any, world: World) -> None:
    (ours,) = await _seed(rt, world, PEOPLE[:1])
    other = await other_workspace(rt)
    (theirs,) = await _seed(rt, other, PEOPLE[1:2])
    report = await reindex.run(rt, workspace_id=world.workspace_id)
    assert (report.workspaces, report.visitors, report.changed) == (1, 1, 1)
    assert await _find(rt, world, "phone", PEOPLE[0][1]) == [(ours,)]
    assert await _find(rt, other, "phone", PEOPLE[1][1]) == []
    everyone = await reindex.run(rt)
    assert (everyone.workspaces, everyone.visitors, everyone.changed) == (2, 2, 1)
    assert await _find(rt, other, "phone", PEOPLE[1][1]) == [(theirs,)]
    # One workspace's phone term is not another's (keyed per workspace): not found across.
    assert await _find(rt, world, "phone", PEOPLE[1][1]) == []
    with pytest.raises(Exception, match="workspace not found"):
        await reindex.run(rt, workspace_id="0" * 32)


async def test_a_destroyed_key_or_an_erased_visitor_does_not_stop_the_rebuild(rt: Any, world: World) -> None:
    keyless, erased, kept = await _seed(rt, world)
    async with rt.db.unit_of_work() as uow:
        # A visitor record whose key is gone (an erasure interrupted between its steps, say).
        await rt.keyring.destroy(uow.session, keyless)
    async with rt.db.unit_of_work() as uow:
        await erasure.erase(rt, uow, None, world.workspace_id, [erased], reason="request")
    assert any(vid == keyless for vid, _ in await _terms(rt))  # its name words, left from before

    report = await reindex.run(rt, workspace_id=world.workspace_id)
    assert (report.visitors, report.changed, report.unreadable) == (2, 2, 1)
    assert [vid for vid, _ in await _terms(rt) if vid == keyless] == []  # nothing readable: no terms
    assert await _find(rt, world, "phone", PEOPLE[2][1]) == [(kept,)]
    assert await _find(rt, world, "phone", PEOPLE[0][1]) == []
    assert await _find(rt, world, "phone", PEOPLE[1][1]) == []
    again = await reindex.run(rt, workspace_id=world.workspace_id)
    assert (again.visitors, again.changed, again.unreadable) == (2, 0, 1)


async def test_the_cli_reindexes_with_progress_and_exit_codes(rt: Any, world: World, settings: Any) -> None:
    ids = await _seed(rt, world)
    unknown = await run_cli(settings, "subject", "reindex", "--workspace", "0" * 32)
    assert unknown.exit_code == 2, unknown.output
    assert f"error: no workspace has the id {'0' * 32}; nothing was changed" in unknown.stderr
    malformed = await run_cli(settings, "subject", "reindex", "--workspace", "x'; drop table visitors;--")
    assert malformed.exit_code == 2, malformed.output
    assert "--workspace takes a workspace id" in malformed.stderr
    assert await _find(rt, world, "phone", PEOPLE[0][1]) == []
    assert await _audit(rt) == []

    done = await run_cli(settings, "subject", "reindex", "--workspace", world.workspace_id, "--batch", "2")
    assert done.exit_code == 0, done.output
    assert f"  {world.workspace_id}: 2/3 visitors" in done.stderr
    assert f"  {world.workspace_id}: 3/3 visitors" in done.stderr
    assert "3 visitors in 1 workspaces: terms rebuilt for 3, 0 unreadable" in done.stdout
    for (name, phone), vid in zip(PEOPLE, ids, strict=True):
        assert await _find(rt, world, "phone", phone) == [(vid,)]
        assert name.split()[1] not in done.output
    everyone = await run_cli(settings, "subject", "reindex")
    assert everyone.exit_code == 0, everyone.output
    assert "3 visitors in 1 workspaces: terms rebuilt for 0, 0 unreadable" in everyone.stdout
    assert [d for _, d in await _audit(rt)] == [{"visitors": 3, "changed": 3, "unreadable": 0},
                                                {"visitors": 3, "changed": 0, "unreadable": 0}]


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_a_write_of_the_same_visitor_during_the_rebuild_ends_consistent(rt: Any, world: World) -> None:
    (vid,) = await _seed(rt, world, PEOPLE[:1])
    new_phone, newer_phone = "+33 6 12 34 56 78", "+34 600 111 222"

    # The rebuild holds the visitor's row; the visitor updates their details meanwhile: the update
    # waits, then writes its own terms over the rebuilt ones.
    locked = asyncio.Event()

    async def slow_batch() -> None:
        async with rt.db.unit_of_work() as uow:
            await reindex.reindex_batch(rt, uow, world.workspace_id, "", reindex.BATCH)
            locked.set()
            await asyncio.sleep(0.4)

    async def visitor_updates() -> None:
        await locked.wait()
        async with rt.db.unit_of_work() as uow:
            site = await workspaces.get_site(uow, world.site_id)
            visitor = await visitors.get_visitor(uow, vid)
            assert site is not None
            assert visitor is not None
            await visitors.update_details(rt, uow, site, visitor, {"phone": new_phone}, {})

    await asyncio.gather(slow_batch(), visitor_updates())
    assert await _consistent(rt, vid) == (PEOPLE[0][0], new_phone)
    assert await _find(rt, world, "phone", new_phone) == [(vid,)]
    assert await _find(rt, world, "phone", PEOPLE[0][1]) == []

    # The other order: a rectification (which rotates the key) holds the row first; the rebuild
    # waits, then reads the corrected phone under the new key.
    admin = await actor(rt, world.admin_id)
    rectifying = asyncio.Event()

    async def slow_rectification() -> None:
        async with rt.db.unit_of_work() as uow:
            await rectification.rectify(rt, uow, admin, world.workspace_id, [vid], "phone", newer_phone)
            # the old state again, inside the rectification: the rebuild must see what it commits
            await uow.session.execute(delete(VisitorTerm).where(VisitorTerm.visitor_id == vid))
            rectifying.set()
            await asyncio.sleep(0.4)

    async def rebuild() -> reindex.Report:
        await rectifying.wait()
        return await reindex.run(rt, workspace_id=world.workspace_id)

    _, report = await asyncio.gather(slow_rectification(), rebuild())
    assert (report.visitors, report.changed, report.unreadable) == (1, 1, 0)
    assert await _consistent(rt, vid) == (PEOPLE[0][0], newer_phone)
    assert await _find(rt, world, "phone", newer_phone) == [(vid,)]
    assert await _find(rt, world, "phone", new_phone) == []

    # Both at once, with no head start for either: whichever goes first, the terms end right.
    await _seed(rt, world, PEOPLE[1:])
    await asyncio.gather(reindex.run(rt, workspace_id=world.workspace_id, batch_size=1),
                         _rectify(rt, admin, world, vid))
    assert await _consistent(rt, vid) == ("Parallel Rename", newer_phone)
    for found in await _all_ids(rt, world):
        await _consistent(rt, found)
    assert await _find(rt, world, "name", "Parallel Rename") == [(vid,)]


async def _rectify(rt: Any, admin: Any, world: World, vid: str) -> None:
    async with rt.db.unit_of_work() as uow:
        await rectification.rectify(rt, uow, admin, world.workspace_id, [vid], "name", "Parallel Rename")


async def _all_ids(rt: Any, world: World) -> list[str]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return [str(r[0]) for r in await uow.session.execute(
            text("select id from visitors where workspace_id = :w"), {"w": world.workspace_id})]
