"""Rectification (GDPR Art. 16, issue 8 point 6, ADR 0032): a corrected value replaces the old one
in every store the registry reaches (visitor, prospect, objection), the blind indexes follow, the
person's data keys are rotated so that copies of the old ciphertexts die, hostile input changes
nothing, and a message written during the rotation stays readable (PostgreSQL, at once)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from confide.core.errors import Invalid, NotFound
from confide.core.keys import SubjectKey
from confide.core.runtime import Runtime
from confide.prospects import service as prospects
from confide.prospects.schemas import ProspectIn
from confide.rectification import service as rectification
from confide.subjects import export, find
from confide.subjects.schemas import ExportIn, FindIn
from confide.visitors import values as visitor_values
from tests.cli_helpers import run_cli
from tests.conftest import World
from tests.helpers_api import SELF, actor, logged_in, other_workspace, say, set_status, start_chat
from tests.test_erasure import _all_values, _contains, seed_person

NEW_EMAIL = "corrected.qv9erz@example.org"


async def _package(rt: Runtime, world: World, visitor_ids: list[str]) -> str:
    delivered = await export.export_person(rt, await actor(rt, world.admin_id),
                                           ExportIn(visitor_ids=visitor_ids, searched_by="visitor"), via="test")
    return delivered.data.decode() if isinstance(delivered.data, bytes) else str(delivered.data)


async def _find(rt: Runtime, world: World, by: str, value: str) -> list[find.Person]:
    staff = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        return await find.find(rt, uow, staff, FindIn(by=by, value=value), via="test")  # type: ignore[arg-type]


async def _copies(rt: Runtime, vid: str, conv: str) -> list[tuple[str, bytes]]:
    """Ciphertexts of the person as a backup would hold them (aad, blob)."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        q = uow.session.execute
        out = [(f"visitors.{c}:{vid}", r[0]) for c in ("name", "email", "phone") for r in
               await q(text(f"select {c}_enc from visitors where id=:v"), {"v": vid})]  # noqa: S608
        out += [(f"messages.body:{r[0]}", r[1]) for r in
                await q(text("select id, body_enc from messages where conversation_id=:c"), {"c": conv})]
        out += [(f"prospects.email:{r[0]}", r[1]) for r in
                await q(text("select id, email_enc from prospects where visitor_id=:v"), {"v": vid})]
    return [(aad, bytes(b)) for aad, b in out if b]


async def _state(rt: Runtime, vid: str) -> tuple[Any, ...]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        q = uow.session.execute
        wrapped = await uow.session.scalar(select(SubjectKey.wrapped_key).where(SubjectKey.subject_id == vid))
        row = (await q(text("select email_enc, email_bidx, name_enc from visitors where id=:v"), {"v": vid})).one()
        terms = sorted(r[0] for r in await q(text("select term from visitor_terms where visitor_id=:v"), {"v": vid}))
        prospects = sorted(tuple(r) for r in await q(text(
            "select email_enc, email_bidx from prospects where visitor_id=:v"), {"v": vid}))
    return (bytes(wrapped) if wrapped else None, *(bytes(v) if isinstance(v, bytes | memoryview) else v for v in row),
            tuple(terms), tuple(prospects))


async def _rectify(rt: Runtime, world: World, ids: list[str], field: str, value: object,
                   who: Any = None, workspace_id: str | None = None) -> dict[str, Any]:
    admin = who or await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        return await rectification.rectify(rt, uow, admin, workspace_id or world.workspace_id, ids, field, value,
                                           request_id="REQ-16", reason="request")


