"""Stored Chats: ``GET /api/v1/conversations`` filters (dates, site, department, operator, visitor,
words, rating, status), pagination, scoping, validation, and the transcript."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from confide.core import clock
from confide.core.runtime import Runtime
from tests import factories
from tests.conftest import World
from tests.helpers_api import (
    accept,
    close,
    logged_in,
    other_workspace,
    rate,
    say,
    set_status,
    start_chat,
)


@dataclass
class Archive:
    world: World
    blog_site_id: str
    sales_id: str
    sam_id: str
    ids: dict[str, str]  # label -> conversation id


def day(d: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, d, hour, 0, tzinfo=UTC)


@pytest.fixture
async def archive(client: httpx.AsyncClient, rt: Runtime, world: World) -> Archive:
    """Four chats of our workspace on different days, and one of another workspace."""
    clock.freeze(day(1, 8))
    async with rt.db.unit_of_work() as uow:
        sales = await factories.department(uow, workspace_id=world.workspace_id, site_id=world.site_id,
                                           name="Sales")
        sam = await factories.operator(rt, uow, workspace_id=world.workspace_id, email="sam@shop.example",
                                       department_ids=[sales.id], name="Sam", status="online")
        blog = await factories.site(uow, workspace_id=world.workspace_id, name="Blog",
                                    allowed_origins=["https://blog.example"])
        blog_dept = await factories.department(uow, workspace_id=world.workspace_id, site_id=blog.id,
                                               name="Blog")
        await factories.operator(rt, uow, workspace_id=world.workspace_id, email="bea@shop.example",
                                 department_ids=[blog_dept.id], name="Bea", status="online")
    await set_status(rt, world.operator_id)
    blog_world = World(world.workspace_id, blog.id, blog.site_key, "https://blog.example", blog_dept.id,
                       world.admin_id, world.admin_email, world.operator_id, world.operator_email)
    ids: dict[str, str] = {}

    clock.freeze(day(1))
    one = await start_chat(client, world, {"name": "Ana Lovelace", "email": "Ana@Example.com"},
                           department_id=world.department_id)
    ids["one"] = one["conversation_id"]
    await accept(rt, world.operator_id, ids["one"])
    await say(rt, ids["one"], "Hello, my parcel is late", sender_id=one["visitor_id"])
    await say(rt, ids["one"], "Sorry! Have a café crème on us", sender="operator", sender_id=world.operator_id)
    await say(rt, ids["one"], "Merci beaucoup", sender_id=one["visitor_id"])
    await close(rt, world.operator_id, ids["one"])
    await rate(rt, world, one, 5, "great")

    clock.freeze(day(10))
    two = await start_chat(client, world, {"name": "Bob Builder", "email": "bob@example.org"},
                           department_id=sales.id)
    ids["two"] = two["conversation_id"]
    await accept(rt, sam.id, ids["two"])
    await say(rt, ids["two"], "I want a refund for the PARCEL", sender_id=two["visitor_id"])
    await close(rt, sam.id, ids["two"])
    await rate(rt, world, two, 2)

    clock.freeze(day(20))
    three = await start_chat(client, world, {"name": "Ana Smith", "email": "ana.smith@example.net"},
                             department_id=world.department_id)
    ids["three"] = three["conversation_id"]
    await accept(rt, world.operator_id, ids["three"])
    await say(rt, ids["three"], "Where is my order?", sender_id=three["visitor_id"])

    clock.freeze(day(25))
    four = await start_chat(client, blog_world, {"name": "Carl Jung", "email": "carl@example.com"})
    ids["four"] = four["conversation_id"]
    await say(rt, ids["four"], "A question about the blog", sender_id=four["visitor_id"])

    # Another business: same visitor e-mail, a word of its own and a shared one.
    other = await other_workspace(rt)
    await set_status(rt, other.operator_id)
    foreign = await start_chat(client, other, {"name": "Ana Lovelace", "email": "ana@example.com"})
    ids["foreign"] = foreign["conversation_id"]
    await say(rt, ids["foreign"], "zebra parcel late", sender_id=foreign["visitor_id"])
    clock.freeze(day(28))
    return Archive(world, blog.id, sales.id, sam.id, ids)


@pytest.fixture
async def admin(app: Any, archive: Archive) -> Any:
    async with logged_in(app, archive.world.admin_email) as http:
        yield http


async def found(http: httpx.AsyncClient, archive: Archive, **params: Any) -> list[str]:
    """The labels of the conversations the search returns, in its order."""
    response = await http.get("/api/v1/conversations", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    by_id = {v: k for k, v in archive.ids.items()}
    labels = [by_id[item["id"]] for item in body["items"]]
    assert body["total"] == len(labels) or "per_page" in params or "page" in params
    return labels


async def test_everything_newest_first(admin: httpx.AsyncClient, archive: Archive) -> None:
    response = await admin.get("/api/v1/conversations")
    body = response.json()
    assert body["total"] == 4
    assert body["page"] == 1
    assert body["per_page"] == 25
    assert await found(admin, archive) == ["four", "three", "two", "one"]
    one = body["items"][3]
    assert one["status"] == "closed"
    assert one["rating"] == 5
    assert one["operator_name"] == "Mia"
    assert one["visitor"]["name"] == "Ana Lovelace"
    assert one["message_count"] == 3  # what people wrote; "joined" and "closed" lines do not count
    assert one["created_at"] == "2026-11-01T12:00:00Z"


FILTERS: list[tuple[dict[str, Any], list[str]]] = [
    ({"date_from": "2026-11-05T00:00:00Z"}, ["four", "three", "two"]),
    ({"date_to": "2026-11-15T00:00:00Z"}, ["two", "one"]),
    ({"date_from": "2026-11-05T00:00:00Z", "date_to": "2026-11-21T00:00:00Z"}, ["three", "two"]),
    ({"date_from": "2026-11-10T12:00:00Z", "date_to": "2026-11-10T12:00:00Z"}, ["two"]),  # inclusive
    ({"date_from": "2026-11-10T13:00:00+01:00", "date_to": "2026-11-10T13:00:00+01:00"}, ["two"]),  # offsets
    ({"date_from": "2026-12-01T00:00:00Z"}, []),
    ({"date_from": "2026-11-05", "date_to": "2026-11-21"}, ["three", "two"]),  # plain dates are UTC
    ({"status": "closed"}, ["two", "one"]),
    ({"status": "active"}, ["three"]),
    ({"status": "queued"}, ["four"]),
    ({"rating": 5}, ["one"]),
    ({"rating": 2}, ["two"]),
    ({"rating": 3}, []),
]


async def test_filters(admin: httpx.AsyncClient, archive: Archive) -> None:
    for params, expected in FILTERS:  # one archive, many searches (the set-up is the slow part)
        assert await found(admin, archive, **params) == expected, params


async def test_filter_by_site_department_and_operator(admin: httpx.AsyncClient, archive: Archive) -> None:
    w = archive.world
    assert await found(admin, archive, site_id=w.site_id) == ["three", "two", "one"]
    assert await found(admin, archive, site_id=archive.blog_site_id) == ["four"]
    assert await found(admin, archive, department_id=archive.sales_id) == ["two"]
    assert await found(admin, archive, department_id=w.department_id) == ["three", "one"]
    assert await found(admin, archive, operator_id=w.operator_id) == ["three", "one"]
    assert await found(admin, archive, operator_id=archive.sam_id) == ["two"]
    assert await found(admin, archive, operator_id=w.admin_id) == []
    assert await found(admin, archive, site_id="no-such-site") == []
    assert await found(admin, archive, site_id=w.site_id, operator_id=w.operator_id, rating=5) == ["one"]


VISITORS: list[tuple[str, list[str]]] = [
    ("ana@example.com", ["one"]),  # the other workspace's Ana has the same address: not found
    ("ANA@EXAMPLE.COM", ["one"]),
    ("  Ana@Example.com ", ["one"]),
    ("ana.smith@example.net", ["three"]),
    ("nobody@example.com", []),
    ("ana", ["three", "one"]),
    ("ANA", ["three", "one"]),
    ("Ana Lovelace", ["one"]),
    ("lovelace ana", ["one"]),  # word order does not matter
    ("Lovelace", ["one"]),
    ("Ana Builder", []),  # every word must match the same visitor
    ("lovel", []),  # whole words only
    ("jung", ["four"]),
]


async def test_filter_by_visitor(admin: httpx.AsyncClient, archive: Archive) -> None:
    for visitor, expected in VISITORS:
        assert await found(admin, archive, visitor=visitor) == expected, visitor


WORDS: list[tuple[str, list[str]]] = [
    ("parcel", ["two", "one"]),  # the other workspace also wrote "parcel": not found
    ("PARCEL", ["two", "one"]),
    ("parcel late", ["one"]),  # all words must match
    ("late parcel", ["one"]),
    ("parcel refund", ["two"]),
    ("parcel, late!", ["one"]),  # punctuation separates words
    ("café", ["one"]),  # an operator's words count too
    ("CAFÉ CRÈME", ["one"]),  # case folded
    ("cafe\u0301", ["one"]),  # the decomposed form normalises to the same word (NFKC)
    ("cafe", []),  # accents are kept: "cafe" is another word
    ("zebra", []),  # a word only the other workspace wrote
    ("joined", []),  # system lines are not searched
    ("order", ["three"]),
    ("blog question", ["four"]),
    ("refund late", []),  # in two different chats, not in one
]


async def test_filter_by_words(admin: httpx.AsyncClient, archive: Archive) -> None:
    for words, expected in WORDS:
        assert await found(admin, archive, text=words) == expected, words


async def test_words_combine_with_other_filters(admin: httpx.AsyncClient, archive: Archive) -> None:
    assert await found(admin, archive, text="parcel", rating=2) == ["two"]
    assert await found(admin, archive, text="parcel", visitor="ana") == ["one"]
    assert await found(admin, archive, text="parcel", status="active") == []


async def test_pagination(admin: httpx.AsyncClient, archive: Archive) -> None:
    pages = []
    for page in (1, 2, 3):
        body = (await admin.get("/api/v1/conversations", params={"per_page": 2, "page": page})).json()
        assert body["total"] == 4
        assert body["page"] == page
        assert body["per_page"] == 2
        pages.append([item["id"] for item in body["items"]])
    assert [len(p) for p in pages] == [2, 2, 0]
    ids = archive.ids
    assert pages[0] + pages[1] == [ids["four"], ids["three"], ids["two"], ids["one"]]
    body = (await admin.get("/api/v1/conversations", params={"per_page": 3, "page": 2})).json()
    assert [item["id"] for item in body["items"]] == [ids["one"]]
    body = (await admin.get("/api/v1/conversations", params={"per_page": 1, "status": "closed"})).json()
    assert body["total"] == 2
    assert [item["id"] for item in body["items"]] == [ids["two"]]
    body = (await admin.get("/api/v1/conversations", params={"per_page": 100})).json()
    assert len(body["items"]) == 4


INVALID: list[dict[str, Any]] = [
    {"rating": 9}, {"rating": 0}, {"rating": "five"}, {"per_page": 1000}, {"per_page": 0}, {"page": 0},
    {"status": "deleted"}, {"date_from": "yesterday"}, {"sort": "name"}, {"text": "x" * 501},
    {"visitor": "x" * 321},
]


async def test_invalid_filters_are_422(admin: httpx.AsyncClient, archive: Archive) -> None:
    for params in INVALID:
        response = await admin.get("/api/v1/conversations", params=params)
        assert response.status_code == 422, params
        assert response.json()["detail"]


async def test_text_without_a_real_word_is_422(admin: httpx.AsyncClient, archive: Archive) -> None:
    for text in ("a", "?!", "a b c"):
        response = await admin.get("/api/v1/conversations", params={"text": text})
        assert response.status_code == 422
        assert response.json() == {"detail": "search for words of at least two letters", "code": "invalid"}


async def test_operator_searches_only_their_departments(app: Any, archive: Archive) -> None:
    async with logged_in(app, archive.world.operator_email) as mia:
        assert await found(mia, archive) == ["three", "one"]
        assert await found(mia, archive, text="parcel") == ["one"]
        assert await found(mia, archive, department_id=archive.sales_id) == []
        assert await found(mia, archive, visitor="bob@example.org") == []
        response = await mia.get(f"/api/v1/conversations/{archive.ids['two']}")
        assert response.status_code == 404


async def test_the_other_workspace_finds_only_its_own(app: Any, rt: Runtime, archive: Archive) -> None:
    async with logged_in(app, "root@other.example") as theirs:
        assert await found(theirs, archive) == ["foreign"]
        assert await found(theirs, archive, visitor="ana@example.com") == ["foreign"]
        assert await found(theirs, archive, text="parcel late") == ["foreign"]
        assert await found(theirs, archive, text="refund") == []


async def test_transcript(admin: httpx.AsyncClient, archive: Archive) -> None:
    response = await admin.get(f"/api/v1/conversations/{archive.ids['one']}")
    assert response.status_code == 200
    chat = response.json()
    assert chat["id"] == archive.ids["one"]
    assert chat["status"] == "closed"
    assert chat["site"] == {"id": archive.world.site_id, "name": "Shop"}
    assert chat["department"] == {"id": archive.world.department_id, "name": "Support"}
    assert chat["visitor"]["name"] == "Ana Lovelace"
    assert chat["visitor"]["email"] == "Ana@example.com"
    assert chat["visitor"]["consents"] == {"marketing": False}
    assert chat["rating"] == 5
    assert chat["rating_comment"] == "great"
    assert chat["operator_name"] == "Mia"
    messages = chat["messages"]
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    assert [(m["sender"], m["text"]) for m in messages] == [
        ("system", "Mia joined the chat."),
        ("visitor", "Hello, my parcel is late"),
        ("operator", "Sorry! Have a café crème on us"),
        ("visitor", "Merci beaucoup"),
        ("system", "The chat was closed."),
    ]
    assert messages[2]["sender_name"] == "Mia"
    assert messages[1]["sender_name"] is None
    assert all(m["created_at"].endswith("Z") for m in messages)
    assert chat["message_count"] == len([m for m in messages if m["sender"] != "system"])
    for unknown in ("no-such-conversation", archive.ids["foreign"]):
        response = await admin.get(f"/api/v1/conversations/{unknown}")
        assert response.status_code == 404
        assert response.json() == {"detail": "conversation not found", "code": "not_found"}


async def test_stored_chats_need_a_login(client: httpx.AsyncClient, archive: Archive) -> None:
    assert (await client.get("/api/v1/conversations")).status_code == 401
    assert (await client.get(f"/api/v1/conversations/{archive.ids['one']}")).status_code == 401
