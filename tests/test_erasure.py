"""Erasure of a person (issue 8 point 5): the canary test (a raw scan of every column of every
table, the SQLite file and WAL, the logs, the job payloads, Redis), crypto-shredding of copied
ciphertexts, statistics that survive, the certificate and its tombstones, permission denials and
hostile ids, and two erasures of one person at once."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from confide.core import clock, crypto
from confide.core import jobs as core_jobs
from confide.core.db import Base
from confide.core.errors import NotFound
from confide.core.keys import SubjectKey
from confide.core.logging import configure as configure_logging
from confide.core.runtime import Runtime
from confide.erasure import service as erasure
from confide.erasure import stats, tombstones
from confide.erasure.models import Certificate
from confide.retention import service as retention
from confide.retention.schemas import HoldIn, LiftIn
from tests.conftest import World
from tests.helpers_api import accept, actor, other_workspace, rate, say, set_status, start_chat

TAG = "qv9erz"


def canaries(who: str) -> dict[str, str]:
    return {
        "name": f"Canaryname{who}{TAG}",
        "email": f"canarymail{who}{TAG}@example.com",
        "phone": f"+44 20 7946 {len(who)}{len(who)}99",
        "order": f"CanaryOrder{who}{TAG}",
        "message": f"canarymessage{who}{TAG} please help",
        "reply": f"canaryreply{who}{TAG} of course",
        "rating": f"canaryrating{who}{TAG} great",
        "offline": f"canaryoffline{who}{TAG} call me back",
        "company": f"CanaryCompany{who}{TAG}",
        "page": f"https://shop.example/canarypage{who}{TAG}",
        "original": f"4111 1111 1111 {who[:1]}{TAG}",
        "external": f"canaryexternal{who}{TAG}",
    }


async def seed_person(rt: Runtime, client: httpx.AsyncClient, world: World, who: str) -> dict[str, Any]:
    """A person with a unique value in every category, through the services where they exist."""
    c = canaries(who)
    await set_status(rt, world.operator_id)
    started = await start_chat(client, world, {"name": c["name"], "email": c["email"], "phone": c["phone"],
                                               "order": c["order"]}, consents={"marketing": True})
    vid, conv = started["visitor_id"], started["conversation_id"]
    await accept(rt, world.operator_id, conv)
    await say(rt, conv, c["message"], sender_id=vid)
    clock.advance(timedelta(seconds=30))
    await say(rt, conv, c["reply"], sender="operator", sender_id=world.operator_id)
    await rate(rt, world, started, 4, c["rating"])
    from confide.offline import service as offline
    from confide.prospects import service as prospects
    from confide.prospects.schemas import ProspectIn
    from confide.redaction.models import RedactedOriginal
    from confide.verified.models import VerifiedIdentity
    from confide.visitor_activity.models import PageTerm, PageView
    from confide.visitors.service import get_visitor
    from confide.workspaces import service as workspaces

    async with rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, world.site_id)
        visitor = await get_visitor(uow, vid)
        assert site is not None
        assert visitor is not None
        await offline.store_request(rt, uow, site, visitor, department_id=None, message=c["offline"], page_url=None)
    async with rt.db.unit_of_work() as uow:
        await prospects.create(rt, uow, await actor(rt, world.admin_id),
                               ProspectIn(conversation_id=conv, company=c["company"]))
        await prospects.record_objection(rt, uow, world.workspace_id, c["email"])
    page_id, identity_id, original_id = crypto.new_id(), crypto.new_id(), crypto.new_id()
    async with rt.db.unit_of_work() as uow:
        key = await rt.keyring.get(uow.session, vid)
        url_enc = key.encrypt(c["page"], f"activity_pages.url:{page_id}")
        uow.session.add(PageView(id=page_id, workspace_id=world.workspace_id, site_id=world.site_id, visitor_id=vid,
                                 viewed_at=clock.now(), url_enc=url_enc))
        await uow.session.flush()
        for term in rt.bidx.text_terms(world.workspace_id, "page", c["page"]):
            uow.session.add(PageTerm(page_id=page_id, term=term))
        uow.session.add(VerifiedIdentity(
            id=identity_id, workspace_id=world.workspace_id, site_id=world.site_id, subject_id=vid,
            external_id_bidx=rt.bidx.term(world.workspace_id, "identity", c["external"]),
            created_at=clock.now(), last_verified_at=clock.now()))
        uow.session.add(RedactedOriginal(
            id=original_id, workspace_id=world.workspace_id, site_id=world.site_id, subject_id=vid,
            conversation_id=conv, ref_kind="message", ref_id="m1", kinds=["card"], created_at=clock.now(),
            text_enc=key.encrypt(c["original"], f"redacted_originals.text:{original_id}")))
    # A pending job for them (a marketing e-mail naming the visitor): it goes with them.
    from confide.core import mail

    async with rt.db.unit_of_work() as uow:
        mail.enqueue_mail(rt, uow, to=[c["email"]], subject="News", text=f"Hello {c['name']}",
                          workspace_id=world.workspace_id, subject_id=vid, purpose="marketing")
    return {"visitor_id": vid, "conversation_id": conv, "token": started["token"], "canaries": c}


async def _all_values(rt: Runtime) -> list[tuple[str, str, Any]]:
    """Every value of every column of every table, raw (nothing decrypted)."""
    out = []
    async with rt.db.unit_of_work(readonly=True) as uow:
        for table in Base.metadata.sorted_tables:
            rows = (await uow.session.execute(text(f'SELECT * FROM "{table.name}"'))).all()  # noqa: S608
            for row in rows:
                for column, value in zip(row._fields, row, strict=True):
                    if value is not None:
                        out.append((table.name, column, value))
    return out


def _contains(value: Any, needles: list[bytes]) -> bool:
    blob = bytes(value) if isinstance(value, bytes | bytearray | memoryview) else str(value).encode()
    return any(n in blob for n in needles)


async def _blind_indexes(rt: Runtime, visitor_id: str, conversation_id: str) -> list[str]:
    """The person's blind-index values, read before erasure."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        q = uow.session.execute
        found = [r[0] for r in (await q(text("select term from visitor_terms where visitor_id=:v"), {"v": visitor_id}))]
        found += [r[0] for r in (await q(text("select term from conversation_terms where conversation_id=:c"),
                                         {"c": conversation_id}))]
        found += [r[0] for r in (await q(text("select email_bidx from visitors where id=:v"), {"v": visitor_id}))]
        found += [r[0] for r in (await q(text("select external_id_bidx from verified_identities where subject_id=:v"),
                                         {"v": visitor_id}))]
        found += [r[0] for r in (await q(text(
            "select term from activity_page_terms where page_id in (select id from activity_pages where visitor_id=:v)"
        ), {"v": visitor_id}))]
        found += [r[0] for r in (await q(text(
            "select term from prospect_terms where prospect_id in (select id from prospects where visitor_id=:v)"
        ), {"v": visitor_id}))]
    return [f for f in found if f]


