"""Sessions (issue 6, points 2 and 8): each user's own list and ending them, administrators ending
anyone's, the cap, idle and absolute timeouts, ``last_seen_at`` without a write per request, the
``__Host-`` cookie over TLS, and CSRF on every state-changing dashboard request (walked from the
route table)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
from fastapi.routing import APIRoute
from sqlalchemy import select, text

from confide.app import create_app
from confide.core import clock
from confide.core.runtime import Runtime
from confide.users.models import OperatorSession
from confide.web.permits import PUBLIC, access_of
from tests.conftest import World
from tests.helpers_api import PASSWORD, SELF, logged_in, login

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")


def client_for(app: Any, user_agent: str | None = None, address: str = "192.0.2.10") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    headers = {"User-Agent": user_agent} if user_agent else {}
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)


async def _sessions(rt: Runtime, operator_id: str) -> list[OperatorSession]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = await uow.session.scalars(select(OperatorSession).where(OperatorSession.operator_id == operator_id)
                                         .order_by(OperatorSession.created_at))
        return list(rows.all())


# ---------------------------------------------------------------- the user's own sessions
async def test_users_see_and_end_their_own_sessions(app: Any, rt: Runtime, world: World) -> None:
    async with client_for(app, FIREFOX) as laptop, client_for(app, CHROME_WIN) as desktop:
        assert (await login(laptop, world.operator_email)).status_code == 200
        assert (await login(desktop, world.operator_email)).status_code == 200
        listed = (await laptop.get("/api/v1/auth/sessions")).json()
        assert [(s["client"], s["method"], s["current"]) for s in listed] == [
            ("Chrome on Windows", "password", False), ("Firefox on Linux", "password", True)]
        assert set(listed[0]) == {"id", "created_at", "last_seen_at", "expires_at", "method", "client", "current"}
        # No address is kept anywhere in the session rows, nor the full User-Agent.
        async with rt.db.unit_of_work(readonly=True) as uow:
            dump = str([tuple(r) for r in await uow.session.execute(text("select * from operator_sessions"))])
        assert "192.0.2" not in dump
        assert "Gecko" not in dump
        assert "X11" not in dump
        page = await laptop.get("/app/account/sessions")
        assert page.status_code == 200
        assert page.text.count('data-testid="session-row"') == 2
        assert "Chrome on Windows" in page.text
        assert "This session" in page.text
        # End the other one from the page.
        other = listed[0]["id"]
        ended = await laptop.post("/app/account/sessions/end", headers=SELF, data={"session_id": other})
        assert (ended.status_code, ended.headers["location"]) == (303, "/app/account/sessions?saved=ended")
        assert (await desktop.get("/api/v1/auth/me")).status_code == 401
        assert (await laptop.get("/api/v1/auth/me")).status_code == 200
        # Ending it twice, or a made-up id, is "not found".
        for bogus in (other, "x" * 32, "", "<script>"):
            again = await laptop.post("/app/account/sessions/end", headers=SELF, data={"session_id": bogus})
            assert again.status_code == 404, bogus
        assert (await laptop.delete(f"/api/v1/auth/sessions/{other}", headers=SELF)).status_code == 404
    rows = await _sessions(rt, world.operator_id)
    assert sorted(r.end_reason or "" for r in rows) == ["", "ended"]


async def test_end_all_other_sessions(app: Any, rt: Runtime, world: World) -> None:
    async with client_for(app) as me, client_for(app) as tablet, client_for(app) as phone:
        for device in (me, tablet, phone):
            assert (await login(device, world.operator_email)).status_code == 200
        response = await me.post("/app/account/sessions/end-others", headers=SELF)
        assert response.status_code == 303
        assert [(await d.get("/api/v1/auth/me")).status_code for d in (me, tablet, phone)] == [200, 401, 401]
    async with rt.db.unit_of_work(readonly=True) as uow:
        ends = (await uow.session.execute(text(
            "select detail from audit_events where action = 'auth.session_end'"))).scalars().all()
    assert ends == ['{"count":2,"own":true}']


async def test_an_operator_cannot_end_someone_elses_session(app: Any, rt: Runtime, world: World) -> None:
    async with logged_in(app, world.admin_email) as admin, logged_in(app, world.operator_email) as operator:
        [admin_session] = (await admin.get("/api/v1/auth/sessions")).json()
        response = await operator.post("/app/account/sessions/end", headers=SELF,
                                       data={"session_id": admin_session["id"]})
        assert response.status_code == 404  # denial looks like absence
        assert (await operator.get(f"/app/account/sessions?operator={world.admin_id}")).status_code == 403
        response = await operator.post("/app/account/sessions/end-others", headers=SELF,
                                       data={"operator": world.admin_id})
        assert response.status_code == 403
        assert (await admin.get("/api/v1/auth/me")).status_code == 200


async def test_an_administrator_ends_anyones_sessions(app: Any, rt: Runtime, world: World) -> None:
    async with logged_in(app, world.admin_email) as admin, logged_in(app, world.operator_email) as operator:
        page = await admin.get(f"/app/account/sessions?operator={world.operator_id}")
        assert page.status_code == 200
        assert "Sessions of Mia" in page.text
        [theirs] = re.findall(r'name="session_id" value="([^"]+)"', page.text)
        response = await admin.post("/app/account/sessions/end", headers=SELF,
                                    data={"session_id": theirs, "operator": world.operator_id})
        assert response.status_code == 303
        assert response.headers["location"] == f"/app/account/sessions?saved=ended&operator={world.operator_id}"
        assert (await operator.get("/api/v1/auth/me")).status_code == 401
        assert (await admin.get("/api/v1/auth/me")).status_code == 200
        assert (await admin.get("/app/account/sessions?operator=unknown-id")).status_code == 404


# ---------------------------------------------------------------- cap, timeouts
async def test_the_cap_ends_the_oldest_session(app: Any, rt: Runtime, world: World) -> None:
    async with logged_in(app, world.admin_email) as admin:
        saved = await admin.post("/app/settings/security/passwords", headers=SELF, data={
            "password_min_length": "12", "password_max_age_days": "0", "session_idle_timeout_min": "30",
            "session_max_per_operator": "2"})
        assert saved.status_code == 303
    devices = [client_for(app) for _ in range(3)]
    try:
        for device in devices:
            assert (await login(device, world.operator_email)).status_code == 200
            clock.advance(timedelta(seconds=1))
        assert [(await d.get("/api/v1/auth/me")).status_code for d in devices] == [401, 200, 200]
    finally:
        for device in devices:
            await device.aclose()
    assert [r.end_reason for r in await _sessions(rt, world.operator_id)] == ["cap", None, None]


async def test_idle_timeout_and_last_seen_without_a_write_per_request(app: Any, rt: Runtime, world: World) -> None:
    idle = rt.settings.session_idle_timeout_s
    async with client_for(app) as http:
        assert (await login(http, world.operator_email)).status_code == 200
        [opened] = await _sessions(rt, world.operator_id)
        clock.advance(timedelta(seconds=30))
        for _ in range(5):  # within a minute of the last write: no new write
            assert (await http.get("/api/v1/auth/me")).status_code == 200
        [same] = await _sessions(rt, world.operator_id)
        assert same.last_seen_at == opened.last_seen_at
        clock.advance(timedelta(seconds=idle - 60))  # used again before the idle timeout ran out
        assert (await http.get("/api/v1/auth/me")).status_code == 200
        [seen] = await _sessions(rt, world.operator_id)
        assert seen.last_seen_at is not None
        assert opened.last_seen_at is not None
        assert seen.last_seen_at > opened.last_seen_at
        clock.advance(timedelta(seconds=idle - 10))
        assert (await http.get("/api/v1/auth/me")).status_code == 200
        clock.advance(timedelta(seconds=idle + 1))  # left alone too long
        assert (await http.get("/api/v1/auth/me")).status_code == 401
        page = await http.get("/app")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login")


# ---------------------------------------------------------------- the cookie
async def test_over_tls_the_cookie_is_host_prefixed_and_secure(rt: Runtime, world: World) -> None:
    rt.settings = rt.settings.model_copy(update={"cookie_secure": True})
    application = create_app(runtime=rt)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            response = await http.post("/api/v1/auth/login", headers={"Origin": "https://testserver"},
                                       json={"email": world.operator_email, "password": PASSWORD})
            assert response.status_code == 200, response.text
            [cookie] = response.headers.get_list("set-cookie")
            name, _, rest = cookie.partition("=")
            assert name == "__Host-confide_session"
            attributes = {part.strip().split("=")[0].lower() for part in rest.split(";")[1:]}
            assert {"secure", "httponly", "path", "samesite"} <= attributes
            assert "domain" not in attributes
            assert "samesite=strict" in cookie.lower()
            token = response.cookies["__Host-confide_session"]
            assert (await http.get("/api/v1/auth/me")).status_code == 200
            # The plain name is not accepted over TLS (it could have been planted over plain HTTP).
            http.cookies.clear()
            http.cookies.set("confide_session", token)
            assert (await http.get("/api/v1/auth/me")).status_code == 401
            http.cookies.clear()
            http.cookies.set("__Host-confide_session", token)
            out = await http.post("/api/v1/auth/logout", headers={"Origin": "https://testserver"})
            assert out.status_code == 204
            [cleared] = out.headers.get_list("set-cookie")
            assert cleared.startswith("__Host-confide_session=")
            assert "secure" in cleared.lower()


# ---------------------------------------------------------------- CSRF on every dashboard POST
def api_routes(routes: Any, prefix: str = "") -> list[tuple[str, APIRoute]]:
    """Every FastAPI route with its full path (included routers are nested in this FastAPI)."""
    out: list[tuple[str, APIRoute]] = []
    for route in routes:
        if hasattr(route, "original_router"):
            out += api_routes(route.original_router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, APIRoute):
            out.append((prefix + route.path, route))
    return out


def _dashboard_posts(app: Any) -> list[str]:
    paths = []
    for path, route in api_routes(app.routes):
        if "POST" in route.methods and not path.startswith("/api/"):
            paths.append(path.replace("{", "").replace("}", ""))  # a made-up id where one is needed
    return sorted(paths)


async def test_every_dashboard_post_refuses_cross_site_requests(app: Any, rt: Runtime, world: World) -> None:
    posts = _dashboard_posts(app)
    assert {"/login", "/logout", "/app/account/password", "/app/account/sessions/end",
            "/app/account/sessions/end-others", "/app/settings/security/passwords"} <= set(posts)
    async with logged_in(app, world.admin_email) as admin:
        before = await _table_counts(rt)
        for path in posts:
            for headers in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/x"}, {}):
                response = await admin.post(path, headers=headers, data={"name": "x", "session_id": "x"})
                assert response.status_code == 403, (path, headers, response.status_code)
        assert await _table_counts(rt) == before  # no side effect, the session is still alive
        assert (await admin.get("/api/v1/auth/me")).status_code == 200
    # The log-in form, without a session, refuses another site's form too.
    async with client_for(app) as anonymous:
        response = await anonymous.post("/login", headers={"Origin": "https://evil.example"},
                                        data={"email": world.admin_email, "password": PASSWORD})
        assert response.status_code == 403
        assert not response.headers.get_list("set-cookie")


async def _table_counts(rt: Runtime) -> dict[str, int]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        out = {}
        for table in ("operators", "sites", "departments", "canned_replies", "account_policies", "audit_events"):
            query = text(f"select count(*) from {table}")  # noqa: S608 - fixed names
            out[table] = int(await uow.session.scalar(query) or 0)
        out["revoked"] = int(await uow.session.scalar(
            text("select count(*) from operator_sessions where revoked_at is not null")) or 0)
        return out


async def test_a_forced_password_change_blocks_every_page_and_call(app: Any, rt: Runtime, world: World) -> None:
    """Walked from the route table: every GET page redirects to the password change and every API
    call answers 403, except the password change and log-out."""
    async with rt.db.unit_of_work() as uow:
        await uow.session.execute(text("update operators set must_change_password = :t where id = :id"),
                                  {"t": True, "id": world.operator_id})
    async with client_for(app) as http:
        assert (await login(http, world.operator_email)).status_code == 200
        pages = calls = 0
        for raw, route in api_routes(app.routes):
            path = raw.replace("{", "").replace("}", "")  # a made-up id where one is needed
            if raw.startswith(("/widget", "/demo", "/openapi", "/api/v1/widget")) or access_of(route) == PUBLIC:
                continue  # open to anyone (the log-in pages, an invitation, single sign-on): no session asked
            if not raw.startswith("/api/"):
                if "GET" not in route.methods:
                    continue
                response = await http.get(path)
                pages += 1
                if raw == "/app/account/password":
                    assert response.status_code == 200
                else:
                    assert (response.status_code, response.headers.get("location")) == (
                        303, "/app/account/password"), raw
            elif raw not in ("/api/v1/auth/password", "/api/v1/auth/logout", "/api/v1/auth/login"):
                method = sorted(route.methods)[0]
                response = await http.request(method, path, headers=SELF, json={})
                calls += 1
                assert response.status_code == 403, (method, raw, response.status_code)
                assert response.json()["detail"] == "you must change your password before you go on"
        assert pages >= 8, pages
        assert calls >= 10, calls
        out = await http.post("/logout", headers=SELF)
        assert out.status_code == 303
