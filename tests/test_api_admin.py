"""Configuration API: sites, departments, operators and canned replies; validation, roles, tenants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from confide.core.runtime import Runtime
from tests.conftest import World
from tests.helpers_api import SELF, count, logged_in, login, other_workspace


@pytest.fixture
async def admin(app: Any, world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with logged_in(app, world.admin_email) as http:
        yield http


@pytest.fixture
async def operator(app: Any, world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with logged_in(app, world.operator_email) as http:
        yield http


def detail_text(response: httpx.Response) -> str:
    """The error message(s), whether from a domain error or from request validation."""
    detail = response.json()["detail"]
    if isinstance(detail, list):
        return " | ".join(str(item.get("msg", "")) for item in detail)
    return str(detail)


SITE = {
    "name": "Acme", "allowed_origins": ["https://Acme.example/", "http://localhost:8080"],
    "prechat_fields": [
        {"key": "name", "label": "Your name", "type": "text", "required": True},
        {"key": "email", "label": "E-mail", "type": "email", "required": True},
        {"key": "topic", "label": "Topic", "type": "select", "options": ["Sales", "Support"]},
    ],
    "purposes": [{"key": "marketing", "label": "News", "version": "2026-11-01"}],
    "privacy_policy_url": "https://acme.example/privacy", "greeting": "Hi!", "color": "#ff8800",
    "timezone": "Europe/Vienna", "business_hours": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]]},
}


# ---------------------------------------------------------------- sites
async def test_site_crud(admin: httpx.AsyncClient, client: httpx.AsyncClient, world: World) -> None:
    response = await admin.post("/api/v1/sites", json=SITE, headers=SELF)
    assert response.status_code == 201, response.text
    site = response.json()
    assert site["name"] == "Acme"
    assert site["allowed_origins"] == ["https://acme.example", "http://localhost:8080"]  # normalised
    assert site["timezone"] == "Europe/Vienna"
    assert site["business_hours"] == SITE["business_hours"]
    assert site["purposes"] == SITE["purposes"]
    assert [f["key"] for f in site["prechat_fields"]] == ["name", "email", "topic"]
    assert len(site["site_key"]) >= 20
    listed = (await admin.get("/api/v1/sites")).json()
    assert [s["id"] for s in listed] == [world.site_id, site["id"]]

    patch = {"name": "Acme Inc", "color": "#000000", "greeting": "Hello", "timezone": "UTC",
             "allowed_origins": ["https://www.acme.example"]}
    response = await admin.patch(f"/api/v1/sites/{site['id']}", json=patch, headers=SELF)
    assert response.status_code == 200, response.text
    changed = response.json()
    assert {k: changed[k] for k in patch} == patch
    assert changed["business_hours"] == SITE["business_hours"]  # untouched
    response = await admin.patch(f"/api/v1/sites/{site['id']}", json={"always_open": True}, headers=SELF)
    assert response.json()["business_hours"] is None
    # The widget follows the new configuration.
    config = await client.get(f"/api/v1/widget/{site['site_key']}/config",
                              headers={"Origin": "https://www.acme.example"})
    assert config.status_code == 200
    assert config.json()["site"]["name"] == "Acme Inc"
    assert config.json()["open_now"] is True
    assert (await client.get(f"/api/v1/widget/{site['site_key']}/config",
                             headers={"Origin": "https://acme.example"})).status_code == 403


async def test_site_without_form_gets_the_default_form(admin: httpx.AsyncClient) -> None:
    response = await admin.post("/api/v1/sites", json={"name": "Bare"}, headers=SELF)
    assert response.status_code == 201
    assert [f["key"] for f in response.json()["prechat_fields"]] == ["name", "email", "phone"]


BAD_SITES = [
    ({"allowed_origins": ["acme.example"]}, "is not an origin"),
    ({"allowed_origins": ["https://acme.example/shop"]}, "is not an origin"),
    ({"allowed_origins": ["javascript:alert(1)"]}, "is not an origin"),
    ({"color": "blue"}, "String should match pattern"),
    ({"color": "#12345"}, "String should match pattern"),
    ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone"),
    ({"business_hours": {"mon": [["17:00", "09:00"]]}}, "bad opening span"),
    ({"business_hours": {"mon": [["9:00", "17:00"]]}}, "bad opening span"),
    ({"business_hours": {"mon": [["09:00", "24:00"]]}}, "bad opening span"),
    ({"business_hours": {"mon": [["09:00"]]}}, "bad opening span"),
    ({"business_hours": {"funday": [["09:00", "17:00"]]}}, "unknown day"),
    ({"prechat_fields": [{"key": "name", "label": "A"}, {"key": "name", "label": "B"}]},
     "pre-chat field keys must be unique"),
    ({"prechat_fields": [{"key": "topic", "label": "Topic", "type": "select"}]}, "a select field needs options"),
    ({"prechat_fields": [{"key": "email", "label": "E-mail", "type": "text"}]}, "must have type email"),
    ({"prechat_fields": [{"key": "Bad Key", "label": "X"}]}, "String should match pattern"),
    ({"purposes": [{"key": "ads", "label": "A"}, {"key": "ads", "label": "B"}]}, "purpose keys must be unique"),
    ({"privacy_policy_url": "javascript:alert(1)"}, "must start with http"),
    ({"allowed_origins": [f"https://s{i}.example" for i in range(51)]}, "at most 50 items"),
]


async def test_invalid_new_site_is_refused(admin: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    for change, message in BAD_SITES:
        response = await admin.post("/api/v1/sites", json={**SITE, **change}, headers=SELF)
        assert response.status_code == 422, change
        assert message in detail_text(response), change
    assert await count(rt, "sites") == 1


async def test_invalid_site_change_is_refused(admin: httpx.AsyncClient, world: World) -> None:
    """A change must pass the same rules as a new site, and a refused change changes nothing."""
    before = (await admin.get("/api/v1/sites")).json()
    for change, message in BAD_SITES:
        response = await admin.patch(f"/api/v1/sites/{world.site_id}", json=change, headers=SELF)
        assert response.status_code == 422, (change, response.text)
        assert message in detail_text(response), change
    assert (await admin.get("/api/v1/sites")).json() == before


async def test_unknown_site_key_in_body_is_refused(admin: httpx.AsyncClient, world: World) -> None:
    response = await admin.post("/api/v1/sites", json={**SITE, "site_key": "mine"}, headers=SELF)
    assert response.status_code == 422
    response = await admin.patch(f"/api/v1/sites/{world.site_id}", json={"workspace_id": "x"}, headers=SELF)
    assert response.status_code == 422


# ---------------------------------------------------------------- departments
async def test_department_crud(admin: httpx.AsyncClient, world: World) -> None:
    response = await admin.post("/api/v1/departments", headers=SELF, json={
        "site_id": world.site_id, "name": "Sales", "strategy": "least_busy", "offer_timeout_s": 45})
    assert response.status_code == 201, response.text
    dept = response.json()
    assert dept == {"id": dept["id"], "site_id": world.site_id, "name": "Sales", "strategy": "least_busy",
                    "offer_timeout_s": 45}
    response = await admin.patch(f"/api/v1/departments/{dept['id']}", headers=SELF,
                                 json={"strategy": "manual", "name": "Sales EU"})
    assert response.status_code == 200
    assert response.json()["strategy"] == "manual"
    assert response.json()["name"] == "Sales EU"
    assert response.json()["offer_timeout_s"] == 45
    listed = (await admin.get("/api/v1/departments")).json()
    assert [d["name"] for d in listed] == ["Support", "Sales EU"]


async def test_invalid_department(admin: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    before = (await admin.get("/api/v1/departments")).json()
    for body, status in (({"name": "X", "strategy": "random"}, 422),
                         ({"name": "X", "offer_timeout_s": 1}, 422),
                         ({"name": "X", "offer_timeout_s": 100_000}, 422),
                         ({"name": ""}, 422),
                         ({"name": "X", "site_id": "no-such-site"}, 404)):
        response = await admin.post("/api/v1/departments", json={"site_id": world.site_id, **body},
                                    headers=SELF)
        assert response.status_code == status, (body, response.text)
        assert detail_text(response)
        if status == 422:
            response = await admin.patch(f"/api/v1/departments/{world.department_id}", json=body,
                                         headers=SELF)
            assert response.status_code == 422, body
    assert await count(rt, "departments") == 1
    assert (await admin.get("/api/v1/departments")).json() == before


# ---------------------------------------------------------------- operators
async def test_operator_crud(app: Any, admin: httpx.AsyncClient, client: httpx.AsyncClient, world: World) -> None:
    response = await admin.post("/api/v1/operators", headers=SELF, json={
        "email": "Noah@Shop.Example", "name": "Noah", "password": "twelve chars", "max_chats": 3,
        "department_ids": [world.department_id]})
    assert response.status_code == 201, response.text
    noah = response.json()
    assert noah == {"id": noah["id"], "email": "noah@shop.example", "name": "Noah", "role": "operator",
                    "status": "offline", "max_chats": 3, "disabled": False,
                    "department_ids": [world.department_id]}
    assert (await login(client, "noah@shop.example", "twelve chars")).status_code == 200
    response = await admin.patch(f"/api/v1/operators/{noah['id']}", headers=SELF,
                                 json={"name": "Noah N.", "max_chats": 8, "role": "admin", "department_ids": []})
    assert response.status_code == 200
    assert {k: response.json()[k] for k in ("name", "max_chats", "role", "department_ids")} == {
        "name": "Noah N.", "max_chats": 8, "role": "administrator", "department_ids": []}  # "admin": the old name
    listed = (await admin.get("/api/v1/operators")).json()
    assert [op["email"] for op in listed] == [world.admin_email, world.operator_email, "noah@shop.example"]
    assert all("password" not in str(op) for op in listed)


BAD_OPERATORS: list[tuple[dict[str, Any], int, str]] = [
    ({"password": "eleven char"}, 422, "at least 12 characters"),
    ({"email": "not-an-email"}, 422, "email"),
    ({"email": "MIA@shop.example"}, 409, "an account with this e-mail exists already"),
    ({"role": "owner"}, 422, "choose one of the workspace's roles"),
    ({"max_chats": 0}, 422, "greater than or equal to 1"),
    ({"name": ""}, 422, "at least 1 character"),
    ({"department_ids": ["no-such-department"]}, 404, "department not found"),
    ({"status": "online"}, 422, "Extra inputs are not permitted"),
]


async def test_invalid_operator(admin: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    base = {"email": "noah@shop.example", "name": "Noah", "password": "long enough password"}
    for body, status, message in BAD_OPERATORS:
        response = await admin.post("/api/v1/operators", json={**base, **body}, headers=SELF)
        assert response.status_code == status, (body, response.text)
        assert message in detail_text(response), body
    assert await count(rt, "operators") == 2


async def test_invalid_operator_change(admin: httpx.AsyncClient, world: World) -> None:
    url = f"/api/v1/operators/{world.operator_id}"
    for body, status in (({"password": "short"}, 422), ({"max_chats": -1}, 422), ({"email": "x@y.z"}, 422),
                         ({"department_ids": ["nope"]}, 404)):
        response = await admin.patch(url, json=body, headers=SELF)
        assert response.status_code == status, (body, response.text)
    # An administrator cannot lock themselves out.
    for body in ({"disabled": True}, {"role": "operator"}):
        response = await admin.patch(f"/api/v1/operators/{world.admin_id}", json=body, headers=SELF)
        assert response.status_code == 422
        assert "cannot disable yourself" in response.json()["detail"]
    listed = {op["id"]: op for op in (await admin.get("/api/v1/operators")).json()}
    assert listed[world.operator_id]["department_ids"] == [world.department_id]
    assert listed[world.operator_id]["max_chats"] == 5
    assert listed[world.admin_id]["role"] == "administrator"
    assert listed[world.admin_id]["disabled"] is False


# ---------------------------------------------------------------- canned replies
async def test_canned_reply_crud(admin: httpx.AsyncClient, operator: httpx.AsyncClient, rt: Runtime,
                                 world: World) -> None:
    body = {"shortcut": "hello", "title": "Greeting", "text": "Hello! How can I help?"}
    response = await admin.post("/api/v1/canned-replies", json=body, headers=SELF)
    assert response.status_code == 201, response.text
    hello = response.json()
    assert hello == {"id": hello["id"], **body, "department_id": None}
    # A reply of a department the operator is not in is not shown to them.
    other = (await admin.post("/api/v1/departments", json={"site_id": world.site_id, "name": "Billing"},
                              headers=SELF)).json()
    response = await admin.post("/api/v1/canned-replies", headers=SELF, json={
        "shortcut": "iban", "title": "Bank", "text": "Our IBAN is ...", "department_id": other["id"]})
    assert response.status_code == 201
    response = await admin.post("/api/v1/canned-replies", headers=SELF, json={
        "shortcut": "bye", "title": "Bye", "text": "Bye!", "department_id": world.department_id})
    assert response.status_code == 201
    assert [r["shortcut"] for r in (await admin.get("/api/v1/canned-replies")).json()] == ["bye", "hello", "iban"]
    assert [r["shortcut"] for r in (await operator.get("/api/v1/canned-replies")).json()] == ["bye", "hello"]
    assert (await admin.delete(f"/api/v1/canned-replies/{hello['id']}", headers=SELF)).status_code == 204
    assert (await admin.delete(f"/api/v1/canned-replies/{hello['id']}", headers=SELF)).status_code == 404
    assert [r["shortcut"] for r in (await admin.get("/api/v1/canned-replies")).json()] == ["bye", "iban"]
    assert await count(rt, "canned_replies") == 2


async def test_invalid_canned_reply(admin: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    for body, status in (({"shortcut": "Hello World"}, 422), ({"shortcut": ""}, 422), ({"text": ""}, 422),
                         ({"text": "x" * 4001}, 422), ({"department_id": "nope"}, 404)):
        response = await admin.post("/api/v1/canned-replies", headers=SELF,
                                    json={"shortcut": "hi", "title": "Hi", "text": "Hi!", **body})
        assert response.status_code == status, body
    assert await count(rt, "canned_replies") == 0


# ---------------------------------------------------------------- roles
async def test_plain_operator_cannot_change_configuration(admin: httpx.AsyncClient, operator: httpx.AsyncClient,
                                                          rt: Runtime, world: World) -> None:
    reply = (await admin.post("/api/v1/canned-replies", json={"shortcut": "hi", "title": "Hi", "text": "Hi!"},
                              headers=SELF)).json()
    before = {t: await count(rt, t) for t in ("sites", "departments", "operators", "canned_replies")}
    attempts = [
        ("POST", "/api/v1/sites", {"name": "Mine"}),
        ("PATCH", f"/api/v1/sites/{world.site_id}", {"name": "Mine"}),
        ("POST", "/api/v1/departments", {"site_id": world.site_id, "name": "Mine"}),
        ("PATCH", f"/api/v1/departments/{world.department_id}", {"strategy": "manual"}),
        ("POST", "/api/v1/operators", {"email": "friend@shop.example", "name": "F", "password": "x" * 12}),
        ("PATCH", f"/api/v1/operators/{world.operator_id}", {"role": "admin"}),
        ("PATCH", f"/api/v1/operators/{world.operator_id}", {"max_chats": 100}),
        ("PATCH", f"/api/v1/operators/{world.admin_id}", {"disabled": True}),
        ("POST", "/api/v1/canned-replies", {"shortcut": "x", "title": "x", "text": "x"}),
        ("DELETE", f"/api/v1/canned-replies/{reply['id']}", None),
    ]
    for method, path, body in attempts:
        response = await operator.request(method, path, json=body, headers=SELF)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json() == {"detail": "you do not have permission to do this", "code": "forbidden"}
    assert before == {t: await count(rt, t) for t in before}
    me = (await operator.get("/api/v1/auth/me")).json()
    assert me["role"] == "operator"
    assert me["max_chats"] == 5
    assert (await admin.get("/api/v1/sites")).json()[0]["name"] == "Shop"
    assert (await admin.get("/api/v1/departments")).json()[0]["strategy"] == "round_robin"
    # Reading is allowed, within the operator's departments.
    assert [s["id"] for s in (await operator.get("/api/v1/sites")).json()] == [world.site_id]
    assert [d["id"] for d in (await operator.get("/api/v1/departments")).json()] == [world.department_id]
    assert len((await operator.get("/api/v1/operators")).json()) == 2


async def test_anonymous_gets_401(client: httpx.AsyncClient, world: World) -> None:
    for method, path in (("GET", "/api/v1/sites"), ("POST", "/api/v1/sites"), ("GET", "/api/v1/operators"),
                         ("GET", "/api/v1/departments"), ("GET", "/api/v1/canned-replies")):
        response = await client.request(method, path, json={"name": "x"} if method == "POST" else None)
        assert response.status_code == 401, (method, path)


# ---------------------------------------------------------------- tenants
async def test_another_workspace_is_invisible(app: Any, admin: httpx.AsyncClient, rt: Runtime,
                                              world: World) -> None:
    other = await other_workspace(rt)
    async with logged_in(app, other.admin_email) as theirs:
        reply = (await theirs.post("/api/v1/canned-replies", json={"shortcut": "x", "title": "x", "text": "x"},
                                   headers=SELF)).json()
        foreign_dept = (await theirs.get("/api/v1/departments")).json()[0]["id"]
        assert foreign_dept == other.department_id
    attempts = [
        ("PATCH", f"/api/v1/sites/{other.site_id}", {"name": "Mine now"}, "site not found"),
        ("PATCH", f"/api/v1/departments/{other.department_id}", {"name": "Mine now"}, "department not found"),
        ("POST", "/api/v1/departments", {"site_id": other.site_id, "name": "Mine"}, "site not found"),
        ("PATCH", f"/api/v1/operators/{other.operator_id}", {"disabled": True}, "operator not found"),
        ("PATCH", f"/api/v1/operators/{world.operator_id}", {"department_ids": [other.department_id]},
         "department not found"),
        ("POST", "/api/v1/operators", {"email": "spy@shop.example", "name": "Spy", "password": "x" * 12,
                                       "department_ids": [other.department_id]}, "department not found"),
        ("POST", "/api/v1/canned-replies", {"shortcut": "y", "title": "y", "text": "y",
                                            "department_id": other.department_id}, "department not found"),
        ("DELETE", f"/api/v1/canned-replies/{reply['id']}", None, "canned reply not found"),
    ]
    for method, path, body, message in attempts:
        response = await admin.request(method, path, json=body, headers=SELF)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"detail": message, "code": "not_found"}
    # Lists hold only our own workspace.
    assert [s["id"] for s in (await admin.get("/api/v1/sites")).json()] == [world.site_id]
    assert [d["id"] for d in (await admin.get("/api/v1/departments")).json()] == [world.department_id]
    assert {o["id"] for o in (await admin.get("/api/v1/operators")).json()} == {world.admin_id, world.operator_id}
    assert (await admin.get("/api/v1/canned-replies")).json() == []
    # Their things are unchanged.
    async with logged_in(app, other.admin_email) as theirs:
        assert (await theirs.get("/api/v1/sites")).json()[0]["name"] == "Other"
        assert [r["id"] for r in (await theirs.get("/api/v1/canned-replies")).json()] == [reply["id"]]
        ops = {o["id"]: o for o in (await theirs.get("/api/v1/operators")).json()}
        assert ops[other.operator_id]["disabled"] is False
    # E-mail addresses are unique across the server: the other workspace's e-mail cannot be reused.
    response = await admin.post("/api/v1/operators", headers=SELF, json={
        "email": other.operator_email, "name": "Twin", "password": "x" * 12})
    assert response.status_code == 409


async def test_a_nul_character_in_text_is_an_answer_not_a_crash(admin: httpx.AsyncClient, db_kind: str) -> None:
    """PostgreSQL refuses NUL in text: the unit of work turns it into a 422 and writes nothing
    (SQLite stores the text as it is). Found by the API fuzzing."""
    before = (await admin.get("/api/v1/canned-replies")).json()
    response = await admin.post(
        "/api/v1/canned-replies", headers=SELF, json={"shortcut": "nul", "title": "a\x00b", "text": "Text"}
    )
    if db_kind == "postgresql":
        assert response.status_code == 422, response.text
        assert response.json()["detail"] == "text must not contain NUL characters"
        assert (await admin.get("/api/v1/canned-replies")).json() == before
    else:
        assert response.status_code == 201, response.text
