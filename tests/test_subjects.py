"""Find a person, their export package and its delivery (issue 8 points 2 and 4; ADR 0026), on SQLite
and PostgreSQL.

The canary test seeds two people with unique values in every category and checks that the JSON
export of the first holds every one of theirs and none of the other's, and validates against
``docs/privacy/export-schema.json``."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openpyxl
import pytest
from sqlalchemy import text

from confide.core import clock, crypto
from confide.core.errors import DomainError
from confide.core.runtime import Runtime
from confide.privacy_requests import intake as request_intake
from confide.privacy_requests import lifecycle as request_lifecycle
from confide.privacy_requests.schemas import RequestIn, StaffRequestIn
from confide.prospects import service as prospects
from confide.prospects.schemas import ProspectIn
from confide.redaction import service as redaction
from confide.redaction.schemas import PolicyIn
from confide.retention import service as retention
from confide.retention.categories import OTHER_CLASSES
from confide.retention.schemas import PolicyIn as RetentionPolicyIn
from confide.subjects import delivery, export, find
from confide.subjects.schemas import ExportIn, FindIn
from confide.verified import service as verified
from confide.verified.models import VerifiedIdentity
from confide.worker.jobs import JobRunner
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import SitePatch
from tests import factories
from tests.conftest import World
from tests.helpers_api import (
    SELF,
    accept,
    actor,
    leave_message,
    logged_in,
    other_workspace,
    rate,
    say,
    set_status,
    start_chat,
)
from tests.mailbox import Mailbox
from tests.pdf_checks import pdf_text, squash

SCHEMA = json.loads((Path(__file__).parents[1] / "docs/privacy/export-schema.json").read_text())
PURPOSES = [
    {"key": "marketing", "label": "News by e-mail", "version": "v1"},
    {"key": "activity_tracking", "label": "Remember the pages I visit while I chat", "version": "v1"},
]
LINK = re.compile(r"/subject-export/([A-Za-z0-9_-]+)")
CODE = re.compile(r"^ {4}([a-z0-9]{5}-[a-z0-9]{5})\s*$", re.M)


def validate(package: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(package)


CARDS = {"0101": "4111 1111 1111 1111", "0202": "5555 5555 5555 4444"}


def canaries(tag: str, digits: str) -> dict[str, str]:
    """Unique values in every category for one person."""
    return {
        "card": CARDS[digits],  # masked at ingest, its original kept (redaction) under the person's key
        "name": f"Name{tag} Person",
        "email": f"{tag.lower()}@example.com",
        "phone": f"+44 20 7946 {digits}",
        "answer": f"Order{tag}",
        "message": f"Message{tag} hello",
        "reply": f"Reply{tag} from staff",
        "rating": f"Rating{tag} comment",
        "page": f"https://shop.example/page-{tag.lower()}",
        "title": f"Title{tag}",
        "offline": f"Offline{tag} please call",
        "company": f"Company{tag}",
        "notes": f"Notes{tag}",
        "user": f"user-{tag.lower()}",
        "request": f"Request{tag} details",
        "outcome": f"Outcome{tag} sent",
    }


async def seed(rt: Runtime, client: httpx.AsyncClient, world: World, tag: str, digits: str) -> dict[str, Any]:
    """A person with a chat (answers, messages both ways, a rating with a comment), two page views,
    an offline request left on a second visit with the same e-mail, a prospect, consent records and
    a verified identity."""
    c = canaries(tag, digits)
    await set_status(rt, world.operator_id)
    started = await start_chat(client, world, {"name": c["name"], "email": c["email"], "phone": c["phone"],
                                               "order": c["answer"]},
                               consents={"activity_tracking": True, "marketing": True})
    vid, conv = started["visitor_id"], started["conversation_id"]
    await accept(rt, world.operator_id, conv)
    await say(rt, conv, c["message"], sender_id=vid)
    await say(rt, conv, c["reply"], sender="operator", sender_id=world.operator_id)
    await say(rt, conv, f"my card is {c['card']}", sender_id=vid)
    await rate(rt, world, started, 4, c["rating"])
    page = await client.post(
        f"/api/v1/widget/{world.site_key}/activity",
        content=json.dumps({"type": "view", "token": started["token"], "url": c["page"], "title": c["title"]}),
        headers={"Origin": world.origin, "content-type": "text/plain;charset=UTF-8"},
    )
    assert page.json()["stored"] is True, page.text
    left = await leave_message(client, world, c["offline"], {"name": c["name"], "email": c["email"]})
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        lead = await prospects.create(rt, uow, admin, ProspectIn(conversation_id=conv, company=c["company"],
                                                                 notes=c["notes"]))
        uow.session.add(VerifiedIdentity(
            id=crypto.new_id(), workspace_id=world.workspace_id, site_id=world.site_id, subject_id=vid,
            external_id_bidx=verified.external_id_term(rt, world.workspace_id, world.site_id, c["user"]),
            created_at=clock.now(), last_verified_at=clock.now()))
    async with rt.db.unit_of_work() as uow:  # an access request, entered by staff and handled
        made = await request_intake.create_by_staff(rt, uow, admin, StaffRequestIn(
            type="access", email=c["email"], details=c["request"], channel="letter"))
        await request_intake.verify_by_staff(rt, uow, admin, made["id"], "called back")
        await request_lifecycle.start(rt, uow, admin, made["id"])
        await request_lifecycle.complete(rt, uow, admin, made["id"], outcome=c["outcome"])
    async with rt.db.unit_of_work(readonly=True) as uow:
        offline_visitor = (await uow.session.execute(
            text("select visitor_id from offline_requests where id = :id"), {"id": left["id"]})).scalar_one()
    return {"visitor_id": vid, "conversation_id": conv, "offline_visitor": offline_visitor,
            "prospect": lead["id"], "canaries": c}


@pytest.fixture
async def people(rt: Runtime, client: httpx.AsyncClient, world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await workspaces.update_site(uow, admin, world.site_id, SitePatch(purposes=PURPOSES))
        await redaction.set_policy(rt, uow, admin, world.site_id, PolicyIn(cards=True, keep_originals=True))
        await factories.operator(rt, uow, workspace_id=world.workspace_id, email="pia@shop.example",
                                 role="privacy_officer", name="Pia Privacy")
    first = await seed(rt, client, world, "Qzxfirst", "0101")
    second = await seed(rt, client, world, "Qzxsecond", "0202")
    return first, second


async def _find(rt: Runtime, world: World, by: str, value: str, who: str | None = None) -> list[find.Person]:
    staff = await actor(rt, who or world.admin_id)
    async with rt.db.unit_of_work() as uow:
        return await find.find(rt, uow, staff, FindIn(by=by, value=value), via="test")  # type: ignore[arg-type]


async def _package(rt: Runtime, world: World, visitor_ids: list[str]) -> dict[str, Any]:
    delivered = await export.export_person(rt, await actor(rt, world.admin_id),
                                           ExportIn(visitor_ids=visitor_ids, searched_by="email"), via="test")
    assert delivered.content_type == "application/json"
    package: dict[str, Any] = json.loads(delivered.data)
    return package


def _visitors_of(person: dict[str, Any]) -> set[str]:
    return {person["visitor_id"]} | ({person["offline_visitor"]} if person["offline_visitor"] else set())


# ---------------------------------------------------------------- find
@pytest.mark.parametrize("by", ["email", "phone", "name", "visitor", "verified", "word"])
async def test_find_groups_the_visits_of_one_person(rt: Runtime, world: World, people: Any, by: str) -> None:
    first, _second = people
    c = first["canaries"]
    value = {"email": c["email"].upper(), "phone": c["phone"].replace(" ", ""), "name": c["name"].lower(),
             "visitor": first["visitor_id"], "verified": c["user"], "word": c["message"].upper()}[by]
    (person,) = await _find(rt, world, by, value)
    # The chat's visitor and the offline request's (same e-mail) are one person.
    assert set(person.visitor_ids) == _visitors_of(first)
    assert len(person.visitor_ids) == 2
    view = person.view()
    stores = {s["key"]: s["count"] for s in view["stores"]}
    assert stores["visitors"] == 2
    assert stores["conversations"] == 1
    assert stores["messages"] >= 2
    assert stores["offline_requests"] == 1
    assert stores["activity_pages"] == 1
    assert stores["prospects"] == 1
    assert stores["consent_records"] >= 2
    assert stores["verified_identities"] == 1
    assert stores["privacy_requests"] == 1
    assert {v["email"] for v in view["visits"]} == {c["email"]}


async def test_find_by_words_said_in_a_chat(rt: Runtime, world: World, people: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = people
    # "hello" is in both people's first message; with the canary word only the first.
    both = await _find(rt, world, "word", "Hello")
    assert {frozenset(p.visitor_ids) for p in both} == {frozenset(_visitors_of(first)), frozenset(_visitors_of(second))}
    (one,) = await _find(rt, world, "word", f"hello {first['canaries']['reply']}")  # the operator's words count too
    assert set(one.visitor_ids) == _visitors_of(first)
    assert await _find(rt, world, "word", "hello nowhere-said-qzx") == []
    with pytest.raises(DomainError, match="two letters"):
        await _find(rt, world, "word", "a ! 1")
    monkeypatch.setattr(find, "MAX_PERSONS", 1)
    with pytest.raises(DomainError, match="narrow the search"):
        await _find(rt, world, "word", "hello")


async def test_a_request_links_a_visit_that_gave_another_email_to_the_person(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    await set_status(rt, world.operator_id)
    started = await start_chat(client, world, {"name": "Zed Qzxanon", "email": "zed.work@example.com"})
    async with rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, world.site_id)
        assert site is not None
        await request_intake.create_by_requester(
            rt, uow, site, RequestIn(type="access", email="zed.qzx@example.com"), channel="widget",
            visitor_id=started["visitor_id"])
    (person,) = await _find(rt, world, "email", "Zed.Qzx@example.com")
    assert person.visitor_ids == (started["visitor_id"],)
    assert {s["key"]: s["count"] for s in person.view()["stores"]}["privacy_requests"] == 1


async def test_each_result_shown_is_in_the_read_access_log(rt: Runtime, world: World, people: Any) -> None:
    first, _ = people
    await _find(rt, world, "email", first["canaries"]["email"])
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = (await uow.session.execute(text(
            "select actor_id, target_type, detail from audit_events where action = 'subjects.found'"))).all()
    (row,) = rows
    assert row.actor_id == world.admin_id
    assert row.target_type == "visitor"
    assert set(json.loads(row.detail)["ids"]) == _visitors_of(first)
    assert first["canaries"]["email"] not in row.detail


async def test_nobody_matches_and_another_workspace_is_never_searched(
    rt: Runtime, client: httpx.AsyncClient, world: World, people: Any
) -> None:
    first, _ = people
    other = await other_workspace(rt)
    await set_status(rt, other.operator_id)
    # The same e-mail address in another business: not theirs to find, and not ours.
    theirs = await start_chat(client, other, {"name": first["canaries"]["name"], "email": first["canaries"]["email"]})
    assert await _find(rt, world, "email", "nobody@example.com") == []
    (person,) = await _find(rt, world, "email", first["canaries"]["email"])
    assert theirs["visitor_id"] not in person.visitor_ids
    assert await _find(rt, world, "visitor", theirs["visitor_id"]) == []
    (own,) = await _find(rt, other, "email", first["canaries"]["email"], who=other.admin_id)
    assert own.visitor_ids == (theirs["visitor_id"],)
    # Exporting another workspace's visitor: exactly "not found".
    with pytest.raises(DomainError) as denied:
        await _package(rt, world, [theirs["visitor_id"]])
    assert denied.value.status == 404


# ---------------------------------------------------------------- the package
async def test_the_export_holds_every_canary_of_the_person_and_none_of_the_other(
    rt: Runtime, world: World, people: Any
) -> None:
    first, second = people
    (person,) = await _find(rt, world, "email", first["canaries"]["email"])
    package = await _package(rt, world, list(person.visitor_ids))
    validate(package)
    dump = json.dumps(package, ensure_ascii=False)
    for what, value in first["canaries"].items():
        if what in ("user", "phone"):
            continue
        assert value in dump, what
    assert first["canaries"]["phone"] in dump
    assert first["canaries"]["user"] not in dump  # only its keyed hash is held: never stored, never exported
    for what, value in second["canaries"].items():
        assert value not in dump, what
    for vid in _visitors_of(second):
        assert vid not in dump
    assert package["person"] == {"visitor_ids": list(person.visitor_ids), "prospect_ids": [], "searched_by": "email"}
    sections = {s["key"]: s for s in package["sections"]}
    assert list(sections)[:3] == ["visitors", "conversations", "messages"]
    profile = sections["visitors"]["rows"]
    assert {r.get("answer: order") for r in profile} == {first["canaries"]["answer"], None}  # the 2nd visit: none
    async with rt.db.unit_of_work(readonly=True) as uow:
        ledger = {(r.id, r.purpose, r.granted) for r in (await uow.session.execute(text(
            "select id, purpose, granted from consent_records where subject_id in (:a, :b)"),
            {"a": person.visitor_ids[0], "b": person.visitor_ids[1]})).all()}
    assert ledger
    assert {(r["id"], r["purpose"], r["granted"]) for r in sections["consent_records"]["rows"]} == ledger
    (transcript,) = package["transcripts"]
    assert transcript["conversation_id"] == first["conversation_id"]
    assert transcript["site"] == "Shop"
    said = [(m["sender"], m["name"], m["text"]) for m in transcript["messages"] if m["sender"] != "system"]
    assert ("visitor", first["canaries"]["name"], first["canaries"]["message"]) in said
    assert ("operator", "Mia", first["canaries"]["reply"]) in said
    facts = package["facts"]
    assert facts["controller"] == {"name": "Shop Ltd", "contact": "no-reply@confide.invalid"}
    assert {"identity", "contact", "content", "profile", "behaviour", "consent"} <= set(facts["categories"])
    (original,) = sections["redacted_originals"]["rows"]  # decrypted under the key its row names
    assert original["text"] == f"my card is {first['canaries']['card']}"
    assert first["canaries"]["card"] not in json.dumps(transcript)  # the message itself holds it masked
    assert "pseudonymous" not in facts["categories"]
    assert {"chat", "offline_request", "visitor_activity", "prospect", "consent", "privacy_request"} <= {
        r["category"] for r in facts["retention"]}
    (request,) = sections["privacy_requests"]["rows"]  # decrypted under the request's own key
    assert (request["type"], request["state"], request["email"]) == ("access", "done", first["canaries"]["email"])
    assert [e["kind"] for e in sections["privacy_request_events"]["rows"]] == ["received", "verified", "started",
                                                                                "done"]
    assert {r["right"] for r in facts["rights"]} >= {"access", "erasure", "rectification", "portability"}


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "pdf"])
async def test_every_format_holds_every_canary_of_the_person_and_none_of_the_other(
    rt: Runtime, world: World, people: Any, fmt: str
) -> None:
    """The real package of a seeded person (not a synthetic one), rendered: CSV read from its zip,
    Excel with openpyxl, the PDF read back as text (white space ignored: lines wrap)."""
    first, second = people
    (person,) = await _find(rt, world, "email", first["canaries"]["email"])
    delivered = await export.export_person(
        rt, await actor(rt, world.admin_id),
        ExportIn(visitor_ids=list(person.visitor_ids), searched_by="email", fmt=fmt), via="test")
    if fmt == "csv":
        with zipfile.ZipFile(io.BytesIO(delivered.data)) as bundle:
            text_of = "\n".join(bundle.read(n).decode("utf-8-sig") for n in bundle.namelist())
    elif fmt == "xlsx":
        book = openpyxl.load_workbook(io.BytesIO(delivered.data), read_only=True)
        text_of = "\n".join(str(v) for ws in book.worksheets for row in ws.iter_rows(values_only=True)
                             for v in row if v is not None)
    else:
        text_of = pdf_text(delivered.data)
    found = squash(text_of)
    for what, value in first["canaries"].items():
        if what == "user":  # only its keyed hash is held
            continue
        assert squash(value) in found, (fmt, what)
    for what, value in second["canaries"].items():
        assert squash(value) not in found, (fmt, what)
    assert first["canaries"]["email"] not in delivered.filename


async def test_the_retention_facts_are_the_periods_in_force_on_the_person_s_site(
    rt: Runtime, world: World, people: Any
) -> None:
    first, _ = people
    (person,) = await _find(rt, world, "email", first["canaries"]["email"])
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await retention.set_policy(rt, uow, admin, RetentionPolicyIn(scope=world.site_id, category="chats", days=90))
        await retention.set_policy(rt, uow, admin, RetentionPolicyIn(scope="workspace", category="offline", days=730))
    periods = {r["category"]: r["period"] for r in (await _package(rt, world, list(person.visitor_ids)))["facts"][
        "retention"]}
    assert periods["chat"] == "90 days after the chat's close, then deleted"  # the site's own period
    assert periods["offline_request"] == "2 years (730 days) after the request's receipt, then deleted"
    assert periods["visitor_activity"].endswith("after the page view, then deleted")  # the configured default
    assert periods["privacy_request"] == OTHER_CLASSES["privacy_request"]  # no period governs it


async def test_the_controller_comes_from_the_settings(rt: Runtime, world: World, people: Any) -> None:
    first, _ = people
    rt.settings.controller_name, rt.settings.controller_contact = "Shop Ltd (DPO)", "dpo@shop.example"
    package = await _package(rt, world, [first["visitor_id"]])
    assert package["facts"]["controller"] == {"name": "Shop Ltd (DPO)", "contact": "dpo@shop.example"}
    assert any("dpo@shop.example" in r["how"] for r in package["facts"]["rights"])


async def test_export_is_audited_with_ids_only(rt: Runtime, world: World, people: Any) -> None:
    first, _ = people
    await _package(rt, world, [first["visitor_id"]])
    async with rt.db.unit_of_work(readonly=True) as uow:
        (row,) = (await uow.session.execute(text(
            "select actor_id, target_id, detail from audit_events where action = 'subject.exported'"))).all()
    assert row.actor_id == world.admin_id
    assert row.target_id == first["visitor_id"]
    assert json.loads(row.detail) == {"fmt": "json", "via": "test", "ids": [first["visitor_id"]]}


async def test_a_hand_entered_prospect_is_found_and_exported(rt: Runtime, world: World, people: Any) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        lead = await prospects.create(rt, uow, admin, ProspectIn(site_id=world.site_id, name="Handy Qzxlead",
                                                                 email="qzxlead@example.com", notes="NotesQzxlead"))
    (person,) = await _find(rt, world, "email", "qzxlead@example.com")
    assert person.visitor_ids == ()
    assert person.prospect_ids == (lead["id"],)
    delivered = await export.export_person(rt, admin, ExportIn(prospect_ids=[lead["id"]]), via="test")
    package = json.loads(delivered.data)
    validate(package)
    assert "NotesQzxlead" in delivered.data.decode()
    assert "Qzxfirst" not in delivered.data.decode()


async def test_a_hand_entered_prospect_is_found_by_phone(rt: Runtime, world: World) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        lead = await prospects.create(rt, uow, admin, ProspectIn(site_id=world.site_id, name="Phoebe Qzxhand",
                                                                 phone="+44 20 7946 0999"))
        other = await prospects.create(rt, uow, admin, ProspectIn(site_id=world.site_id, name="Other Qzxhand",
                                                                  phone="+44 20 7946 0998"))
    # However the number is written: its digits are one term (the visitors' "phone" kind).
    for written in ("+44 20 7946 0999", "442079460999", "(+44) 20-7946-0999"):
        (person,) = await _find(rt, world, "phone", written)
        assert (person.visitor_ids, person.prospect_ids) == ((), (lead["id"],)), written
        assert {s["key"]: s["count"] for s in person.view()["stores"]} == {"prospects": 1}
    assert [p.prospect_ids for p in await _find(rt, world, "phone", "+44 20 7946 0998")] == [(other["id"],)]
    assert await _find(rt, world, "phone", "+44 20 7946 0997") == []
    # The name's words and the phone's term live side by side: each finds the prospect alone.
    assert [p.prospect_ids for p in await _find(rt, world, "name", "phoebe")] == [(lead["id"],)]
    # Keyed per workspace: another business's search for the same number finds nothing of ours.
    theirs = await other_workspace(rt)
    assert await _find(rt, theirs, "phone", "+44 20 7946 0999", who=theirs.admin_id) == []
    async with rt.db.unit_of_work(readonly=True) as uow:  # shown: in the read-access log, by id only
        rows = (await uow.session.execute(text(
            "select target_type, detail from audit_events where action = 'subjects.found'"))).all()
    assert any(r.target_type == "prospect" and lead["id"] in r.detail for r in rows)
    assert not any("7946" in r.detail or "Phoebe" in r.detail for r in rows)


async def test_a_visitors_prospect_with_a_phone_finds_the_visitors_person(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    await set_status(rt, world.operator_id)
    started = await start_chat(client, world, {"name": "Vera Qzxchat", "email": "vera.qzx@example.com"})
    vid, conv = started["visitor_id"], started["conversation_id"]
    await accept(rt, world.operator_id, conv)
    assert await _find(rt, world, "phone", "+33 1 98 76 54 32") == []  # the visitor gave no phone
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:  # the operator notes the number the visitor said in the chat
        await prospects.create(rt, uow, admin, ProspectIn(conversation_id=conv, phone="+33 1 98 76 54 32"))
    (person,) = await _find(rt, world, "phone", "33198765432")
    assert (person.visitor_ids, person.prospect_ids) == ((vid,), ())
    stores = {s["key"]: s["count"] for s in person.view()["stores"]}
    assert (stores["visitors"], stores["conversations"], stores["prospects"]) == (1, 1, 1)
    assert [v["email"] for v in person.view()["visits"]] == ["vera.qzx@example.com"]


# ---------------------------------------------------------------- the API: permissions and hostile input
async def test_api_find_and_export(app: Any, rt: Runtime, world: World, people: Any) -> None:
    first, second = people
    async with logged_in(app, "pia@shop.example") as pia:
        found = await pia.post("/api/v1/subjects/find", json={"by": "email", "value": first["canaries"]["email"]},
                               headers=SELF)
        assert found.status_code == 200, found.text
        (person,) = found.json()["persons"]
        assert set(person["visitor_ids"]) == _visitors_of(first)
        got = await pia.post("/api/v1/subjects/export", json={"visitor_ids": person["visitor_ids"],
                                                              "searched_by": "email"}, headers=SELF)
        assert got.status_code == 200, got.text
        assert got.headers["content-type"].startswith("application/json")
        assert got.headers["content-disposition"].startswith('attachment; filename="personal-data-')
        validate(got.json())
        assert second["canaries"]["message"] not in got.text


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"by": "email"},
        {"by": "email", "value": ""},
        {"by": "email", "value": "   "},
        {"by": "email", "value": "x" * 321 + "@example.com"},
        {"by": "email", "value": 42},
        {"by": "email", "value": ["a@example.com"]},
        {"by": "shoe_size", "value": "42"},
        {"by": "email", "value": "no-at-sign"},
        {"by": "name", "value": "a"},
        {"by": "phone", "value": "12"},
        {"by": "email", "value": "a@example.com", "extra": True},
    ],
)
async def test_hostile_searches_are_refused_with_a_message(app: Any, world: World, body: dict[str, Any]) -> None:
    async with logged_in(app, world.admin_email) as admin:
        answer = await admin.post("/api/v1/subjects/find", json=body, headers=SELF)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"visitor_ids": []},
        {"visitor_ids": "abc"},
        {"visitor_ids": [1, 2]},
        {"visitor_ids": ["x" * 65]},
        {"visitor_ids": [f"v{i}" for i in range(101)]},
        {"visitor_ids": ["abc"], "fmt": "docx"},
    ],
)
async def test_hostile_export_requests_are_refused(app: Any, world: World, body: dict[str, Any]) -> None:
    async with logged_in(app, world.admin_email) as admin:
        answer = await admin.post("/api/v1/subjects/export", json=body, headers=SELF)
    assert answer.status_code == 422, answer.text


async def test_permissions(app: Any, client: httpx.AsyncClient, world: World, people: Any) -> None:
    first, _ = people
    find_body = {"by": "email", "value": first["canaries"]["email"]}
    export_body = {"visitor_ids": [first["visitor_id"]]}
    assert (await client.post("/api/v1/subjects/find", json=find_body, headers=SELF)).status_code == 401
    async with logged_in(app, world.operator_email) as operator:  # an operator: no subjects.* permission
        for path, body in (("find", find_body), ("export", export_body), ("send", export_body)):
            denied = await operator.post(f"/api/v1/subjects/{path}", json=body, headers=SELF)
            assert denied.status_code == 403, (path, denied.text)
        assert (await operator.get("/app/subjects")).status_code == 403
    async with logged_in(app, world.admin_email) as admin:
        missing = await admin.post("/api/v1/subjects/export", json={"visitor_ids": ["nope" * 4]}, headers=SELF)
        assert missing.status_code == 404


async def test_find_a_person_page(app: Any, world: World, people: Any) -> None:
    first, second = people
    async with logged_in(app, "pia@shop.example") as pia:
        page = await pia.get("/app/subjects")
        assert page.status_code == 200
        assert 'data-testid="subject-find"' in page.text
        assert 'href="/app/subjects"' in page.text
        results = await pia.post("/app/subjects", data={"by": "phone", "value": first["canaries"]["phone"]},
                                 headers=SELF)
        assert results.status_code == 200
        assert results.text.count('data-testid="subject-person"') == 1
        assert first["canaries"]["email"] in results.text
        assert second["canaries"]["email"] not in results.text
        assert 'data-store="messages"' in results.text
        bad = await pia.post("/app/subjects", data={"by": "email", "value": ""}, headers=SELF)
        assert bad.status_code == 422
        ids = ",".join(sorted(_visitors_of(first)))
        download = await pia.post("/app/subjects/export", data={"visitor_ids": ids, "fmt": "json",
                                                                "searched_by": "phone"}, headers=SELF)
        assert download.status_code == 200
        validate(download.json())
        assert download.json()["person"]["searched_by"] == "phone"


# ---------------------------------------------------------------- delivery by e-mail
async def _send(rt: Runtime, app: Any, world: World, person: dict[str, Any]) -> tuple[str, str, str]:
    async with logged_in(app, world.admin_email) as admin:
        sent = await admin.post("/api/v1/subjects/send", json={"visitor_ids": sorted(_visitors_of(person))},
                                headers=SELF)
    assert sent.status_code == 202, sent.text
    async with Mailbox() as box:
        rt.settings.smtp_host, rt.settings.smtp_port, rt.settings.smtp_security = "127.0.0.1", box.port, "none"
        assert await JobRunner(rt, node_id="t").drain() >= 1
        mails = [m for m in box.received if m.message["Subject"] == "Your personal data: a copy is ready"]
    (got,) = mails
    assert got.rcpt_tos == [person["canaries"]["email"]]
    body = got.part("plain")
    assert not [p for p in got.message.walk() if p.get_content_disposition() == "attachment"]
    assert person["canaries"]["message"] not in body  # never the data itself
    token = LINK.search(body)
    code = CODE.search(body)
    assert token is not None
    assert code is not None
    return token.group(1), code.group(1), sent.json()["link_id"]


async def test_the_emailed_link_works_once_with_its_code(rt: Runtime, app: Any, client: httpx.AsyncClient,
                                                         world: World, people: Any) -> None:
    first, second = people
    token, code, _ = await _send(rt, app, world, first)
    async with rt.db.unit_of_work(readonly=True) as uow:
        (row,) = (await uow.session.execute(text("select * from subject_export_links"))).all()
    assert token not in repr(row)
    assert code not in repr(row)
    form = await client.get(f"/subject-export/{token}")
    assert form.status_code == 200
    assert 'name="code"' in form.text
    wrong = await client.post(f"/subject-export/{token}", data={"code": "aaaaa-bbbbb"}, headers=SELF)
    assert wrong.status_code == 422
    assert "not the one in the e-mail" in wrong.text
    foreign = await client.post(f"/subject-export/{token}", data={"code": code},
                                headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    got = await client.post(f"/subject-export/{token}", data={"code": code.upper()}, headers=SELF)
    assert got.status_code == 200, got.text
    package = got.json()
    validate(package)
    assert first["canaries"]["offline"] in got.text
    assert second["canaries"]["offline"] not in got.text
    again = await client.post(f"/subject-export/{token}", data={"code": code}, headers=SELF)
    assert again.status_code == 410
    assert "used already" in again.text
    assert (await client.get(f"/subject-export/{token}")).status_code == 410
    async with rt.db.unit_of_work(readonly=True) as uow:
        actions = [r[0] for r in (await uow.session.execute(text(
            "select action from audit_events where action like 'subject.%' order by seq"))).all()]
    assert actions == ["subject.export_link_sent", "subject.export_link_refused", "subject.exported"]


async def test_the_link_expires_and_a_forged_one_is_unknown(rt: Runtime, app: Any, client: httpx.AsyncClient,
                                                            world: World, people: Any) -> None:
    first, _ = people
    token, code, _ = await _send(rt, app, world, first)
    forged = await client.get(f"/subject-export/{crypto.random_token()}")
    assert forged.status_code == 404
    assert "not valid" in forged.text
    assert (await client.post("/subject-export/short", data={"code": code}, headers=SELF)).status_code == 404
    clock.advance(timedelta(days=7, minutes=1))
    expired = await client.post(f"/subject-export/{token}", data={"code": code}, headers=SELF)
    assert expired.status_code == 410
    assert "expired" in expired.text


async def test_too_many_wrong_codes_revoke_the_link(rt: Runtime, app: Any, client: httpx.AsyncClient,
                                                    world: World, people: Any) -> None:
    first, _ = people
    token, code, _ = await _send(rt, app, world, first)
    for _ in range(rt.settings.export_link_max_codes):
        assert (await client.post(f"/subject-export/{token}", data={"code": "wrong"}, headers=SELF)).status_code == 422
    revoked = await client.post(f"/subject-export/{token}", data={"code": code}, headers=SELF)
    assert revoked.status_code == 410
    assert "too many wrong codes" in revoked.text


async def test_a_person_without_an_email_cannot_be_sent_a_link(rt: Runtime, app: Any, client: httpx.AsyncClient,
                                                               world: World) -> None:
    await set_status(rt, world.operator_id)
    site_fields = [{"key": "name", "label": "Name", "type": "text", "required": True}]
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await workspaces.update_site(uow, admin, world.site_id, SitePatch(prechat_fields=site_fields))
    started = await start_chat(client, world, {"name": "No Mail"})
    async with logged_in(app, world.admin_email) as staff:
        refused = await staff.post("/api/v1/subjects/send", json={"visitor_ids": [started["visitor_id"]]},
                                   headers=SELF)
    assert refused.status_code == 422
    assert "no e-mail address" in refused.json()["detail"]


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_two_downloads_at_once_spend_the_link_once(rt: Runtime, app: Any, world: World, people: Any) -> None:
    import asyncio

    first, _ = people
    token, code, _ = await _send(rt, app, world, first)

    async def attempt() -> int | str:
        try:
            await delivery.download(rt, token, code)
        except delivery.LinkUnusable as exc:
            return exc.reason
        return 200

    results = await asyncio.gather(attempt(), attempt())
    assert sorted(map(str, results)) == ["200", "used"]


# ---------------------------------------------------------------- the CLI
async def test_cli_find_and_export(rt: Runtime, world: World, people: Any, tmp_path: Path) -> None:
    from tests.cli_helpers import run_cli

    first, second = people
    base = ("--workspace", world.workspace_id, "--as", "pia@shop.example")
    found = await run_cli(rt.settings, "subject", "find", *base, "--email", first["canaries"]["email"], "--json")
    assert found.exit_code == 0, found.output
    (person,) = json.loads(found.stdout)["persons"]
    assert set(person["visitor_ids"]) == _visitors_of(first)
    listed = await run_cli(rt.settings, "subject", "find", *base, "--phone", first["canaries"]["phone"])
    assert listed.exit_code == 0, listed.output
    assert "Messages:" in listed.stdout
    out = tmp_path / "export.json"
    args = [a for vid in person["visitor_ids"] for a in ("--visitor", vid)]
    done = await run_cli(rt.settings, "subject", "export", *base, *args, "--out", str(out))
    assert done.exit_code == 0, done.output
    package = json.loads(out.read_text())
    validate(package)
    assert first["canaries"]["rating"] in out.read_text()
    assert second["canaries"]["rating"] not in out.read_text()
    # Bad input: exit 2 with a sentence; refused: exit 1.
    two = await run_cli(rt.settings, "subject", "find", *base, "--email", "a@b.example", "--name", "Ana")
    assert two.exit_code == 2
    assert "exactly one" in two.output
    empty = await run_cli(rt.settings, "subject", "find", *base, "--email", "")
    assert empty.exit_code == 2
    denied = await run_cli(rt.settings, "subject", "find", "--workspace", world.workspace_id, "--as",
                           world.operator_email, "--email", first["canaries"]["email"])
    assert denied.exit_code == 1
    assert "permission" in denied.output
    foreign = await run_cli(rt.settings, "subject", "export", *base, "--visitor", "no-such-visitor",
                            "--out", str(tmp_path / "x.json"))
    assert foreign.exit_code == 1
    assert not (tmp_path / "x.json").exists()


async def test_a_phone_given_later_or_a_new_name_keeps_the_person_findable(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    from confide.visitors import service as visitors_service

    await set_status(rt, world.operator_id)
    started = await start_chat(client, world, {"name": "Ada Qzxlater", "email": "ada.later@example.com"})
    vid = started["visitor_id"]
    assert await _find(rt, world, "phone", "+49 30 1234567") == []
    async with rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, world.site_id)
        visitor = await visitors_service.get_visitor(uow, vid)
        assert site is not None
        assert visitor is not None
        await visitors_service.add_contact(rt, uow, site, visitor, phone="+49 30 1234567")
    (person,) = await _find(rt, world, "phone", "+493012345 67")
    assert person.visitor_ids == (vid,)
    async with rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, world.site_id)
        visitor = await visitors_service.get_visitor(uow, vid)
        assert site is not None
        assert visitor is not None
        await visitors_service.update_details(rt, uow, site, visitor, {"name": "Ada Qzxrenamed"}, {})
    assert (await _find(rt, world, "phone", "+49 30 1234567"))[0].visitor_ids == (vid,)
    assert (await _find(rt, world, "name", "Qzxrenamed"))[0].visitor_ids == (vid,)
    assert await _find(rt, world, "name", "Qzxlater") == []  # the old name's words are gone
    async with rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, world.site_id)
        visitor = await visitors_service.get_visitor(uow, vid)
        assert site is not None
        assert visitor is not None
        await visitors_service.add_contact(rt, uow, site, visitor, phone="+49 30 7654321")
    assert await _find(rt, world, "phone", "+49 30 1234567") == []  # replaced: the old number no longer matches
    assert (await _find(rt, world, "phone", "+49 30 7654321"))[0].visitor_ids == (vid,)
    assert (await _find(rt, world, "name", "Qzxrenamed"))[0].visitor_ids == (vid,)