async def test_a_corrected_email_replaces_the_old_one_everywhere_and_the_old_keys_die(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    ana = await seed_person(rt, client, world, "ana")
    bob = await seed_person(rt, client, world, "bob")
    vid, conv, old = ana["visitor_id"], ana["conversation_id"], ana["canaries"]["email"]
    assert old in await _package(rt, world, [vid])
    assert [p.visitor_ids for p in await _find(rt, world, "email", old)] == [(vid,)]
    copied = await _copies(rt, vid, conv)
    assert len(copied) >= 5
    bob_before = await _state(rt, bob["visitor_id"])

    result = await _rectify(rt, world, [vid], "email", f"  {NEW_EMAIL.replace('example.org', 'EXAMPLE.org')}  ")
    assert result["tables"] == {"profiling_objections": 1, "prospects": 1, "visitors": 1}
    assert result["keys_rotated"] == 1
    assert result["reencrypted_rows"] >= 5

    # The export shows the new address only, in every store; the rest of the person is intact.
    package = await _package(rt, world, [vid])
    assert old not in package
    assert package.count(NEW_EMAIL) >= 2  # the visitor's and the prospect's, normalised as on entry
    for kept in ("name", "phone", "message", "reply", "offline", "company", "original", "page", "rating"):
        assert ana["canaries"][kept] in package, kept
    # Find: by the old address nothing; by the new one the person.
    assert await _find(rt, world, "email", old) == []
    (person,) = await _find(rt, world, "email", NEW_EMAIL)
    assert person.visitor_ids == (vid,)
    # The objection to profiling followed the address (its blind index rebuilt).
    async with rt.db.unit_of_work(readonly=True) as uow:
        digests = [r[0] for r in await uow.session.execute(text("select email_bidx from profiling_objections"))]
    assert rt.bidx.email(world.workspace_id, NEW_EMAIL) in digests
    assert rt.bidx.email(world.workspace_id, old) not in digests
    # Raw scan: the old address in plain text nowhere (nor its blind index, nor any copied ciphertext).
    needles = [old.encode(), rt.bidx.email(world.workspace_id, old).encode(), *(c for _, c in copied)]
    assert [(t, c) for t, c, v in await _all_values(rt) if _contains(v, needles)] == []
    # Key rotation: the copies of the old ciphertexts cannot be read with any key there is now.
    async with rt.db.unit_of_work(readonly=True) as uow:
        key = await rt.keyring.get(uow.session, vid)
        wrapped = await uow.session.scalar(select(SubjectKey.wrapped_key).where(SubjectKey.subject_id == vid))
    assert wrapped is not None
    fresh = rt.keyring.wrapper.unwrap(bytes(wrapped), vid)
    for aad, blob in copied:
        for k in (key, fresh):
            with pytest.raises(Exception):  # noqa: B017, PT011 - the old key is gone: InvalidTag
                k.decrypt(blob, aad)
    # A message after the rotation is stored and read with the new key.
    await say(rt, conv, "after the correction", sender_id=vid)
    assert "after the correction" in await _package(rt, world, [vid])
    # The other person is untouched; audited with ids and the field's name only.
    assert await _state(rt, bob["visitor_id"]) == bob_before
    assert bob["canaries"]["email"] in await _package(rt, world, [bob["visitor_id"]])
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = (await uow.session.execute(text(
            "select target_id, detail from audit_events where action = 'subject.rectified'"))).all()
    assert len(rows) == 1
    assert rows[0][0] == vid
    detail = rows[0][1] if isinstance(rows[0][1], dict) else json.loads(rows[0][1])
    assert detail["field"] == "email"
    assert detail["visitors"] == [vid]
    assert NEW_EMAIL not in json.dumps(detail).lower()
    assert old not in json.dumps(detail)


@pytest.mark.parametrize(("field", "by"), [("name", "name"), ("phone", "phone")])
async def test_a_corrected_name_or_phone_rebuilds_the_terms(
    rt: Runtime, client: httpx.AsyncClient, world: World, field: str, by: str
) -> None:
    ana = await seed_person(rt, client, world, "ana")
    vid, old = ana["visitor_id"], ana["canaries"][field]
    new = {"name": "Rectified Personname", "phone": "+49 30 1234 5678"}[field]
    assert await _find(rt, world, by, old)
    result = await _rectify(rt, world, [vid], field, new)
    assert result["tables"]["visitors"] == 1
    assert result["tables"]["prospects"] == 1
    assert await _find(rt, world, by, old) == []
    (person,) = await _find(rt, world, by, new)
    assert person.visitor_ids == (vid,)
    package = await _package(rt, world, [vid])
    assert old not in package
    assert new in package
    assert [(t, c) for t, c, v in await _all_values(rt) if _contains(v, [old.encode()])] == []
    async with rt.db.unit_of_work(readonly=True) as uow:
        terms = {r[0] for r in await uow.session.execute(text("select term from prospect_terms"))}
    if field == "name":  # the prospect's words follow (its list search by name)
        assert set(rt.bidx.text_terms(world.workspace_id, "prospect", "Personname")) <= terms
        assert not set(rt.bidx.text_terms(world.workspace_id, "prospect", old)) & terms
    else:  # the prospect's phone term follows (Find a person by phone searches prospects too)
        assert visitor_values.phone_term(rt.bidx, world.workspace_id, new) in terms
        assert visitor_values.phone_term(rt.bidx, world.workspace_id, old) not in terms


async def test_a_corrected_phone_held_by_the_prospect_alone_moves_its_term(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    """A visitor who gave no phone; the operator noted one on their prospect: found by it through
    ``prospect_terms`` only, and after the correction by the new number only."""
    old, new = "+39 06 1234 5678", "+39 06 8765 4321"
    await set_status(rt, world.operator_id)
    started = await start_chat(client, world, {"name": "Lea Qzxphone", "email": "lea.qzx@example.com"})
    vid = started["visitor_id"]
    async with rt.db.unit_of_work() as uow:
        lead = await prospects.create(rt, uow, await actor(rt, world.admin_id),
                                      ProspectIn(conversation_id=started["conversation_id"], phone=old))
    assert [p.visitor_ids for p in await _find(rt, world, "phone", old)] == [(vid,)]
    result = await _rectify(rt, world, [vid], "phone", new)
    assert result["tables"] == {"prospects": 1, "visitors": 1}
    assert await _find(rt, world, "phone", old) == []
    assert await _find(rt, world, "phone", "".join(c for c in old if c.isdigit())) == []
    assert [p.visitor_ids for p in await _find(rt, world, "phone", new)] == [(vid,)]
    async with rt.db.unit_of_work(readonly=True) as uow:
        terms = {r[0] for r in await uow.session.execute(
            text("select term from prospect_terms where prospect_id = :p"), {"p": lead["id"]})}
        visitor_terms = {r[0] for r in await uow.session.execute(
            text("select term from visitor_terms where visitor_id = :v"), {"v": vid})}
    new_term = visitor_values.phone_term(rt.bidx, world.workspace_id, new)
    assert new_term in terms
    assert new_term in visitor_terms  # the visitor record holds the corrected number now, too
    assert set(rt.bidx.text_terms(world.workspace_id, "prospect", "Lea Qzxphone")) <= terms  # the words kept
    assert visitor_values.phone_term(rt.bidx, world.workspace_id, old) not in terms | visitor_terms


async def test_hostile_input_is_refused_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    ana = await seed_person(rt, client, world, "ana")
    vid = ana["visitor_id"]
    before = await _state(rt, vid)
    admin = await actor(rt, world.admin_id)
    for field, value, message in (
        ("email", "not an address", "not a valid e-mail address"),
        ("email", "a@b", "not a valid e-mail address"),
        ("email", "", "is required"),
        ("email", None, "must be text"),
        ("email", "x" * 5000 + "@example.com", "too long"),
        ("name", "n" * 501, "too long"),  # the pre-chat form takes 500
        ("name", "bad\x00name", "control characters"),  # a prospect's name refuses them
        ("phone", "call me maybe", "not a valid phone number"),
        ("password", "x", "field must be one of"),
        ("email_bidx", "x", "field must be one of"),
    ):
        with pytest.raises(Invalid) as refused:
            await _rectify(rt, world, [vid], field, value)
        assert message in refused.value.message, (field, refused.value.message)
    other = await other_workspace(rt)
    foreign_admin = await actor(rt, other.admin_id)
    operator = await actor(rt, world.operator_id)  # no subjects.rectify
    narrow = dataclasses.replace(admin, permissions=frozenset({"subjects.rectify"}), scope="departments")
    for who, ws, ids in (
        (admin, world.workspace_id, ["0" * 32]),
        (admin, other.workspace_id, [vid]),
        (foreign_admin, other.workspace_id, [vid]),
        (foreign_admin, world.workspace_id, [vid]),
        (operator, world.workspace_id, [vid]),
        (narrow, world.workspace_id, [vid]),
        (admin, world.workspace_id, [vid, "0" * 32]),
    ):
        with pytest.raises(NotFound) as denied:
            await _rectify(rt, world, ids, "email", NEW_EMAIL, who=who, workspace_id=ws)
        assert denied.value.message == "visitor not found"
    for bad in ([], ["x" * 65], ["a'; drop table visitors;--"], [1]):
        with pytest.raises(Invalid):
            await _rectify(rt, world, bad, "email", NEW_EMAIL)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Invalid):
            await rectification.rectify(rt, uow, admin, world.workspace_id, [vid], "email", NEW_EMAIL,
                                        reason="because I say so")
    assert await _state(rt, vid) == before
    async with rt.db.unit_of_work(readonly=True) as uow:
        n = await uow.session.scalar(text("select count(*) from audit_events where action = 'subject.rectified'"))
    assert n == 0


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_a_message_written_during_the_rotation_stays_readable(
    rt: Runtime, client: httpx.AsyncClient, world: World, settings: Any
) -> None:
    from confide.core.broker import MemoryBroker
    from confide.core.runtime import build_runtime

    ana = await seed_person(rt, client, world, "ana")
    vid, conv = ana["visitor_id"], ana["conversation_id"]
    admin = await actor(rt, world.admin_id)
    # A second node serving the chat: the old key in its cache, and it never hears the eviction
    # (its own broker): only the key row, read under a shared lock, can tell it the key changed.
    node2 = build_runtime(settings, broker=MemoryBroker())
    try:
        await say(node2, conv, "before the rotation", sender_id=vid)
        locked = asyncio.Event()

        async def slow_rectification(value: str) -> None:
            async with rt.db.unit_of_work() as uow:
                await rectification.rectify(rt, uow, admin, world.workspace_id, [vid], "email", value)
                locked.set()
                await asyncio.sleep(0.4)  # the key rotated, not yet committed: the writers must wait

        async def writer(n: int) -> None:
            await locked.wait()
            await say(node2, conv, f"during rotation {n}", sender_id=vid)

        await asyncio.gather(slow_rectification(NEW_EMAIL), writer(1), writer(2))
        await say(node2, conv, "after the rotation", sender_id=vid)
    finally:
        await node2.close()

    # The other order: a writer holds the conversation (and the key's shared lock) first.
    from confide.chats import messages as chat_messages
    from confide.chats.messages import Draft
    from confide.core import crypto

    writing = asyncio.Event()

    async def slow_writer() -> None:
        draft = Draft(conversation_id=conv, sender="visitor", sender_id=vid, sender_name=None,
                      client_id=crypto.new_id(), text="while a second correction waits")
        async with rt.db.unit_of_work() as uow:
            await chat_messages.store_messages(rt, uow, [draft])
            writing.set()
            await asyncio.sleep(0.4)

    async def second_rectification() -> None:
        await writing.wait()
        await _rectify(rt, world, [vid], "email", "second." + NEW_EMAIL)

    await asyncio.gather(slow_writer(), second_rectification())
    # Two staff correcting at once: both commit, one after the other, and everything still reads.
    await asyncio.gather(_rectify(rt, world, [vid], "name", "Parallel One"),
                         _rectify(rt, world, [vid], "phone", "+44 20 0000 1111"))
    package = await _package(rt, world, [vid])
    for said in ("before the rotation", "during rotation 1", "during rotation 2", "after the rotation",
                 "while a second correction waits",
                 "second." + NEW_EMAIL, "Parallel One", "+44 20 0000 1111"):
        assert said in package, said
    async with rt.db.unit_of_work(readonly=True) as uow:
        n = await uow.session.scalar(text("select count(*) from audit_events where action = 'subject.rectified'"))
    assert n == 4


async def test_the_api_rectifies_and_refuses_with_4xx(
    rt: Runtime, app: Any, client: httpx.AsyncClient, world: World
) -> None:
    ana = await seed_person(rt, client, world, "ana")
    vid = ana["visitor_id"]
    url = "/api/v1/subjects/rectify"
    async with logged_in(app, world.operator_email) as operator:
        denied = await operator.post(url, json={"visitor_ids": [vid], "field": "email", "value": NEW_EMAIL},
                                     headers=SELF)
        assert denied.status_code == 403
    async with logged_in(app, world.admin_email) as admin:
        for body, status in (
            ({"visitor_ids": [vid], "field": "email", "value": "nope"}, 422),
            ({"visitor_ids": [vid], "field": "password", "value": "x"}, 422),
            ({"visitor_ids": [vid], "field": "email", "value": NEW_EMAIL, "reason": "whim"}, 422),
            ({"visitor_ids": ["0" * 32], "field": "email", "value": NEW_EMAIL}, 404),
            ({"visitor_ids": [vid], "field": "email"}, 422),
            ({"visitor_ids": [], "field": "email", "value": NEW_EMAIL}, 422),
        ):
            refused = await admin.post(url, json=body, headers=SELF)
            assert refused.status_code == status, (body, refused.text)
        broken = await admin.post(url, content=b"{not json", headers={**SELF, "Content-Type": "application/json"})
        assert 400 <= broken.status_code < 500
        ok = await admin.post(url, json={"visitor_ids": [vid], "field": "email", "value": NEW_EMAIL,
                                         "request_id": "REQ-9"}, headers=SELF)
        assert ok.status_code == 200, ok.text
        assert ok.json()["tables"]["visitors"] == 1
        assert NEW_EMAIL not in ok.text
    assert await _find(rt, world, "email", NEW_EMAIL)


async def test_the_find_a_person_page_corrects_with_its_form(
    rt: Runtime, app: Any, client: httpx.AsyncClient, world: World
) -> None:
    ana = await seed_person(rt, client, world, "ana")
    vid = ana["visitor_id"]
    async with logged_in(app, world.admin_email) as admin:
        found = await admin.post("/app/subjects", data={"by": "visitor", "value": vid}, headers=SELF)
        assert found.status_code == 200
        assert 'action="/app/subjects/rectify"' in found.text
        bad = await admin.post("/app/subjects/rectify", data={"visitor_ids": vid, "field": "email",
                                                               "value": "not an address"}, headers=SELF)
        assert bad.status_code == 422
        assert "not a valid e-mail address" in bad.text.lower()
        assert "Nothing was corrected" in bad.text
        # Without the same-origin header (a cross-site form): refused before anything happens.
        forged = await admin.post("/app/subjects/rectify", data={"visitor_ids": vid, "field": "email",
                                                                  "value": NEW_EMAIL})
        assert forged.status_code == 403
        done = await admin.post("/app/subjects/rectify", data={"visitor_ids": vid, "field": "email",
                                                                "value": NEW_EMAIL, "request_id": "REQ-3"},
                                headers=SELF)
        assert done.status_code == 200, done.text
        assert "corrected everywhere it was held" in done.text
        assert NEW_EMAIL not in done.text
    async with logged_in(app, world.operator_email) as operator:
        denied = await operator.post("/app/subjects/rectify", data={"visitor_ids": vid, "field": "name",
                                                                     "value": "Eve"}, headers=SELF)
        assert denied.status_code in (403, 404)
        found = await operator.get("/app/subjects")
        assert 'action="/app/subjects/rectify"' not in found.text
    assert await _find(rt, world, "email", NEW_EMAIL)


async def test_the_cli_rectifies_with_exit_codes(
    rt: Runtime, client: httpx.AsyncClient, world: World, settings: Any
) -> None:
    ana = await seed_person(rt, client, world, "ana")
    vid = ana["visitor_id"]
    base = ("subject", "rectify", "--workspace", world.workspace_id)
    bad = await run_cli(settings, *base, "--visitor", vid, "--field", "email", "--value", "not an address", "--yes")
    assert bad.exit_code == 2, bad.output
    unknown = await run_cli(settings, *base, "--visitor", vid, "--field", "shoe_size", "--value", "44", "--yes")
    assert unknown.exit_code == 2, unknown.output
    missing = await run_cli(settings, *base, "--visitor", "0" * 32, "--field", "email", "--value", NEW_EMAIL, "--yes")
    assert missing.exit_code == 1, missing.output
    assert not await _find(rt, world, "email", NEW_EMAIL)
    done = await run_cli(settings, *base, "--visitor", vid, "--field", "email", "--value", NEW_EMAIL, "--yes",
                         "--request", "REQ-7")
    assert done.exit_code == 0, done.output
    assert '"visitors": 1' in done.output
    assert NEW_EMAIL not in done.output
    # The CLI's runtime told the nodes through its broker (Redis in production; here a memory
    # broker of its own): this node forgets the old key as its eviction listener would.
    rt.keyring.forget(vid)
    assert await _find(rt, world, "email", NEW_EMAIL)


async def test_a_custom_pre_chat_answer_is_corrected_as_its_form_field_checks_it(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    ana = await seed_person(rt, client, world, "ana")
    vid, old = ana["visitor_id"], ana["canaries"]["order"]
    before = await _state(rt, vid)
    for field, message in (("answer:nosuchfield", "unknown field"), ("answer:email", "fields of their own"),
                           ("answer", "field must be one of"), ("answer:", "custom pre-chat field"),
                           ("name:order", "field must be one of")):
        with pytest.raises(Invalid) as refused:
            await _rectify(rt, world, [vid], field, "A-42")
        assert message in refused.value.message, (field, refused.value.message)
    with pytest.raises(Invalid):
        await _rectify(rt, world, [vid], "answer:order", "o" * 501)  # a text field takes 500
    assert await _state(rt, vid) == before
    result = await _rectify(rt, world, [vid], "answer:order", "  CorrectedOrder-77  ")
    assert result["tables"] == {"visitors": 1}
    assert result["field"] == "answer:order"
    package = await _package(rt, world, [vid])
    assert old not in package
    assert "CorrectedOrder-77" in package
    assert ana["canaries"]["email"] in package  # the other answers and fields are kept
    assert [(t, c) for t, c, v in await _all_values(rt) if _contains(v, [old.encode()])] == []


async def test_every_visit_of_the_person_is_corrected_at_once(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    from tests.helpers_api import set_status, start_chat

    await set_status(rt, world.operator_id)
    old = "twovisits.qv9erz@example.com"
    first = await start_chat(client, world, {"name": "Twice Visitor", "email": old})
    second = await start_chat(client, world, {"name": "Twice Visitor", "email": old})
    ids = sorted([first["visitor_id"], second["visitor_id"]])
    (person,) = await _find(rt, world, "email", old)
    assert sorted(person.visitor_ids) == ids
    result = await _rectify(rt, world, ids, "email", NEW_EMAIL)
    assert result["tables"] == {"visitors": 2}
    assert result["keys_rotated"] == 2
    assert await _find(rt, world, "email", old) == []
    (person,) = await _find(rt, world, "email", NEW_EMAIL)
    assert sorted(person.visitor_ids) == ids
    package = await _package(rt, world, ids)
    assert old not in package
    assert package.count(NEW_EMAIL) == 2
