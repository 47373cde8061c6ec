"""Login limits, enforced (on SQLite and PostgreSQL): at log-in (directly and through a trusted
proxy), on each request of a session, on open console sockets at a window's end, and the Settings
page that edits them. Addresses come from the in-process client's peer (``ASGITransport(client=…)``)
or, for sockets, the real loopback peer of a real uvicorn."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from websockets.exceptions import InvalidStatus

from confide.audit import service as audit
from confide.audit.models import AuditEvent
from confide.config import Settings
from confide.core import clock
from confide.core.errors import Invalid, NotFound
from confide.core.runtime import Runtime
from confide.login_limits import service as login_limits
from confide.login_limits.models import LoginLimit
from confide.login_limits.schemas import LoginLimitsIn
from confide.users import sessions as user_sessions
from tests import wsclient as wc
from tests.conftest import Live, World
from tests.factories import PASSWORD

PROXY = "10.0.0.5"  # inside CONFIDE_TRUSTED_PROXIES below
OFFICE = "192.0.2.10"  # inside the operator role's allowed networks
HOME = "203.0.113.7"  # outside
PAGE = "/app/settings/security/login-limits"


@pytest.fixture
async def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"trusted_proxies": ["10.0.0.0/8", "fd00::/8"], "login_limits_check_s": 0.2})


def client_from(app: Any, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers={"Origin": "http://testserver"})


async def limit(rt: Runtime, world: World, subject_type: str, subject_id: str, **data: Any) -> None:
    async with rt.db.unit_of_work() as uow:
        admin = await user_sessions.actor_for(uow, world.admin_id)
        await login_limits.set_limits(rt, uow, admin, subject_type, subject_id, LoginLimitsIn.model_validate(data),
                                      address=None)


async def login(app: Any, address: str, email: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with client_from(app, address) as http:
        return await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD},
                               headers=headers or {})


async def me(app: Any, address: str, cookie: str) -> httpx.Response:
    async with client_from(app, address) as http:
        return await http.get("/api/v1/auth/me", headers={"Cookie": f"confide_session={cookie}"})


async def events(rt: Runtime, action: str) -> list[AuditEvent]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = await uow.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq))
        return list(rows.all())


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def lisbon_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---------------------------------------------------------------- at log-in
async def test_login_refused_outside_the_range_directly_and_through_a_trusted_proxy(
    app: Any, rt: Runtime, world: World
) -> None:
    await limit(rt, world, "role", "operator", ranges=["192.0.2.0/24", "2001:db8::/32"])
    assert (await login(app, OFFICE, world.operator_email)).status_code == 200
    assert (await login(app, "2001:db8::5", world.operator_email)).status_code == 200
    refused = await login(app, HOME, world.operator_email)
    assert refused.status_code == 403
    assert refused.json() == {"detail": "log-in is not allowed from this network", "code": "forbidden"}
    assert "set-cookie" not in refused.headers
    # A client that writes X-Forwarded-For itself is not a proxy: its header is ignored.
    spoofed = await login(app, HOME, world.operator_email, {"X-Forwarded-For": OFFICE})
    assert spoofed.status_code == 403
    # Through the trusted proxy: the address it forwards is the client's.
    assert (await login(app, PROXY, world.operator_email, {"X-Forwarded-For": OFFICE})).status_code == 200
    behind = await login(app, PROXY, world.operator_email, {"X-Forwarded-For": HOME})
    assert behind.status_code == 403
    # The client put the office address first; the proxy appended the real one: the real one counts.
    chained = await login(app, PROXY, world.operator_email, {"X-Forwarded-For": f"{OFFICE}, {HOME}"})
    assert chained.status_code == 403
    # The proxy itself is not in the operator's networks either.
    assert (await login(app, PROXY, world.operator_email)).status_code == 403
    # Other roles are not limited by the operator role's networks.
    assert (await login(app, HOME, world.admin_email)).status_code == 200

    denied = [e for e in await events(rt, "auth.login") if e.outcome == "denied"]
    assert len(denied) == 5
    assert all(e.actor_id == world.operator_id and e.target_id == world.operator_id for e in denied)
    assert {json.loads(e.detail)["reason"] for e in denied} == {"login_limits_network"}
    assert json.loads(denied[0].detail)["method"] == "password"
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await audit.verify(rt, uow)).ok


async def test_dashboard_login_page_says_why(app: Any, rt: Runtime, world: World) -> None:
    await limit(rt, world, "operator", world.operator_id, ranges=["192.0.2.0/24"])
    async with client_from(app, HOME) as http:
        page = await http.post("/login", data={"email": world.operator_email, "password": PASSWORD})
    assert page.status_code == 403
    assert "Log-in is not allowed from this network." in page.text
    assert "set-cookie" not in page.headers


async def test_time_windows_at_login_with_the_clock_moved_across_lisbon_spring_change(
    app: Any, rt: Runtime, world: World
) -> None:
    await limit(rt, world, "role", "operator", timezone="Europe/Lisbon",
                windows=[{"days": ["sun"], "start": "09:00", "end": "17:00"}])
    clock.freeze(lisbon_time("2026-03-29T07:59:59"))  # 08:59:59 WEST: clocks went forward at 01:00 UTC
    early = await login(app, OFFICE, world.operator_email)
    assert early.status_code == 403
    assert early.json()["detail"] == "log-in is not allowed at this time"
    clock.freeze(lisbon_time("2026-03-29T08:00"))  # 09:00 WEST (08:00 UTC would be 08:00 a week before)
    assert (await login(app, OFFICE, world.operator_email)).status_code == 200
    clock.freeze(lisbon_time("2026-03-22T08:30"))  # the Sunday before, in winter time: 08:30 local
    assert (await login(app, OFFICE, world.operator_email)).status_code == 403
    reasons = [json.loads(e.detail)["reason"] for e in await events(rt, "auth.login") if e.outcome == "denied"]
    assert reasons == ["login_limits_time", "login_limits_time"]


async def test_role_and_own_limits_must_both_be_met(app: Any, rt: Runtime, world: World) -> None:
    await limit(rt, world, "role", "operator", ranges=["192.0.2.0/24"])
    await limit(rt, world, "operator", world.operator_id, ranges=["192.0.2.128/25"])
    assert (await login(app, "192.0.2.200", world.operator_email)).status_code == 200
    assert (await login(app, OFFICE, world.operator_email)).status_code == 403  # in the role's, not in hers
    await limit(rt, world, "operator", world.operator_id)  # nothing: her own limits go
    assert (await login(app, OFFICE, world.operator_email)).status_code == 200
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = list((await uow.session.scalars(select(LoginLimit))).all())
    assert [(r.subject_type, r.subject_id) for r in rows] == [("role", "operator")]
    assert [e.action for e in await events(rt, "login_limits.cleared")] == ["login_limits.cleared"]


# ---------------------------------------------------------------- during the session
async def test_a_session_used_from_outside_the_range_is_revoked(app: Any, rt: Runtime, world: World) -> None:
    await limit(rt, world, "role", "operator", ranges=["192.0.2.0/24"])
    cookie = (await login(app, OFFICE, world.operator_email)).cookies["confide_session"]
    assert (await me(app, OFFICE, cookie)).status_code == 200
    stolen = await me(app, HOME, cookie)
    assert stolen.status_code == 401
    assert stolen.json()["detail"] == "log-in is not allowed from this network"

    async def revoked() -> bool:
        return bool(await events(rt, "auth.session_revoked"))

    await wait_for(revoked)
    assert (await me(app, OFFICE, cookie)).status_code == 401  # the session is over, everywhere
    [event] = await events(rt, "auth.session_revoked")
    assert event.actor_type == "system"
    assert event.target_type == "operator_session"
    assert json.loads(event.detail) == {"reason": "login_limits", "limit": "network", "operator_id": world.operator_id}
    async with client_from(app, HOME) as http:  # a page: back to the log-in form
        page = await http.get("/app/chats", headers={"Cookie": f"confide_session={cookie}"})
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")


async def test_a_session_ends_with_its_window(app: Any, rt: Runtime, world: World) -> None:
    await limit(rt, world, "operator", world.operator_id, timezone="Europe/Lisbon",
                windows=[{"days": ["sat"], "start": "22:00", "end": "06:00", "overnight": True}])
    clock.freeze(lisbon_time("2026-10-25T05:50"))  # 05:50 WET, the night clocks went back (inside the idle timeout)
    cookie = (await login(app, OFFICE, world.operator_email)).cookies["confide_session"]
    assert (await me(app, OFFICE, cookie)).status_code == 200
    clock.freeze(lisbon_time("2026-10-25T06:00"))
    late = await me(app, OFFICE, cookie)
    assert late.status_code == 401
    assert late.json()["detail"] == "log-in is not allowed at this time"

    async def revoked() -> bool:
        return bool(await events(rt, "auth.session_revoked"))

    await wait_for(revoked)
    clock.freeze(lisbon_time("2026-10-31T22:30"))  # next Saturday night: a new log-in works, the old session not
    assert (await me(app, OFFICE, cookie)).status_code == 401
    assert (await login(app, OFFICE, world.operator_email)).status_code == 200


# ---------------------------------------------------------------- open sockets
@pytest.fixture
async def _sockets(live: Live) -> AsyncIterator[None]:
    yield
    await wc.close_all()


@pytest.mark.usefixtures("_sockets")
async def test_a_live_console_socket_is_closed_at_the_window_boundary(rt: Runtime, world: World, live: Live) -> None:
    await limit(rt, world, "role", "operator", timezone="Europe/Lisbon",
                windows=[{"days": ["sun"], "start": "09:00", "end": "17:00"}])
    clock.freeze(lisbon_time("2026-03-29T15:59:00"))  # 16:59 WEST
    ws, _, cookie = await wc.operator_connect(live=live, email=world.operator_email)
    await asyncio.sleep(0.6)  # three checks pass inside the window: the socket stays
    assert await wc.frames_until_pong(ws=ws) is not None
    clock.freeze(lisbon_time("2026-03-29T16:00:00"))  # 17:00 WEST: the window ends
    started = asyncio.get_running_loop().time()
    code, _ = await wc.expect_close(ws=ws, timeout=3)
    assert code == 4403
    assert asyncio.get_running_loop().time() - started < 2.5  # a check interval (0.2 s) and the revocation
    response = await wc.console_request(live=live, cookie=cookie, method="GET", path="/api/v1/auth/me")
    assert response.status_code == 401
    [event] = await events(rt, "auth.session_revoked")
    assert json.loads(event.detail)["limit"] == "time"


@pytest.mark.usefixtures("_sockets")
async def test_a_console_socket_from_outside_the_range_is_refused_and_an_open_one_closed(
    rt: Runtime, world: World, live: Live
) -> None:
    # The live server's peer is 127.0.0.1 (not a trusted proxy here).
    ws, _, _ = await wc.operator_connect(live=live, email=world.operator_email)
    cookie = await wc.login(live=live, email=world.operator_email)
    await limit(rt, world, "role", "operator", ranges=["192.0.2.0/24"])
    with pytest.raises(InvalidStatus) as refused:  # refused before the upgrade: nothing is sent
        await wc.operator_socket(live=live, cookie=cookie)
    assert refused.value.response.status_code == 403
    code, _ = await wc.expect_close(ws=ws, timeout=3)  # the open one, at its next check
    assert code == 4403
    assert len(await events(rt, "auth.session_revoked")) == 2


# ---------------------------------------------------------------- the service's rules
async def test_set_limits_checks_subject_permission_and_self_lock_out(rt: Runtime, world: World) -> None:
    async with rt.db.unit_of_work() as uow:
        admin = await user_sessions.actor_for(uow, world.admin_id)
        operator = await user_sessions.actor_for(uow, world.operator_id)
        with pytest.raises(NotFound):
            await login_limits.set_limits(rt, uow, admin, "role", "wizard", LoginLimitsIn(), address=None)
        with pytest.raises(NotFound):
            await login_limits.set_limits(rt, uow, admin, "operator", "x" * 32, LoginLimitsIn(), address=None)
        with pytest.raises(NotFound):
            await login_limits.set_limits(rt, uow, admin, "team", "operator", LoginLimitsIn(), address=None)
        with pytest.raises(Exception, match="permission"):
            await login_limits.set_limits(rt, uow, operator, "role", "operator", LoginLimitsIn(), address=None)
        with pytest.raises(Invalid, match="your current address"):
            await login_limits.set_limits(rt, uow, admin, "role", "administrator",
                                          LoginLimitsIn(ranges=["192.0.2.0/24"]), address=HOME)
        clock.freeze(lisbon_time("2026-03-23T12:00"))  # a Monday
        tuesdays = LoginLimitsIn.model_validate({"windows": [{"days": ["tue"], "start": "09:00", "end": "17:00"}]})
        with pytest.raises(Invalid, match="time windows"):
            await login_limits.set_limits(rt, uow, admin, "operator", world.admin_id, tuesdays, address=OFFICE)
        await login_limits.set_limits(rt, uow, admin, "operator", world.operator_id, tuesdays, address=OFFICE)
        await login_limits.set_limits(rt, uow, admin, "role", "administrator",
                                      LoginLimitsIn(ranges=["192.0.2.0/24"]), address=OFFICE)


async def test_another_workspace_cannot_see_or_set_our_limits(rt: Runtime, world: World) -> None:
    from tests import factories

    async with rt.db.unit_of_work() as uow:
        other_ws = await factories.workspace(uow, name="Other")
        other = await factories.operator(rt, uow, workspace_id=other_ws.id, email="eve@other.example", role="admin")
    await limit(rt, world, "operator", world.operator_id, ranges=["192.0.2.0/24"])
    async with rt.db.unit_of_work() as uow:
        eve = await user_sessions.actor_for(uow, other.id)
        with pytest.raises(NotFound):
            await login_limits.set_limits(rt, uow, eve, "operator", world.operator_id, LoginLimitsIn(), address=None)
        view = await login_limits.overview(uow, eve)
    assert [o["id"] for o in view["operators"]] == [other.id]
    assert not any(r["limited"] for r in view["roles"])
    # Eve's role limits are hers alone: ours are untouched.
    async with rt.db.unit_of_work() as uow:
        await login_limits.set_limits(rt, uow, eve, "role", "operator", LoginLimitsIn(ranges=["198.51.100.0/24"]),
                                      address=None)
    async with rt.db.unit_of_work(readonly=True) as uow:
        mia = await user_sessions.actor_for(uow, world.operator_id)
        assert await login_limits.session_denial(uow, mia, OFFICE, clock.now()) is None


async def test_concurrent_saves_of_one_subject_leave_one_row(rt: Runtime, world: World) -> None:
    async def save(net: str) -> None:
        await limit(rt, world, "role", "supervisor", ranges=[net])

    await asyncio.gather(*(save(f"192.0.2.{i * 16}/28") for i in range(6)))
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = list((await uow.session.scalars(select(LoginLimit))).all())
    assert len(rows) == 1
    assert rows[0].subject_id == "supervisor"
    assert len(await events(rt, "login_limits.updated")) == 6


# ---------------------------------------------------------------- the Settings page
async def _page_login(http: httpx.AsyncClient, email: str) -> None:
    response = await http.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 303, response.text


async def test_settings_page_saves_and_explains_bad_input(app: Any, rt: Runtime, world: World) -> None:
    async with client_from(app, OFFICE) as http:
        await _page_login(http, world.admin_email)
        page = await http.get(PAGE)
        assert page.status_code == 200
        assert "Login limits" in page.text
        assert 'data-testid="my-address">192.0.2.10<' in page.text
        assert page.text.count('data-testid="limits-card"') == 5 + 2  # five roles, two operators
        action = f"{PAGE}/role/operator"
        saved = await http.post(action, data={
            "ranges": "192.0.2.0/24\n2001:db8::/32", "timezone": "Europe/Lisbon", "w-count": "2",
            "w-0-days": ["mon", "tue", "wed", "thu", "fri"], "w-0-start": "08:00", "w-0-end": "18:30",
            "w-1-days": [], "w-1-start": "", "w-1-end": ""})
        assert saved.status_code == 303, saved.text
        assert saved.headers["location"] == f"{PAGE}?saved=1#role-operator"
        shown = await http.get(PAGE + "?saved=1")
        assert "Login limits saved." in shown.text
        assert "2 networks · 1 time window (Europe/Lisbon)" in shown.text

        bad_cases = [
            ({"ranges": "10.0.0.0/33"}, "is not an IP address or CIDR range"),
            ({"ranges": "10.1.2.3/8"}, "did you mean 10.0.0.0/8?"),
            ({"timezone": "Mars/Olympus"}, "Time zone: unknown time zone"),
            ({"w-count": "1", "w-0-days": ["mon"], "w-0-start": "17:00", "w-0-end": "09:00"},
             "Window 1: the end (09:00) is not after the start (17:00)"),
            ({"w-count": "1", "w-0-days": [], "w-0-start": "09:00", "w-0-end": "17:00"},
             "Window 1: choose at least one day"),
            ({"w-count": "1", "w-0-days": ["mon"], "w-0-start": "nine", "w-0-end": "17:00"},
             "is not a time like 09:00"),
            ({"w-count": "1", "w-0-days": ["moonday"], "w-0-start": "09:00", "w-0-end": "17:00"}, "unknown day"),
        ]
        for form, message in bad_cases:
            bad = await http.post(action, data={"ranges": "", "timezone": "UTC", **form})
            assert bad.status_code == 422, (form, bad.status_code)
            assert message.replace("“", "").replace("”", "") in bad.text.replace("“", "").replace("”", ""), form
            assert "Not saved" in bad.text
        lockout = await http.post(f"{PAGE}/role/administrator", data={"ranges": "198.51.100.0/24", "timezone": "UTC"})
        assert lockout.status_code == 422
        assert "would end your own session" in lockout.text
        assert (await http.post(f"{PAGE}/role/wizard", data={"ranges": ""})).status_code == 404
        assert (await http.post(f"{PAGE}/operator/{'a' * 32}", data={"ranges": ""})).status_code == 404
    async with rt.db.unit_of_work(readonly=True) as uow:  # nothing half-written by the refused forms
        rows = list((await uow.session.scalars(select(LoginLimit))).all())
    assert [(r.subject_id, r.ranges, r.timezone) for r in rows] == [
        ("operator", ["192.0.2.0/24", "2001:db8::/32"], "Europe/Lisbon")
    ]
    assert rows[0].windows == [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:30",
                                "overnight": False}]
    [event] = await events(rt, "login_limits.updated")
    assert event.actor_id == world.admin_id
    assert event.target_type == "role"
    assert event.target_id == "operator"
    assert json.loads(event.detail) == {"ranges": 2, "windows": 1, "timezone": "Europe/Lisbon"}


async def test_settings_page_is_for_those_who_may_manage_settings(app: Any, world: World) -> None:
    async with client_from(app, OFFICE) as http:
        await _page_login(http, world.operator_email)
        assert (await http.get(PAGE)).status_code == 403
        refused = await http.post(f"{PAGE}/role/operator", data={"ranges": ""})
        assert refused.status_code == 403
    async with client_from(app, OFFICE) as http:  # no session: to the log-in page
        response = await http.get(PAGE)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login")


async def test_hostile_form_input_is_a_4xx(app: Any, world: World) -> None:
    async with client_from(app, OFFICE) as http:
        await _page_login(http, world.admin_email)
        for form in (
            {"ranges": "\x00" * 10},
            {"ranges": ",".join(f"10.{i}.0.0/16" for i in range(60))},
            {"w-count": "99999", "w-0-days": ["mon"], "w-0-start": "09:00", "w-0-end": "10:00"},
            {"w-count": "-3"},
            {"timezone": "Europe/Lisbon" * 10},
            {"w-count": "1", "w-0-days": ["mon"] * 50, "w-0-start": "09:00", "w-0-end": "23:59:59"},
            {"w-count": "1", "w-0-days": ["mon"], "w-0-start": "09:00", "w-0-end": "24:01"},
        ):
            response = await http.post(f"{PAGE}/role/supervisor", data=form)
            assert response.status_code in (303, 422), (form, response.status_code)
        bad_path = await http.post(f"{PAGE}/role/{'x' * 500}", data={})
        assert bad_path.status_code == 404


def test_settings_are_defined() -> None:
    assert Settings().login_limits_check_s <= 30  # "within a minute"
    assert timedelta(seconds=Settings().login_limits_check_s) < timedelta(minutes=1)


# ---------------------------------------------------------------- over real HTTP, with `confide serve`'s options
@pytest.fixture
async def served(rt: Runtime) -> AsyncIterator[str]:
    """The app behind uvicorn with exactly ``confide serve``'s options (``proxy_headers=False``)."""
    import uvicorn

    from confide.app import create_app
    from confide.cli.main import server_options
    from tests.conftest import free_port

    options = server_options(rt.settings) | {"port": free_port(), "log_level": "warning"}
    options.pop("loop")
    server = uvicorn.Server(uvicorn.Config(create_app(runtime=rt), lifespan="on", **options))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{options['port']}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_forwarded_for_over_real_http_only_from_a_trusted_proxy(
    rt: Runtime, world: World, served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await limit(rt, world, "role", "operator", ranges=["192.0.2.0/24"])

    async def attempt(forwarded: str) -> int:
        async with httpx.AsyncClient(base_url=served, trust_env=False) as http:
            response = await http.post("/api/v1/auth/login", headers={"X-Forwarded-For": forwarded},
                                       json={"email": world.operator_email, "password": PASSWORD})
        return response.status_code

    # 127.0.0.1 is not a trusted proxy here: uvicorn does not rewrite the peer, nor does Confide.
    assert await attempt(OFFICE) == 403
    monkeypatch.setattr(rt.settings, "trusted_proxies", ["127.0.0.1/32"])
    monkeypatch.setattr(rt.settings, "trusted_proxy_networks", (ipaddress.ip_network("127.0.0.1/32"),))
    assert await attempt(OFFICE) == 200  # now the loopback proxy's header counts
    assert await attempt(f"{OFFICE}, {HOME}") == 403  # ... read from the right
