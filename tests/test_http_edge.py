"""The HTTP edge's shape: routers get their unit of work (and actor) from ``web/api/deps.py``, the
cookie and CSRF rules live in ``web/security.py``, and the dashboard is a package."""

from __future__ import annotations

from pathlib import Path

import httpx

from confide.web import security
from tests.conftest import World
from tests.helpers_api import SELF, login

WEB = Path(__file__).resolve().parent.parent / "src" / "confide" / "web"
# The only units a router still opens itself: the log-in's answer (its steps, argon2 with no unit
# open, are in web/login_flow.py) and the widget's start of a conversation (its per-address limit
# lands there at merge).
ALLOWED_BY_HAND = {"auth.py": 1, "widget.py": 1}


def test_routers_open_no_unit_by_hand() -> None:
    counts = {p.name: p.read_text().count("unit_of_work(") for p in (WEB / "api").glob("*.py") if p.name != "deps.py"}
    assert {name: n for name, n in counts.items() if n} == ALLOWED_BY_HAND


def test_cookie_and_csrf_rules_live_in_security_only() -> None:
    for path in WEB.rglob("*.py"):
        if path.name == "security.py" or "ws" in path.parts:  # the sockets import it at merge
            continue
        source = path.read_text()
        assert '"confide_session"' not in source, path
        assert "Content-Security-Policy\", " not in source, path
    assert (WEB / "dashboard" / "pages").is_dir()
    assert not (WEB / "dashboard" / "routes.py").exists()


def test_same_origin_rule() -> None:
    """Cookie writes and the log-in form must come from our own origin: scheme, host and port."""
    own = "http://testserver"
    assert security.from_own_site({"origin": "http://testserver"}, own)
    assert security.from_own_site({"referer": "http://TestServer/app"}, own)
    assert not security.from_own_site({"origin": "https://testserver"}, own)  # another scheme
    assert not security.from_own_site({"origin": "http://testserver:8080"}, own)  # another port
    assert not security.from_own_site({"origin": "http://testserver.evil"}, own)
    assert not security.from_own_site({}, own)
    assert not security.from_own_site({"origin": "http://[bad"}, own)
    assert security.cookie_write_allowed("POST", {"cookie": "x=1"}, own)  # no session: nothing to abuse
    cookie = "confide_session=t"
    assert not security.cookie_write_allowed("POST", {"cookie": cookie, "origin": "https://testserver"}, own)
    assert security.cookie_write_allowed("POST", {"cookie": cookie, "origin": "http://testserver"}, own)
    assert security.cookie_write_allowed("GET", {"cookie": "confide_session=t"}, own)
    assert security.form_from_own_site({}, own)  # non-browser clients send neither header
    assert not security.form_from_own_site({"origin": "https://evil.example"}, own)


async def test_write_units_commit_and_roll_back_with_the_request(client: httpx.AsyncClient, world: World) -> None:
    assert (await login(client, world.admin_email)).status_code == 200
    body = {"shortcut": "hi", "title": "Hello", "text": "Hello there"}
    assert (await client.post("/api/v1/canned-replies", json=body, headers=SELF)).status_code == 201
    # the second one conflicts or is refused inside the unit: nothing of it may stay
    bad = await client.post("/api/v1/canned-replies", json={**body, "department_id": "nope"}, headers=SELF)
    assert bad.status_code == 404
    listed = (await client.get("/api/v1/canned-replies")).json()
    assert [r["shortcut"] for r in listed] == ["hi"]
    assert (await client.get("/api/v1/auth/me")).json()["id"] == world.admin_id
