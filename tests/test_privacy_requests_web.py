"""Data-subject requests over HTTP (ADR 0029), on SQLite and PostgreSQL: the public request page end to
end (form, e-mailed code through the real SMTP server, confirmation), the widget's calls, hostile
input (bad type, huge details, script in details, wrong site key, foreign origin, honeypot, too
many from one address), the JSON API with its 409s, the Requests pages, and ``confide requests list``."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text

from confide.config import Settings
from confide.core import clock
from confide.core.runtime import Runtime
from confide.worker.jobs import JobRunner
from tests.cli_helpers import run_cli
from tests.conftest import World
from tests.helpers_api import SELF, logged_in, login, set_status, start_chat
from tests.mailbox import Mailbox

CODE = re.compile(r"enter this code: (\d{6})")
PUBLIC = "http://testserver"


async def _count(rt: Runtime) -> int:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return int((await uow.session.execute(text("select count(*) from privacy_requests"))).scalar_one())


async def _code(rt: Runtime, box: Mailbox) -> str:
    before = len(box.received)
    await JobRunner(rt, node_id="t").drain()
    got = await box.wait_for(before + 1)
    match = CODE.search(got[-1].part("plain"))
    assert match is not None
    return match.group(1)


def _smtp(rt: Runtime, box: Mailbox) -> None:
    rt.settings.smtp_host, rt.settings.smtp_port, rt.settings.smtp_security = "127.0.0.1", box.port, "none"


# ---------------------------------------------------------------- the public page
async def test_public_request_page_end_to_end(rt: Runtime, client: httpx.AsyncClient, world: World) -> None:
    page = await client.get(f"/privacy/request/{world.site_key}")
    assert page.status_code == 200
    assert 'data-testid="public-request-form"' in page.text
    assert "Content-Security-Policy" in page.headers
    async with Mailbox() as box:
        _smtp(rt, box)
        sent = await client.post(f"/privacy/request/{world.site_key}", headers={"Origin": PUBLIC},
                                 data={"type": "erasure", "email": "ana@example.com", "details": "Erase me",
                                       "website": ""})
        assert sent.status_code == 303
        verify = sent.headers["location"]
        assert verify.startswith("/privacy/verify/")
        request_id = verify.rsplit("/", 1)[1]
        code = await _code(rt, box)
        assert "ana@example.com" not in verify
        assert code not in verify
        shown = await client.get(verify)
        assert 'data-testid="public-verify-form"' in shown.text
        assert "ana@example.com" not in shown.text  # the page by id shows nothing personal
        wrong = await client.post(verify, headers={"Origin": PUBLIC}, data={"code": "12345x"})
        assert wrong.status_code == 422
        assert "This code is not right; 4 attempts left." in wrong.text
        right = await client.post(verify, headers={"Origin": PUBLIC}, data={"code": code})
        assert right.status_code == 200
        assert 'data-testid="public-verified"' in right.text
    async with rt.db.unit_of_work(readonly=True) as uow:
        state, channel, verified = (await uow.session.execute(text(
            "select state, channel, verified_at from privacy_requests where id = :i"), {"i": request_id})).one()
        raw = " ".join(str(v) for v in (await uow.session.execute(text(
            "select * from privacy_requests where id = :i"), {"i": request_id})).one())
    assert (state, channel) == ("verifying", "web")
    assert verified is not None
    assert "ana@example.com" not in raw
    assert "Erase me" not in raw


async def test_public_page_refuses_hostile_input(rt: Runtime, client: httpx.AsyncClient, world: World) -> None:
    url = f"/privacy/request/{world.site_key}"
    assert (await client.get("/privacy/request/no-such-site")).status_code == 404
    foreign = await client.post(url, headers={"Origin": "https://evil.example"},
                                data={"type": "access", "email": "a@example.com"})
    assert foreign.status_code == 403
    bad_type = await client.post(url, headers={"Origin": PUBLIC}, data={"type": "everything", "email": "a@example.com"})
    assert bad_type.status_code == 422
    assert "type: choose one of the options." in bad_type.text
    huge = await client.post(url, headers={"Origin": PUBLIC},
                             data={"type": "access", "email": "a@example.com", "details": "x" * 4001})
    assert huge.status_code == 422
    assert "use at most 4000 characters" in huge.text
    bad_email = await client.post(url, headers={"Origin": PUBLIC}, data={"type": "access", "email": "not-an-email"})
    assert bad_email.status_code == 422
    assert "enter a valid e-mail address" in bad_email.text
    robot = await client.post(url, headers={"Origin": PUBLIC},
                              data={"type": "access", "email": "a@example.com", "website": "http://spam.example"})
    assert robot.status_code == 200  # answered like a person, and nothing stored
    assert await _count(rt) == 0
    assert (await client.get("/privacy/verify/nope")).status_code == 404


async def test_requests_per_address_are_limited(rt: Runtime, client: httpx.AsyncClient, world: World) -> None:
    url = f"/privacy/request/{world.site_key}"
    for i in range(rt.settings.privacy_requests_per_address_per_hour):
        made = await client.post(url, headers={"Origin": PUBLIC},
                                 data={"type": "access", "email": f"a{i}@example.com"})
        assert made.status_code == 303
    refused = await client.post(url, headers={"Origin": PUBLIC}, data={"type": "access", "email": "z@example.com"})
    assert refused.status_code == 429
    assert "too many requests were made from your address" in refused.text.lower()
    widget = await client.post(f"/api/v1/widget/{world.site_key}/privacy-requests", headers={"Origin": world.origin},
                               json={"type": "access", "email": "w@example.com"})
    assert widget.status_code == 429  # the widget and the page share the count
    assert await _count(rt) == rt.settings.privacy_requests_per_address_per_hour


# ---------------------------------------------------------------- the widget's calls
async def test_widget_request_and_code(rt: Runtime, client: httpx.AsyncClient, world: World) -> None:
    await set_status(rt, world.operator_id)
    chat = await start_chat(client, world)
    url = f"/api/v1/widget/{world.site_key}/privacy-requests"
    assert (await client.post(url, headers={"Origin": "https://evil.example"},
                              json={"type": "access", "email": "ana@example.com"})).status_code == 403
    bad = await client.post(url, headers={"Origin": world.origin}, json={"type": "all", "email": "ana@example.com"})
    assert bad.status_code == 422
    forged = await client.post(url, headers={"Origin": world.origin},
                               json={"type": "access", "email": "ana@example.com", "token": "forged"})
    assert forged.status_code == 401
    wrong_site = await client.post("/api/v1/widget/nope/privacy-requests", headers={"Origin": world.origin},
                                   json={"type": "access", "email": "ana@example.com"})
    assert wrong_site.status_code == 404
    async with Mailbox() as box:
        _smtp(rt, box)
        made = await client.post(url, headers={"Origin": world.origin}, json={
            "type": "access", "email": "ana@example.com", "details": "<script>alert(1)</script>",
            "token": chat["token"]})
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["state"] == "verifying"
        assert body["channel"] == "widget"
        assert set(body) >= {"id", "due_at"}
        assert "email" not in body
        code = await _code(rt, box)
    verify = f"{url}/{body['id']}/verify"
    wrong = await client.post(verify, headers={"Origin": world.origin}, json={"code": "000000" if code != "000000"
                                                                               else "111111"})
    assert wrong.status_code == 422
    assert wrong.json()["detail"] == "this code is not right; 4 attempts left"
    ok = await client.post(verify, headers={"Origin": world.origin}, json={"code": code})
    assert ok.status_code == 200
    assert ok.json()["verified"] is True
    async with rt.db.unit_of_work(readonly=True) as uow:
        linked = (await uow.session.execute(text(
            "select visitor_id from privacy_request_visitors where request_id = :r"), {"r": body["id"]})).all()
    assert len(linked) == 1  # the token's visitor (who also gave this address): linked once

    # The back office shows the script as text, never as markup.
    await login(client, world.admin_email)
    page = await client.get(f"/app/requests/{body['id']}")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert(1)" not in page.text


async def test_widget_refuses_hostile_input(rt: Runtime, client: httpx.AsyncClient, world: World) -> None:
    url = f"/api/v1/widget/{world.site_key}/privacy-requests"
    origin = {"Origin": world.origin}
    for body, needle in (
        ({"type": "access", "email": "a@example.com", "details": "x" * 4001}, "at most 4000"),
        ({"type": "access", "email": "a@example.com", "details": "bell\x07"}, "control characters"),
        ({"type": "access", "email": "a@example.com\n<b>"}, "valid e-mail"),
        ({"type": "access", "email": "a@example.com", "extra": 1}, "xtra"),
        ({"email": "a@example.com"}, "ield required"),
    ):
        refused = await client.post(url, headers=origin, json=body)
        assert refused.status_code == 422, body
        assert needle in refused.text, (body, refused.text)
    assert (await client.post(url, headers=origin, content=b"{not json",
                              )).status_code in (400, 422)
    assert (await client.post(f"{url}/nope/verify", headers=origin, json={"code": "123456"})).status_code == 404
    assert (await client.post(f"{url}/nope/verify", headers=origin, json={"code": "1" * 21})).status_code == 422
    assert await _count(rt) == 0


# ---------------------------------------------------------------- the JSON API
async def test_api_staff_flow_and_conflicts(rt: Runtime, app: object, client: httpx.AsyncClient,
                                            world: World) -> None:
    clock.freeze(datetime(2027, 1, 31, 10, tzinfo=UTC))
    await login(client, world.admin_email)
    base = "/api/v1/privacy-requests"
    made = await client.post(base, headers=SELF, json={"type": "rectification", "email": "r@example.org",
                                                       "channel": "phone", "details": "My name is misspelt"})
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    assert made.json()["due_at"] == "2027-02-28T10:00:00Z"
    bad = await client.post(base, headers=SELF, json={"type": "rectification", "email": "r@example.org",
                                                      "channel": "widget"})
    assert bad.status_code == 422  # staff enter e-mail, phone, letter or other
    started = await client.post(f"{base}/{rid}/start", headers=SELF)
    assert started.status_code == 409
    assert started.json() == {"detail": "verify the requester's identity first", "code": "conflict"}
    assert (await client.post(f"{base}/{rid}/verify", headers=SELF, json={"reason": " "})).status_code == 422
    assert (await client.post(f"{base}/{rid}/verify", headers=SELF, json={"reason": "Called back"})).status_code == 200
    assert (await client.post(f"{base}/{rid}/start", headers=SELF)).json()["state"] == "in_progress"
    assert (await client.post(f"{base}/{rid}/extend", headers=SELF,
                              json={"months": 3, "reason": "Many systems"})).status_code == 422
    extended = await client.post(f"{base}/{rid}/extend", headers=SELF, json={"months": 2, "reason": "Many systems"})
    assert extended.json()["due_at"] == "2027-04-30T10:00:00Z"
    again = await client.post(f"{base}/{rid}/extend", headers=SELF, json={"months": 1, "reason": "More"})
    assert again.status_code == 409
    assert "two months allowed already" in again.json()["detail"]
    done = await client.post(f"{base}/{rid}/complete", headers=SELF, json={"outcome": "Name corrected",
                                                                          "export_id": "exp1"})
    assert done.json()["state"] == "done"
    assert done.json()["export_id"] == "exp1"
    refused = await client.post(f"{base}/{rid}/refuse", headers=SELF, json={"reason": "late"})
    assert refused.status_code == 409
    assert refused.json()["detail"] == "the request cannot be refused: it is done"

    listed = await client.get(base, params={"state": "done", "type": "rectification"})
    assert [i["id"] for i in listed.json()["items"]] == [rid]
    assert (await client.get(base, params={"state": "nonsense"})).status_code == 422
    assert (await client.get(base, params={"overdue": "true"})).json()["total"] == 0
    detail = (await client.get(f"{base}/{rid}")).json()
    assert [e["kind"] for e in detail["timeline"]] == ["received", "verified", "started", "extended", "done"]
    assert detail["timeline"][3]["note"] == "Many systems"
    assert (await client.get(f"{base}/not-a-request")).status_code == 404

    async with logged_in(app, world.operator_email) as operator:
        denied = await operator.get(base)
        assert denied.status_code == 403
        assert (await operator.get(f"{base}/{rid}")).status_code == 403


# ---------------------------------------------------------------- the Requests pages
async def test_requests_pages(rt: Runtime, client: httpx.AsyncClient, world: World) -> None:
    clock.freeze(datetime(2027, 3, 1, 12, tzinfo=UTC))
    await login(client, world.admin_email)
    made = await client.post("/app/requests/new", headers=SELF, data={
        "type": "access", "channel": "letter", "email": "letter@example.org", "details": "Dated 1 March",
        "received_at": "2027-01-20"})  # a letter received in January, entered late: already overdue
    assert made.status_code == 303
    rid = made.headers["location"].split("/")[-1].split("?")[0]
    page = await client.get(made.headers["location"])
    assert 'data-testid="request-title"' in page.text
    assert "letter@example.org" in page.text
    assert "Request recorded." in page.text
    assert (await client.post("/app/requests/new", headers=SELF,
                              data={"type": "nope", "channel": "letter", "email": "x@example.org"})).status_code == 422

    start = await client.post(f"/app/requests/{rid}/start", headers=SELF)
    assert start.status_code == 409
    assert "Verify the requester&#39;s identity first." in start.text
    assert (await client.post(f"/app/requests/{rid}/verify", headers=SELF,
                              data={"reason": "Signed letter"})).status_code == 303
    assert (await client.post(f"/app/requests/{rid}/start", headers=SELF)).status_code == 303
    listing = await client.post("/app/requests", headers=SELF, data={"overdue": "1", "state": "open"})
    assert listing.status_code == 303
    location = listing.headers["location"]
    assert location in ("/app/requests?state=open&overdue=1", "/app/requests?overdue=1&state=open")
    shown = await client.get(location)
    assert f'data-request-id="{rid}"' in shown.text
    assert 'data-testid="overdue"' in shown.text
    assert "letter@example.org" not in location
    done = await client.post(f"/app/requests/{rid}/complete", headers=SELF, data={"outcome": "Sent by post"})
    assert done.status_code == 303
    assert f'data-request-id="{rid}"' not in (await client.get(location)).text
    bad_filter = await client.get("/app/requests?type=everything")
    assert bad_filter.status_code == 200
    assert "These filters could not be used" in bad_filter.text


# ---------------------------------------------------------------- the CLI
async def test_cli_requests_list(rt: Runtime, settings: Settings, client: httpx.AsyncClient, world: World) -> None:
    empty = await run_cli(settings, "requests", "list")
    assert empty.exit_code == 0
    assert "no requests match" in empty.output
    await login(client, world.admin_email)
    made = await client.post("/api/v1/privacy-requests", headers=SELF, json={
        "type": "objection", "email": "cli@example.org", "channel": "email", "received_at": "2026-10-01T09:00:00Z"})
    assert made.status_code == 201, made.text
    listed = await run_cli(settings, "requests", "list", "--overdue")
    assert listed.exit_code == 0, listed.output
    assert made.json()["id"] in listed.output
    assert "objection" in listed.output
    assert "yes" in listed.output
    assert "cli@example.org" not in listed.output
    assert (await run_cli(settings, "requests", "list", "--state", "done")).output.strip() == "no requests match"
    bad = await run_cli(settings, "requests", "list", "--state", "nonsense")
    assert bad.exit_code == 2
    assert "unknown state" in bad.output


@pytest.mark.parametrize("db_kind", ["sqlite"])
async def test_widget_script_is_served(client: httpx.AsyncClient) -> None:
    js = await client.get("/widget/privacy.js")
    assert js.status_code == 200
    assert "privacy-requests" in js.text
    assert "innerHTML" not in js.text