async def _ciphertexts(rt: Runtime, visitor_id: str, conversation_id: str) -> list[tuple[str, bytes]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        q = uow.session.execute
        out = [(f"visitors.name:{visitor_id}", r[0]) for r in
               await q(text("select name_enc from visitors where id=:v"), {"v": visitor_id})]
        out += [(f"messages.body:{r[0]}", r[1]) for r in
                await q(text("select id, body_enc from messages where conversation_id=:c"), {"c": conversation_id})]
    return [(aad, bytes(b)) for aad, b in out if b]


async def test_an_erased_person_leaves_no_canary_anywhere_and_the_other_is_untouched(
    rt: Runtime, client: httpx.AsyncClient, world: World, db_kind: str, settings: Any
) -> None:
    buffer = io.StringIO()
    configure_logging("debug", stream=buffer)
    ana = await seed_person(rt, client, world, "ana")
    bob = await seed_person(rt, client, world, "bob")
    vid = ana["visitor_id"]
    # Words both people used ("please", "https") have the same term: only the first's own are canaries.
    bob_bidx = await _blind_indexes(rt, bob["visitor_id"], bob["conversation_id"])
    bidx = sorted(set(await _blind_indexes(rt, vid, ana["conversation_id"])) - set(bob_bidx))
    assert len(bidx) >= 8
    copied = await _ciphertexts(rt, vid, ana["conversation_id"])
    assert len(copied) >= 3
    async with rt.db.unit_of_work(readonly=True) as uow:
        wrapped_before = await uow.session.scalar(select(SubjectKey.wrapped_key).where(SubjectKey.subject_id == vid))
        stats_before = await stats.totals(uow, world.workspace_id)
    assert wrapped_before is not None
    assert stats_before["chats"] == 0

    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work(readonly=True) as uow:
        counts = await erasure.preview(rt, uow, admin, world.workspace_id, [vid])
    for table in ("visitors", "conversations", "messages", "conversation_terms", "visitor_terms", "offline_requests",
                  "prospects", "prospect_terms", "profiling_objections", "activity_pages", "activity_page_terms",
                  "verified_identities", "redacted_originals", "consent_records", "subject_keys", "jobs"):
        assert counts.get(table, 0) > 0, table
    async with rt.db.unit_of_work() as uow:
        cert = await erasure.erase(rt, uow, admin, world.workspace_id, [vid], request_id="REQ-1", reason="request")
    assert cert.counts == counts  # exactly what the preview said
    assert cert.request_id == "REQ-1"
    assert cert.actor_id == world.admin_id

    # The raw scan: no canary, no blind index, no copied ciphertext in any column of any table.
    needles = [v.encode() for v in ana["canaries"].values()] + [b.encode() for b in bidx] + [c for _, c in copied]
    hits = [(t, c) for t, c, value in await _all_values(rt) if _contains(value, needles)]
    assert hits == []
    # The other person is untouched and still decrypts.
    values = await _all_values(rt)
    assert all(any(_contains(v, [b.encode()]) for _, _, v in values) for b in bob_bidx)
    async with rt.db.unit_of_work(readonly=True) as uow:
        from confide.visitors.service import get_visitor, profile

        other = await get_visitor(uow, bob["visitor_id"])
        assert other is not None
        assert (await profile(rt, uow, other))["name"] == bob["canaries"]["name"]
    # Crypto-shredding: the key is gone, so the copied ciphertexts cannot be read with the master key.
    async with rt.db.unit_of_work(readonly=True) as uow:
        row = await uow.session.get(SubjectKey, vid)
        assert row is not None
        assert row.wrapped_key is None
        assert row.destroyed_at is not None
        with pytest.raises(NotFound):
            await rt.keyring.get(uow.session, vid)
    with pytest.raises(Exception):  # noqa: B017, PT011 - any failure: the key is not there to unwrap
        rt.keyring.wrapper.unwrap(b"", vid).decrypt(copied[0][1], copied[0][0])
    # Job payloads (decrypted: the outbox's own keys) name no canary; the subject.erased job is queued.
    async with rt.db.unit_of_work(readonly=True) as uow:
        all_jobs = (await uow.session.scalars(select(core_jobs.Job))).all()
        payloads = [core_jobs.open_payload(rt, j) for j in all_jobs]
    assert [j.kind for j in all_jobs].count(erasure.ERASED_KIND) == 1
    assert not [j for j in all_jobs if j.subject_id == vid]  # the pending marketing mail went with them
    assert [j.subject_id for j in all_jobs].count(bob["visitor_id"]) == 1  # the other's is still queued
    assert any(_contains(p, [bob["canaries"]["name"].encode()]) for p in payloads if p)
    assert not any(_contains(p, needles) for p in payloads if p)
    erased_job = next(p for j, p in zip(all_jobs, payloads, strict=True) if j.kind == erasure.ERASED_KIND)
    assert erased_job == {"workspace_id": world.workspace_id, "certificate_id": cert.id, "visitor_ids": [vid]}
    # The statistics still count the erased chat (and its rating and response time).
    async with rt.db.unit_of_work(readonly=True) as uow:
        after = await stats.totals(uow, world.workspace_id)
    assert (after["chats"], after["rated"], after["rating_sum"], after["rating_4"]) == (1, 1, 4, 1)
    assert after["first_response_count"] == 1
    # Audited with ids only; a tombstone (keyed) refuses the old id and e-mail.
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await tombstones.is_erased(rt, uow, world.workspace_id, visitor_id=vid)
        assert await tombstones.is_erased(rt, uow, world.workspace_id, email=ana["canaries"]["email"])
        assert not await tombstones.is_erased(rt, uow, world.workspace_id, email=bob["canaries"]["email"])
        rows = (await uow.session.execute(text(
            "select action, target_id from audit_events where action = 'subject.erased'"))).all()
    assert [tuple(r) for r in rows] == [("subject.erased", cert.id)]
    # On disk (SQLite): neither the database file nor its WAL holds any of it.
    if db_kind == "sqlite":
        async with rt.db.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(str(settings.resolved_database_url).split("///", 1)[1])
        for file in (path, Path(f"{path}-wal")):
            if file.exists():
                data = file.read_bytes()
                assert not [n for n in needles if n in data], file
    # Logs captured during the test: none of it.
    logged = buffer.getvalue().encode()
    assert not [n for n in needles if n in logged]
    assert b"subject_erased" in logged


async def test_erasing_again_returns_the_same_certificate(rt: Runtime, client: httpx.AsyncClient,
                                                          world: World) -> None:
    ana = await seed_person(rt, client, world, "ana")
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        first = await erasure.erase(rt, uow, admin, world.workspace_id, [ana["visitor_id"]], reason="request")
    async with rt.db.unit_of_work() as uow:
        again = await erasure.erase(rt, uow, admin, world.workspace_id, [ana["visitor_id"]], reason="request")
    assert again.id == first.id
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert len((await uow.session.scalars(select(Certificate))).all()) == 1
        with pytest.raises(NotFound):
            await erasure.preview(rt, uow, admin, world.workspace_id, [ana["visitor_id"]])


async def test_denials_and_hostile_ids_look_like_not_found(rt: Runtime, client: httpx.AsyncClient,
                                                           world: World) -> None:
    ana = await seed_person(rt, client, world, "ana")
    other = await other_workspace(rt)
    operator = await actor(rt, world.operator_id)  # no subjects.erase
    foreign_admin = await actor(rt, other.admin_id)
    admin = await actor(rt, world.admin_id)
    # subjects.erase held in a role of departments scope: a person's data crosses departments.
    narrow = dataclasses.replace(admin, permissions=frozenset({"subjects.erase"}), scope="departments")
    for who, ws in ((operator, world.workspace_id), (foreign_admin, other.workspace_id),
                    (foreign_admin, world.workspace_id), (admin, other.workspace_id), (narrow, world.workspace_id)):
        async with rt.db.unit_of_work() as uow:
            with pytest.raises(NotFound) as denied:
                await erasure.erase(rt, uow, who, ws, [ana["visitor_id"]], reason="request")
        assert denied.value.message == "visitor not found"
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(NotFound):
            await erasure.erase(rt, uow, admin, world.workspace_id, ["0" * 32], reason="request")
    for bad in ([], ["x" * 65], ["a'; drop table visitors;--"], [1], ["v"] * 0):
        async with rt.db.unit_of_work() as uow:
            with pytest.raises(Exception) as refused:  # noqa: PT011
                await erasure.erase(rt, uow, admin, world.workspace_id, bad, reason="request")
            assert getattr(refused.value, "status", 500) in (404, 422)
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await uow.session.get(SubjectKey, ana["visitor_id"]) is not None
        assert len((await uow.session.scalars(select(Certificate))).all()) == 0


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_two_erasures_of_one_person_at_once_give_one_certificate(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    ana = await seed_person(rt, client, world, "ana")
    admin = await actor(rt, world.admin_id)

    async def one() -> str:
        async with rt.db.unit_of_work() as uow:
            return (await erasure.erase(rt, uow, admin, world.workspace_id, [ana["visitor_id"]], reason="request")).id

    ids = await asyncio.gather(one(), one(), one())
    assert len(set(ids)) == 1
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert len((await uow.session.scalars(select(Certificate))).all()) == 1
        assert (await stats.totals(uow, world.workspace_id))["chats"] == 1  # folded once


@pytest.mark.parametrize("target", ["visitor", "conversation"])
async def test_a_legal_hold_refuses_the_whole_erasure(
    rt: Runtime, client: httpx.AsyncClient, world: World, target: str
) -> None:
    ana = await seed_person(rt, client, world, "ana")
    admin = await actor(rt, world.admin_id)
    held_id = ana["visitor_id"] if target == "visitor" else ana["conversation_id"]
    async with rt.db.unit_of_work() as uow:
        hold = await retention.place_hold(
            rt, uow, admin, HoldIn(target_type=target, target_id=held_id, reason="case 2026-117")  # type: ignore[arg-type]
        )
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(erasure.UnderHold):
            await erasure.erase(rt, uow, admin, world.workspace_id, [ana["visitor_id"]], reason="request")
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await uow.session.get(SubjectKey, ana["visitor_id"]) is not None
        assert (await uow.session.get(SubjectKey, ana["visitor_id"])).wrapped_key is not None  # type: ignore[union-attr]
        assert not (await uow.session.scalars(select(Certificate))).all()
    async with rt.db.unit_of_work() as uow:  # once lifted, the erasure goes through
        await retention.lift_hold(rt, uow, admin, hold["id"], LiftIn(reason="case closed"))
    async with rt.db.unit_of_work() as uow:
        await erasure.erase(rt, uow, admin, world.workspace_id, [ana["visitor_id"]], reason="request")
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await uow.session.get(SubjectKey, ana["visitor_id"])).wrapped_key is None  # type: ignore[union-attr]
