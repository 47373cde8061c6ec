"""``confide subject reindex``: visitors and prospects indexed before the phone's blind-index term
existed are found by phone once their terms are rebuilt from what is held; the rebuild is
idempotent, goes past a destroyed key, leaves other workspaces alone when told, is audited with
counts only, and a visitor's own update, a rectification or an erasure at the same time ends
consistent (PostgreSQL, at once)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import delete, select, text

from confide.audit import service as audit
from confide.erasure import service as erasure
from confide.offline import service as offline
from confide.prospects import reindex as prospect_reindex
from confide.prospects import service as prospects
from confide.prospects import values as prospect_values
from confide.prospects.models import ProspectTerm
from confide.prospects.schemas import ProspectIn
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


async def _audit(rt: Any, action: str = "subject.reindexed") -> list[tuple[str | None, dict[str, Any]]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = (await uow.session.execute(text(
            "select workspace_id, detail from audit_events where action = :a order by seq"), {"a": action})).all()
    return [(r[0], r[1] if isinstance(r[1], dict) else json.loads(r[1])) for r in rows]


LEADS = (("Hanna Handentered", "+44 20 7946 0201"), ("Vik Fromvisitor", "+49 30 555 0202"),
         ("Kay Keyless", "+33 1 23 45 02 03"))


async def _seed_prospects(rt: Any, world: World) -> dict[str, str]:
    """Prospects as they were before the phone's term: one entered by hand, one from a visitor's
    offline request (the visitor gave no phone; the operator noted it), one with an e-mail only
    (no terms at all), one entered by hand whose key is destroyed; then their phone terms deleted."""
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, world.site_id)
        assert site is not None
        visitor = await visitors.create_visitor(rt, uow, site, {"name": LEADS[1][0]}, {})
        req = await offline.store_request(rt, uow, site, visitor, department_id=None, message="call me",
                                          page_url=None)
        hand = await prospects.create(rt, uow, admin, ProspectIn(site_id=world.site_id, name=LEADS[0][0],
                                                                 phone=LEADS[0][1]))
        lead = await prospects.create(rt, uow, admin, ProspectIn(offline_request_id=req.id, phone=LEADS[1][1]))
        mail = await prospects.create(rt, uow, admin, ProspectIn(site_id=world.site_id, email="only.mail@example.com"))
        gone = await prospects.create(rt, uow, admin, ProspectIn(site_id=world.site_id, name=LEADS[2][0],
                                                                 phone=LEADS[2][1]))
    async with rt.db.unit_of_work() as uow:
        for _, phone in LEADS:
            term = visitors.phone_term(rt, world.workspace_id, phone)
            await uow.session.execute(delete(ProspectTerm).where(ProspectTerm.term == term))
        subject = (await uow.session.execute(
            text("select subject_id from prospects where id = :p"), {"p": gone["id"]})).scalar_one()
        await rt.keyring.destroy(uow.session, subject)  # a deletion interrupted between its steps, say
    return {"hand": hand["id"], "lead": lead["id"], "mail": mail["id"], "gone": gone["id"], "visitor": visitor.id}


async def _prospect_terms(rt: Any) -> list[tuple[str, str]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return [tuple(r) for r in await uow.session.execute(  # type: ignore[misc]
            text("select prospect_id, term from prospect_terms order by prospect_id, term"))]


async def _found(rt: Any, world: World, phone: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    staff = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        persons = await find.find(rt, uow, staff, FindIn(by="phone", value=phone), via="test")
    return [(p.visitor_ids, p.prospect_ids) for p in persons]


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


async def test_prospects_without_a_phone_term_are_found_by_phone_after_the_reindex(rt: Any, world: World) -> None:
    ids = await _seed_prospects(rt, world)
    for _, phone in LEADS:
        assert await _found(rt, world, phone) == []  # the old state: missed by phone
    # ... but the hand-entered one is still found by name (its words were kept)
    assert [p for _, p in await _found_by_name(rt, world, LEADS[0][0])] == [(ids["hand"],)]
    seen: list[tuple[str, int, int]] = []

    report = await prospect_reindex.run(rt, workspace_id=world.workspace_id, batch_size=2,
                                        progress=lambda ws, done, total: seen.append((ws, done, total)))
    # the keyless one: its leftover name words deleted (changed) and counted unreadable
    assert (report.workspaces, report.prospects, report.changed, report.unreadable) == (1, 4, 3, 1)
    assert seen == [(world.workspace_id, 2, 4), (world.workspace_id, 4, 4)]  # batches of two, keyset by id
    for written in (LEADS[0][1], "".join(c for c in LEADS[0][1] if c.isdigit())):
        assert await _found(rt, world, written) == [((), (ids["hand"],))]  # a person of its own
    assert await _found(rt, world, LEADS[1][1]) == [((ids["visitor"],), ())]  # the visitor's person
    assert await _found(rt, world, LEADS[2][1]) == []  # nothing readable: no terms
    held = await _prospect_terms(rt)
    assert {t for p, t in held if p == ids["hand"]} == set(
        prospect_values.terms(rt.bidx, world.workspace_id, LEADS[0][0], None, LEADS[0][1]))
    assert {t for p, t in held if p == ids["lead"]} == set(  # the visitor's name, copied to the prospect
        prospect_values.terms(rt.bidx, world.workspace_id, LEADS[1][0], None, LEADS[1][1]))
    assert [p for p, _ in held if p in (ids["mail"], ids["gone"])] == []

    # Idempotent: a second run finds every term right and writes nothing.
    again = await prospect_reindex.run(rt, workspace_id=world.workspace_id)
    assert (again.prospects, again.changed, again.unreadable) == (4, 0, 1)
    assert await _prospect_terms(rt) == held

    # Audited per run and workspace with counts only; the chain still verifies.
    assert await _audit(rt, "prospects.reindexed") == [
        (world.workspace_id, {"prospects": 4, "changed": 3, "unreadable": 1}),
        (world.workspace_id, {"prospects": 4, "changed": 0, "unreadable": 1})]
    async with rt.db.unit_of_work(readonly=True) as uow:
        dump = " ".join(str(r) for r in (await uow.session.execute(text("select * from audit_events"))).all())
        assert (await audit.verify(rt, uow)).ok
    for name, phone in LEADS:
        assert name.split()[1].lower() not in dump.lower()
        assert "".join(c for c in phone if c.isdigit())[-6:] not in dump

    # One workspace alone when told; every workspace otherwise; unknown: refused.
    other = await other_workspace(rt)
    admin = await actor(rt, other.admin_id)
    async with rt.db.unit_of_work() as uow:
        theirs = await prospects.create(rt, uow, admin, ProspectIn(site_id=other.site_id, phone=LEADS[0][1]))
        await uow.session.execute(delete(ProspectTerm).where(ProspectTerm.prospect_id == theirs["id"]))
    assert (await prospect_reindex.run(rt, workspace_id=world.workspace_id)).changed == 0
    assert await _found_in(rt, other, LEADS[0][1]) == []
    everyone = await prospect_reindex.run(rt)
    assert (everyone.workspaces, everyone.prospects, everyone.changed) == (2, 5, 1)
    assert await _found_in(rt, other, LEADS[0][1]) == [(theirs["id"],)]
    assert await _found(rt, world, LEADS[0][1]) == [((), (ids["hand"],))]  # keyed per workspace: not theirs
    with pytest.raises(Exception, match="workspace not found"):
        await prospect_reindex.run(rt, workspace_id="0" * 32)


async def _found_by_name(rt: Any, world: World, name: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    staff = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        persons = await find.find(rt, uow, staff, FindIn(by="name", value=name), via="test")
    return [(p.visitor_ids, p.prospect_ids) for p in persons]


async def _found_in(rt: Any, other: World, phone: str) -> list[tuple[str, ...]]:
    staff = await actor(rt, other.admin_id)
    async with rt.db.unit_of_work() as uow:
        persons = await find.find(rt, uow, staff, FindIn(by="phone", value=phone), via="test")
    return [p.prospect_ids for p in persons]


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
    async with rt.db.unit_of_work() as uow:  # and a prospect entered by hand before its phone's term
        lead = await prospects.create(rt, uow, await actor(rt, world.admin_id),
                                      ProspectIn(site_id=world.site_id, phone="+44 20 7946 0299"))
        await uow.session.execute(delete(ProspectTerm).where(ProspectTerm.prospect_id == lead["id"]))
    unknown = await run_cli(settings, "subject", "reindex", "--workspace", "0" * 32)
    assert unknown.exit_code == 2, unknown.output
    assert f"error: no workspace has the id {'0' * 32}; nothing was changed" in unknown.stderr
    malformed = await run_cli(settings, "subject", "reindex", "--workspace", "x'; drop table visitors;--")
    assert malformed.exit_code == 2, malformed.output
    assert "--workspace takes a workspace id" in malformed.stderr
    assert await _find(rt, world, "phone", PEOPLE[0][1]) == []
    assert await _found(rt, world, "+44 20 7946 0299") == []
    assert await _audit(rt) == []
    assert await _audit(rt, "prospects.reindexed") == []

    done = await run_cli(settings, "subject", "reindex", "--workspace", world.workspace_id, "--batch", "2")
    assert done.exit_code == 0, done.output
    assert f"  {world.workspace_id}: 2/3 visitors" in done.stderr
    assert f"  {world.workspace_id}: 3/3 visitors" in done.stderr
    assert f"  {world.workspace_id}: 1/1 prospects" in done.stderr
    assert "3 visitors in 1 workspaces: terms rebuilt for 3, 0 unreadable" in done.stdout
    assert "1 prospects in 1 workspaces: terms rebuilt for 1, 0 unreadable" in done.stdout
    for (name, phone), vid in zip(PEOPLE, ids, strict=True):
        assert await _find(rt, world, "phone", phone) == [(vid,)]
        assert name.split()[1] not in done.output
    assert await _found(rt, world, "+44 20 7946 0299") == [((), (lead["id"],))]
    assert "7946" not in done.output
    everyone = await run_cli(settings, "subject", "reindex")
    assert everyone.exit_code == 0, everyone.output
    assert "3 visitors in 1 workspaces: terms rebuilt for 0, 0 unreadable" in everyone.stdout
    assert "1 prospects in 1 workspaces: terms rebuilt for 0, 0 unreadable" in everyone.stdout
    assert [d for _, d in await _audit(rt)] == [{"visitors": 3, "changed": 3, "unreadable": 0},
                                                {"visitors": 3, "changed": 0, "unreadable": 0}]
    assert [d for _, d in await _audit(rt, "prospects.reindexed")] == [
        {"prospects": 1, "changed": 1, "unreadable": 0}, {"prospects": 1, "changed": 0, "unreadable": 0}]


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


async def _prospect_consistent(rt: Any, pid: str) -> str | None:
    """The prospect's terms are exactly those of the values stored now; returns its phone."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        row = (await uow.session.execute(text(
            "select subject_id, workspace_id, name_enc, company_enc, phone_enc from prospects where id = :p"),
            {"p": pid})).one()
        key = await rt.keyring.get(uow.session, row.subject_id)
        terms = set((await uow.session.scalars(
            select(ProspectTerm.term).where(ProspectTerm.prospect_id == pid))).all())

    def plain(column: str) -> str | None:
        blob = getattr(row, f"{column}_enc")
        return key.decrypt(bytes(blob), f"prospects.{column}:{pid}") if blob else None

    assert terms == set(prospect_values.terms(rt.bidx, row.workspace_id, plain("name"), plain("company"),
                                              plain("phone")))
    return plain("phone")


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_a_rectification_or_an_erasure_during_the_prospects_rebuild_ends_consistent(
    rt: Any, world: World
) -> None:
    """The batch holds the visitors of its prospects, then the prospects, then the keys: the order
    of a rectification and of an erasure (visitors first), so neither deadlocks with it."""
    ids = await _seed_prospects(rt, world)
    vid, pid = ids["visitor"], ids["lead"]
    admin = await actor(rt, world.admin_id)
    new_phone, newer_phone = "+49 30 555 0299", "+49 30 555 0300"

    # The rebuild holds the rows; a rectification of the prospect's visitor waits, then writes its terms.
    locked = asyncio.Event()

    async def slow_batch() -> None:
        async with rt.db.unit_of_work() as uow:
            await prospect_reindex.reindex_batch(rt, uow, world.workspace_id, "", prospect_reindex.BATCH)
            locked.set()
            await asyncio.sleep(0.4)

    async def correct(phone: str) -> None:
        async with rt.db.unit_of_work() as uow:
            await rectification.rectify(rt, uow, admin, world.workspace_id, [vid], "phone", phone)

    async def after_lock() -> None:
        await locked.wait()
        await correct(new_phone)

    await asyncio.gather(slow_batch(), after_lock())
    assert await _prospect_consistent(rt, pid) == new_phone
    assert await _found(rt, world, new_phone) == [((vid,), ())]
    assert await _found(rt, world, LEADS[1][1]) == []

    # The other order: the rectification holds the rows first (and leaves the old state behind
    # inside its transaction); the rebuild waits, then reads the corrected phone under the new key.
    rectifying = asyncio.Event()

    async def slow_rectification() -> None:
        async with rt.db.unit_of_work() as uow:
            await rectification.rectify(rt, uow, admin, world.workspace_id, [vid], "phone", newer_phone)
            await uow.session.execute(delete(ProspectTerm).where(ProspectTerm.prospect_id == pid))
            rectifying.set()
            await asyncio.sleep(0.4)

    async def rebuild() -> prospect_reindex.Report:
        await rectifying.wait()
        return await prospect_reindex.run(rt, workspace_id=world.workspace_id)

    _, report = await asyncio.gather(slow_rectification(), rebuild())
    assert (report.prospects, report.changed, report.unreadable) == (4, 1, 1)
    assert await _prospect_consistent(rt, pid) == newer_phone
    assert await _found(rt, world, newer_phone) == [((vid,), ())]

    # Both at once, with no head start for either, batch by batch: the terms end right.
    async with rt.db.unit_of_work() as uow:
        await uow.session.execute(delete(ProspectTerm))
    await asyncio.gather(prospect_reindex.run(rt, workspace_id=world.workspace_id, batch_size=1),
                         correct(new_phone))
    assert await _prospect_consistent(rt, pid) == new_phone
    assert await _prospect_consistent(rt, ids["hand"]) == LEADS[0][1]

    # An erasure of the visitor while the rebuild holds its prospect: it waits, then erases all.
    async with rt.db.unit_of_work() as uow:
        await uow.session.execute(delete(ProspectTerm).where(ProspectTerm.prospect_id == pid))
    locked.clear()

    async def erase_after_lock() -> None:
        await locked.wait()
        async with rt.db.unit_of_work() as uow:
            await erasure.erase(rt, uow, None, world.workspace_id, [vid], reason="request")

    await asyncio.gather(slow_batch(), erase_after_lock())
    assert [p for p, _ in await _prospect_terms(rt) if p == pid] == []
    assert await _found(rt, world, new_phone) == []
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await uow.session.scalar(text("select count(*) from prospects where id = :p"), {"p": pid}) == 0
