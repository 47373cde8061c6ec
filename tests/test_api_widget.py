"""The widget's HTTP API: Origin checks and CORS, configuration and availability, starting a chat,
leaving a message, and what ends up in the database (encrypted, nothing on refusal)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from confide.auth import visitor_tokens
from confide.chats.models import Conversation
from confide.consent.models import ConsentRecord
from confide.core import clock
from confide.core.broker import MemoryBroker
from confide.core.crypto import KeyWrapper, b64d
from confide.core.errors import NotFound
from confide.core.keys import KeyRing
from confide.core.runtime import Runtime, build_runtime
from confide.offline.models import OfflineRequest
from confide.permissions.access import access_conversation_by_id
from confide.visitors.models import Visitor
from tests import factories
from tests.conftest import MASTER_KEY, World
from tests.helpers_api import (
    accept,
    chat_body,
    close,
    counts,
    leave_message,
    logged_in,
    other_workspace,
    rate,
    say,
    set_status,
    start_chat,
    visitor_actor,
)

WRITTEN = ("visitors", "visitor_terms", "conversations", "messages", "subject_keys", "offline_requests")
ACAO = "access-control-allow-origin"


def config_url(world: World) -> str:
    return f"/api/v1/widget/{world.site_key}/config"


def chats_url(world: World) -> str:
    return f"/api/v1/widget/{world.site_key}/conversations"


# ---------------------------------------------------------------- configuration
async def test_config_for_an_allowed_origin(client: httpx.AsyncClient, world: World) -> None:
    response = await client.get(config_url(world), headers={"Origin": world.origin})
    assert response.status_code == 200
    assert response.headers[ACAO] == world.origin
    assert response.headers["cache-control"] == "no-store"
    config = response.json()
    assert config["site"] == {"name": "Shop", "privacy_policy_url": "https://shop.example/privacy",
                              "greeting": "", "color": "#2563eb"}
    fields = config["prechat_form"]["fields"]
    assert [f["key"] for f in fields] == ["name", "email", "phone", "order", "topic"]
    assert [f["type"] for f in fields] == ["text", "email", "tel", "text", "select"]
    assert fields[0]["required"] is True
    assert fields[2]["required"] is False
    assert fields[4]["options"] == ["Sales", "Support"]
    # The workspace's purpose the site offers, with the exact notice text its checkbox shows (ADR 0018).
    [purpose] = config["purposes"]
    assert {k: purpose[k] for k in ("key", "label", "version", "language")} == {
        "key": "marketing", "label": "News by e-mail", "version": 1, "language": "en"}
    assert config["departments"] == [{"id": world.department_id, "name": "Support"}]
    # Nobody is online yet.
    assert config["available"] is False
    assert config["open_now"] is True


async def test_config_available_once_an_operator_is_online(client: httpx.AsyncClient, rt: Runtime,
                                                           world: World) -> None:
    await set_status(rt, world.operator_id, "away")
    assert (await client.get(config_url(world), headers={"Origin": world.origin})).json()["available"] is False
    await set_status(rt, world.operator_id, "online")
    assert (await client.get(config_url(world), headers={"Origin": world.origin})).json()["available"] is True
    await set_status(rt, world.operator_id, "offline")
    assert (await client.get(config_url(world), headers={"Origin": world.origin})).json()["available"] is False


async def test_an_operator_of_another_site_does_not_make_it_available(client: httpx.AsyncClient, rt: Runtime,
                                                                      world: World) -> None:
    async with rt.db.unit_of_work() as uow:
        other = await factories.site(uow, workspace_id=world.workspace_id, name="Blog",
                                     allowed_origins=["https://blog.example"])
        dept = await factories.department(uow, workspace_id=world.workspace_id, site_id=other.id, name="Blog")
        await factories.operator(rt, uow, workspace_id=world.workspace_id, email="bo@shop.example",
                                 department_ids=[dept.id], status="online")
    config = (await client.get(config_url(world), headers={"Origin": world.origin})).json()
    assert config["available"] is False
    assert config["departments"] == [{"id": world.department_id, "name": "Support"}]


async def _site_with_hours(rt: Runtime, world: World) -> World:
    """A second site of the workspace, open Monday 09:00-17:00 Berlin time, with an online operator."""
    async with rt.db.unit_of_work() as uow:
        site = await factories.site(uow, workspace_id=world.workspace_id, name="Berlin shop",
                                    allowed_origins=["https://berlin.example"], timezone="Europe/Berlin",
                                    business_hours={"mon": [["09:00", "17:00"]]})
        dept = await factories.department(uow, workspace_id=world.workspace_id, site_id=site.id, name="Berlin")
        op = await factories.operator(rt, uow, workspace_id=world.workspace_id, email="bert@shop.example",
                                      department_ids=[dept.id], status="online")
    return World(world.workspace_id, site.id, site.site_key, "https://berlin.example", dept.id, world.admin_id,
                 world.admin_email, op.id, op.email)


HOURS = [
    (datetime(2026, 11, 30, 7, 30, tzinfo=UTC), False),  # 08:30 in Berlin: not yet
    (datetime(2026, 11, 30, 8, 0, tzinfo=UTC), True),  # 09:00 in Berlin: opening time
    (datetime(2026, 11, 30, 15, 59, tzinfo=UTC), True),  # 16:59 in Berlin
    (datetime(2026, 11, 30, 16, 0, tzinfo=UTC), False),  # 17:00 in Berlin: closing time
    (datetime(2026, 11, 30, 16, 30, tzinfo=UTC), False),  # 17:30 in Berlin (16:30 UTC would be open)
    (datetime(2026, 11, 28, 10, 0, tzinfo=UTC), False),  # Saturday
    (datetime(2026, 7, 6, 7, 30, tzinfo=UTC), True),  # summer time: 09:30 in Berlin
]


async def test_business_hours_in_the_sites_time_zone(client: httpx.AsyncClient, rt: Runtime,
                                                     world: World) -> None:
    berlin = await _site_with_hours(rt, world)
    for at, open_now in HOURS:
        clock.freeze(at)
        config = (await client.get(config_url(berlin), headers={"Origin": berlin.origin})).json()
        assert config["open_now"] is open_now, at
        assert config["available"] is open_now, at  # an operator is online: only the hours decide


async def test_no_chat_outside_business_hours(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    berlin = await _site_with_hours(rt, world)
    clock.freeze(datetime(2026, 11, 30, 16, 30, tzinfo=UTC))
    before = await counts(rt, *WRITTEN)
    result = await start_chat(client, berlin, expect=409)
    assert result == {"detail": "no operator is available", "code": "offline"}
    assert await counts(rt, *WRITTEN) == before
    # Leaving a message is always possible.
    await leave_message(client, berlin)
    clock.freeze(datetime(2026, 11, 30, 9, 30, tzinfo=UTC))
    await start_chat(client, berlin)


# ---------------------------------------------------------------- Origin and CORS
FOREIGN: list[dict[str, str]] = [
    {"Origin": "https://evil.example"},
    {"Origin": "https://shop.example.evil.example"},
    {"Origin": "http://shop.example"},  # another scheme is another origin
    {"Origin": "https://shop.example:8443"},  # another port too
    {"Origin": "null"},
    {"Referer": "https://shop.example/pricing"},  # a Referer is no Origin
    {},
]


async def test_foreign_or_missing_origin_is_refused(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    await set_status(rt, world.operator_id)
    before = await counts(rt, *WRITTEN)
    for headers in FOREIGN:
        response = await client.get(config_url(world), headers=headers)
        assert response.status_code == 403, headers
        assert response.json()["detail"] == "origin not allowed"
        assert ACAO not in response.headers
        for path, body in ((chats_url(world), chat_body()),
                           (f"/api/v1/widget/{world.site_key}/offline-requests",
                            {"fields": {"name": "Ana", "email": "ana@example.com"}, "message": "hi"})):
            response = await client.post(path, json=body, headers=headers)
            assert response.status_code == 403, (headers, response.text)
            assert response.json()["detail"] == "origin not allowed"
            assert ACAO not in response.headers
    assert await counts(rt, *WRITTEN) == before


async def test_origin_of_another_site_of_the_same_server_is_refused(client: httpx.AsyncClient, rt: Runtime,
                                                                    world: World) -> None:
    other = await other_workspace(rt)
    response = await client.get(config_url(world), headers={"Origin": other.origin})
    assert response.status_code == 403
    assert ACAO not in response.headers
    # and each site answers its own origin
    assert (await client.get(config_url(other), headers={"Origin": other.origin})).status_code == 200


async def test_unknown_site_key_is_404(client: httpx.AsyncClient, world: World) -> None:
    for method, path, body in (("GET", "/api/v1/widget/nope/config", None),
                               ("POST", "/api/v1/widget/nope/conversations", chat_body()),
                               ("POST", "/api/v1/widget/nope/offline-requests",
                                {"fields": {}, "message": "hi"}),
                               ("OPTIONS", "/api/v1/widget/nope/conversations", None)):
        response = await client.request(method, path, json=body, headers={"Origin": world.origin})
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["detail"] == "site not found"
        assert ACAO not in response.headers
    assert (await client.get("/api/v1/widget/" + "x" * 100 + "/config",
                             headers={"Origin": world.origin})).status_code == 404


async def test_allowed_origin_gets_cors_headers_on_errors(client: httpx.AsyncClient, rt: Runtime,
                                                          world: World) -> None:
    # 409: nobody online
    response = await client.post(chats_url(world), json=chat_body(), headers={"Origin": world.origin})
    assert response.status_code == 409
    assert response.json()["code"] == "offline"
    assert response.headers[ACAO] == world.origin
    assert response.headers["vary"] == "Origin"
    # 422 from the service (unknown field) and from request validation (unknown top-level key)
    await set_status(rt, world.operator_id)
    response = await client.post(chats_url(world), json=chat_body({"name": "A", "email": "a@example.com",
                                                                   "shoe": "42"}),
                                 headers={"Origin": world.origin})
    assert response.status_code == 422
    assert response.headers[ACAO] == world.origin
    response = await client.post(chats_url(world), json={**chat_body(), "admin": True},
                                 headers={"Origin": world.origin})
    assert response.status_code == 422
    assert response.headers[ACAO] == world.origin


async def test_preflight(client: httpx.AsyncClient, world: World) -> None:
    preflight = {"Origin": world.origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    for path in (chats_url(world), f"/api/v1/widget/{world.site_key}/offline-requests", config_url(world)):
        response = await client.options(path, headers=preflight)
        assert response.status_code == 204, response.text
        assert response.headers[ACAO] == world.origin
        assert "POST" in response.headers["access-control-allow-methods"]
        assert response.headers["access-control-allow-headers"].lower() == "content-type"
        assert response.content == b""
    response = await client.options(chats_url(world), headers={**preflight, "Origin": "https://evil.example"})
    assert response.status_code == 403
    assert ACAO not in response.headers
    assert "access-control-allow-methods" not in response.headers


# ---------------------------------------------------------------- starting a chat
async def test_start_conversation(app: Any, client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    await set_status(rt, world.operator_id)
    response = await client.post(chats_url(world), headers={"Origin": world.origin}, json=chat_body(
        {"name": "Ana Visitor", "email": "Ana@Example.com", "phone": "+44 20 7946 0958", "order": "A-17",
         "topic": "Support"}, department_id=world.department_id, page_url="https://shop.example/pricing"))
    assert response.status_code == 201, response.text
    assert response.headers[ACAO] == world.origin
    started = response.json()
    assert set(started) == {"token", "visitor_id", "conversation_id", "expires_at"}
    assert started["expires_at"].endswith("Z")
    # The token names this visitor of this site, nothing more; it is refused for another site.
    who = visitor_tokens.verify(rt.visitor_tokens, started["token"], site_id=world.site_id)
    assert who == visitor_actor(world, started)
    with pytest.raises(Exception, match="invalid or expired"):
        visitor_tokens.verify(rt.visitor_tokens, started["token"], site_id="another-site")
    async with rt.db.unit_of_work(readonly=True) as uow:
        conv = await access_conversation_by_id(uow.session, who, started["conversation_id"])
        assert conv.status == "queued"
        assert conv.department_id == world.department_id
        assert conv.offered_to == world.operator_id  # round robin offered it to the one online operator
    # The operator sees what the visitor typed.
    async with logged_in(app, world.operator_email) as console:
        view = (await console.get(f"/api/v1/conversations/{started['conversation_id']}")).json()
    assert view["visitor"]["name"] == "Ana Visitor"
    assert view["visitor"]["email"] == "Ana@example.com"
    assert view["visitor"]["phone"] == "+44 20 7946 0958"
    assert view["visitor"]["fields"] == {"order": "A-17", "topic": "Support"}
    assert view["visitor"]["page_url"] == "https://shop.example/pricing"


async def _other_site_department(rt: Runtime, world: World) -> str:
    async with rt.db.unit_of_work() as uow:
        site = await factories.site(uow, workspace_id=world.workspace_id, name="Blog",
                                    allowed_origins=["https://blog.example"])
        dept = await factories.department(uow, workspace_id=world.workspace_id, site_id=site.id, name="Blog")
    return dept.id


OK = {"name": "Ana Visitor", "email": "ana@example.com"}


INVALID_STARTS: list[tuple[dict[str, Any], str]] = [
    ({"fields": {"email": "ana@example.com"}}, "Name is required"),
    ({"fields": {"name": "   ", "email": "ana@example.com"}}, "Name is required"),
    ({"fields": {"name": "Ana"}}, "E-mail is required"),
    ({"fields": {**OK, "shoe_size": "42"}}, "unknown field: shoe_size"),
    ({"fields": {**OK, "email": "not-an-address"}}, "E-mail: not a valid e-mail address"),
    ({"fields": {**OK, "email": "ana@"}}, "E-mail: not a valid e-mail address"),
    ({"fields": {**OK, "phone": "call me maybe"}}, "Phone: not a valid phone number"),
    ({"fields": {**OK, "phone": "12"}}, "Phone: not a valid phone number"),
    ({"fields": {**OK, "topic": "Refunds"}}, "Topic: choose one of the options"),
    ({"fields": {**OK, "name": 42}}, "Name: must be text"),
    ({"fields": {**OK, "order": "x" * 501}}, "Order is too long"),
    ({"fields": OK, "consents": {"newsletter": True}}, "unknown consent purpose: newsletter"),
    ({"fields": OK, "consents": {"marketing": "yes"}}, "consent marketing: must be true or false"),
    ({"fields": OK, "consents": {"marketing": 1}}, "consent marketing: must be true or false"),
    ({"fields": OK, "department_id": "no-such-department"}, "unknown department"),
    ({"fields": OK, "department_id": "OTHER_SITE"}, "unknown department"),
    ({"fields": OK, "department_id": "OTHER_WORKSPACE"}, "unknown department"),
]


async def test_invalid_start_writes_nothing(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    await set_status(rt, world.operator_id)  # only the answers can be the reason
    departments = {"OTHER_SITE": await _other_site_department(rt, world),
                   "OTHER_WORKSPACE": (await other_workspace(rt)).department_id}
    before = await counts(rt, *WRITTEN)
    for body, detail in INVALID_STARTS:
        if body.get("department_id") in departments:
            body = {**body, "department_id": departments[body["department_id"]]}
        response = await client.post(chats_url(world), json=body, headers={"Origin": world.origin})
        assert response.status_code == 422, (body, response.text)
        assert response.json() == {"detail": detail, "code": "invalid"}
        assert await counts(rt, *WRITTEN) == before, body
    # The same answers, corrected, are accepted.
    await start_chat(client, world, {**OK, "phone": "+44 20 7946 0958", "topic": "Sales"})


async def test_malformed_start_is_422(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    await set_status(rt, world.operator_id)
    before = await counts(rt, *WRITTEN)
    for body in ({**chat_body(), "surprise": 1},  # unknown top-level key
                 {**chat_body(), "fields": ["name", "Ana"]},  # fields must be an object
                 {**chat_body(), "consents": "all"},
                 {**chat_body(), "page_url": "https://shop.example/" + "p" * 2000},
                 {**chat_body(), "department_id": 7}):
        response = await client.post(chats_url(world), json=body, headers={"Origin": world.origin})
        assert response.status_code == 422, body
        assert response.json()["detail"]
    response = await client.post(chats_url(world), content=b"{not json", headers={
        "Origin": world.origin, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert await counts(rt, *WRITTEN) == before


async def test_nobody_online_is_409_offline_and_writes_nothing(client: httpx.AsyncClient, rt: Runtime,
                                                               world: World) -> None:
    await set_status(rt, world.operator_id, "away")
    before = await counts(rt, *WRITTEN)
    result = await start_chat(client, world, expect=409)
    assert result == {"detail": "no operator is available", "code": "offline"}
    assert await counts(rt, *WRITTEN) == before


async def test_disabled_operator_does_not_count_as_online(app: Any, client: httpx.AsyncClient, rt: Runtime,
                                                          world: World) -> None:
    await set_status(rt, world.operator_id)
    async with logged_in(app, world.admin_email) as admin:
        response = await admin.patch(f"/api/v1/operators/{world.operator_id}", json={"disabled": True},
                                     headers={"Origin": "http://testserver"})
        assert response.status_code == 200
    assert (await client.get(config_url(world), headers={"Origin": world.origin})).json()["available"] is False
    assert (await start_chat(client, world, expect=409))["code"] == "offline"


async def test_consent_choice_is_recorded_and_never_blocks(client: httpx.AsyncClient, rt: Runtime,
                                                           world: World) -> None:
    await set_status(rt, world.operator_id)
    clock.freeze(datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
    for consents, granted in (({"marketing": False}, False),
                              ({}, False),  # silence is not consent
                              ({"marketing": True}, True)):
        started = await start_chat(client, world, consents=consents)
        async with rt.db.unit_of_work(readonly=True) as uow:
            visitor = await uow.session.get(Visitor, started["visitor_id"])
            assert visitor is not None
            assert visitor.consents == {}  # no longer written: the consent ledger holds the choice (ADR 0018)
            rows = (await uow.session.scalars(select(ConsentRecord).where(
                ConsentRecord.subject_id == started["visitor_id"]))).all()
        # One ledger row, with the version of the notice the visitor saw, and when.
        assert [(r.purpose, r.granted, r.notice_version, r.source, r.at) for r in rows] == [
            ("marketing", granted, 1, "widget", datetime(2026, 11, 30, 10, 0, tzinfo=UTC))]


# ---------------------------------------------------------------- offline requests
def offline_url(world: World) -> str:
    return f"/api/v1/widget/{world.site_key}/offline-requests"


async def test_offline_request_when_nobody_is_online(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    assert (await client.get(config_url(world), headers={"Origin": world.origin})).json()["available"] is False
    before = await counts(rt, *WRITTEN)
    response = await client.post(offline_url(world), headers={"Origin": world.origin}, json={
        "fields": {"name": "Ana Visitor", "email": "ana@example.com"}, "consents": {"marketing": False},
        "message": "Please call me back", "department_id": world.department_id,
        "page_url": "https://shop.example/"})
    assert response.status_code == 201, response.text
    assert response.headers[ACAO] == world.origin
    request_id = response.json()["id"]
    after = await counts(rt, *WRITTEN)
    assert after["offline_requests"] == before["offline_requests"] + 1
    assert after["visitors"] == before["visitors"] + 1
    assert after["conversations"] == before["conversations"]
    async with rt.db.unit_of_work(readonly=True) as uow:
        row = await uow.session.get(OfflineRequest, request_id)
        assert row is not None
        assert row.site_id == world.site_id
        assert row.department_id == world.department_id
        assert row.handled_at is None


async def _site_with_optional_contact(rt: Runtime, world: World) -> World:
    async with rt.db.unit_of_work() as uow:
        site = await factories.site(uow, workspace_id=world.workspace_id, name="Loose",
                                    allowed_origins=["https://loose.example"], prechat_fields=[
                                        {"key": "name", "label": "Name", "type": "text"},
                                        {"key": "email", "label": "E-mail", "type": "email"},
                                        {"key": "phone", "label": "Phone", "type": "tel"}])
        dept = await factories.department(uow, workspace_id=world.workspace_id, site_id=site.id)
    return World(world.workspace_id, site.id, site.site_key, "https://loose.example", dept.id, world.admin_id,
                 world.admin_email, world.operator_id, world.operator_email)


async def test_offline_request_needs_an_email_or_a_phone(client: httpx.AsyncClient, rt: Runtime,
                                                         world: World) -> None:
    loose = await _site_with_optional_contact(rt, world)
    before = await counts(rt, *WRITTEN)
    result = await leave_message(client, loose, fields={"name": "Ana"}, expect=422)
    assert result == {"detail": "an e-mail address or a phone number is needed so that we can answer",
                      "code": "invalid"}
    result = await leave_message(client, loose, fields={"name": "Ana", "email": " "}, expect=422)
    assert result["code"] == "invalid"
    assert await counts(rt, *WRITTEN) == before
    await leave_message(client, loose, fields={"name": "Ana", "phone": "+49 30 1234567"})
    await leave_message(client, loose, fields={"email": "ana@example.com"})
    assert (await counts(rt, "offline_requests"))["offline_requests"] == before["offline_requests"] + 2
    # A chat on this site does not need them.
    await set_status(rt, world.operator_id, "online")  # not in this site's department: still offline
    assert (await start_chat(client, loose, {"name": "Ana"}, expect=409))["code"] == "offline"


async def test_invalid_offline_request_writes_nothing(client: httpx.AsyncClient, rt: Runtime,
                                                      world: World) -> None:
    before = await counts(rt, *WRITTEN)
    for body in ({"message": "x" * 4001},  # too long
                 {"message": ""},
                 {},  # no message at all
                 {"message": "hi", "fields": {**OK, "email": "nope"}},
                 {"message": "hi", "fields": {"email": "ana@example.com"}},  # the form still applies
                 {"message": "hi", "consents": {"spam": True}},
                 {"message": "hi", "department_id": "no-such-department"},
                 {"message": "hi", "extra": 1}):
        response = await client.post(offline_url(world), headers={"Origin": world.origin},
                                     json={"fields": OK, **body})
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"]
        assert response.headers[ACAO] == world.origin
    assert await counts(rt, *WRITTEN) == before


async def test_offline_message_of_4000_characters_is_accepted(client: httpx.AsyncClient, world: World) -> None:
    await leave_message(client, world, "y" * 4000)


# ---------------------------------------------------------------- encryption at rest
SECRETS = {
    "name": "Zephyrine Quillfeather",
    "email": "zephyrine.quill@example.org",
    "phone": "+44 20 7946 0958",
    "order": "ORD-XK-7781",
    "page_url": "https://shop.example/pricing?ref=zq-private-path",
    "visitor_message": "My parcel number is PARCEL-99-QUOKKA",
    "operator_message": "Hello there, parcel WOMBAT-42 is on its way",
    "comment": "Brilliant help, thanks NARWHAL-COMMENT",
    "offline_name": "Bartholomew Nightingale",
    "offline_email": "bart.night@example.net",
    "offline_phone": "+49 30 98765432",
    "offline_message": "Call me about invoice INV-55-MARMOT",
    "offline_url": "https://shop.example/contact?id=otter-page",
}

# Distinctive pieces of the values above: not even a part may be stored in clear.
TOKENS = ["Zephyrine", "Quillfeather", "QUOKKA", "WOMBAT", "NARWHAL", "MARMOT", "Bartholomew", "Nightingale",
          "7946 0958", "98765432", "zq-private-path", "otter-page", "XK-7781", "bart.night"]


async def _table_names(rt: Runtime) -> list[str]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        if rt.db.is_sqlite:
            rows = await uow.session.execute(text("select name from sqlite_master where type = 'table'"))
        else:
            rows = await uow.session.execute(text("select tablename from pg_tables where schemaname = 'public'"))
        return sorted(r[0] for r in rows)


async def _scan(rt: Runtime, needles: list[str]) -> tuple[int, list[str]]:
    """Every value of every column of every table, as text and bytes; the needles found."""
    found: list[str] = []
    cells = 0
    for table in await _table_names(rt):
        async with rt.db.unit_of_work(readonly=True) as uow:
            result = await uow.session.execute(text(f'select * from "{table}"'))  # noqa: S608
            columns = list(result.keys())
            for row in result.all():
                for column, value in zip(columns, row, strict=True):
                    cells += 1
                    if value is None:
                        continue
                    raw = bytes(value) if isinstance(value, bytes | bytearray | memoryview) else str(value).encode()
                    raw = raw.lower()
                    for needle in needles:
                        for form in {needle, needle.split("@")[0], needle.replace(" ", "")}:
                            if form.lower().encode() in raw:
                                found.append(f"{table}.{column} holds {form!r}")
    return cells, found


async def test_personal_data_is_encrypted_at_rest_and_erased_with_the_key(
        app: Any, client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    await set_status(rt, world.operator_id)
    started = await start_chat(client, world, {"name": SECRETS["name"], "email": SECRETS["email"],
                                               "phone": SECRETS["phone"], "order": SECRETS["order"]},
                               page_url=SECRETS["page_url"])
    conv_id = started["conversation_id"]
    await accept(rt, world.operator_id, conv_id)
    await say(rt, conv_id, SECRETS["visitor_message"], sender_id=started["visitor_id"])
    await say(rt, conv_id, SECRETS["operator_message"], sender="operator", sender_id=world.operator_id)
    await close(rt, world.operator_id, conv_id)
    await rate(rt, world, started, 5, SECRETS["comment"])
    await set_status(rt, world.operator_id, "offline")
    offline = await leave_message(client, world, SECRETS["offline_message"],
                                  {"name": SECRETS["offline_name"], "email": SECRETS["offline_email"],
                                   "phone": SECRETS["offline_phone"]}, page_url=SECRETS["offline_url"])

    # Everything is there, readable by an authorised operator...
    async with logged_in(app, world.admin_email) as admin:
        transcript = (await admin.get(f"/api/v1/conversations/{conv_id}")).json()
        requests = (await admin.get("/api/v1/offline-requests")).json()["items"]
    assert transcript["visitor"]["name"] == SECRETS["name"]
    assert transcript["visitor"]["page_url"] == SECRETS["page_url"]
    assert transcript["rating_comment"] == SECRETS["comment"]
    texts = [m["text"] for m in transcript["messages"]]
    assert SECRETS["visitor_message"] in texts
    assert SECRETS["operator_message"] in texts
    assert [r["message"] for r in requests] == [SECRETS["offline_message"]]
    assert requests[0]["page_url"] == SECRETS["offline_url"]

    # ...yet no column of any table holds any of it in clear.
    tables = await _table_names(rt)
    assert {"visitors", "conversations", "messages", "conversation_terms", "offline_requests", "subject_keys",
            "visitor_terms"} <= set(tables)
    cells, found = await _scan(rt, [*SECRETS.values(), *TOKENS])
    assert cells > 100
    assert found == []
    # The scanner itself does find a value stored in clear (the operator's e-mail is an account name).
    assert (await _scan(rt, [world.operator_email]))[1]

    # A fresh process (no key cache) reads the data with the master key.
    master = b64d(MASTER_KEY)
    fresh = build_runtime(rt.settings, broker=MemoryBroker())
    try:
        async with fresh.db.unit_of_work(readonly=True) as uow:
            visitor = await uow.session.get(Visitor, started["visitor_id"])
            assert visitor is not None
            assert visitor.name_enc is not None
            ciphertext = visitor.name_enc
            key = await fresh.keyring.get(uow.session, visitor.id)
            assert key.decrypt(ciphertext, f"visitors.name:{visitor.id}") == SECRETS["name"]
            conv = await uow.session.get(Conversation, conv_id)
            assert conv is not None
            assert conv.rating_comment_enc is not None
        # Erasure: destroy the subject key.
        async with rt.db.unit_of_work() as uow:
            await rt.keyring.destroy(uow.session, started["visitor_id"])
        for keyring in (rt.keyring, KeyRing(KeyWrapper(master))):
            async with rt.db.unit_of_work(readonly=True) as uow:
                with pytest.raises(NotFound):
                    await keyring.get(uow.session, started["visitor_id"])
                wrapped = (await uow.session.execute(
                    text("select wrapped_key, destroyed_at from subject_keys where subject_id = :s"),
                    {"s": started["visitor_id"]})).one()
                assert wrapped[0] is None
                assert wrapped[1] is not None
        # The other subject (the offline request) is untouched.
        async with rt.db.unit_of_work(readonly=True) as uow:
            row = await uow.session.get(OfflineRequest, offline["id"])
            assert row is not None
            key = await KeyRing(KeyWrapper(master)).get(uow.session, row.visitor_id)
            assert key.decrypt(row.message_enc, f"offline_requests.message:{row.id}") == SECRETS["offline_message"]
    finally:
        await fresh.close()
