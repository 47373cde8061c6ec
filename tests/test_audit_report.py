"""The Audit Report page: AUDIT_READ only (a denial is itself recorded), filters POSTed with the
ids kept out of URLs, newest first, paged, names looked up at render time, CSV export of the
filtered rows, the chain verified on demand (and found broken after tampering)."""

from __future__ import annotations

import csv
import io
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import text

from confide.audit import service as audit
from confide.core.runtime import Runtime
from tests.conftest import World
from tests.factories import PASSWORD
from tests.test_audit_chain import _tamper

SAME_ORIGIN = {"Origin": "http://testserver"}


async def _log_in(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post("/login", data={"email": email, "password": PASSWORD}, headers=SAME_ORIGIN)
    assert response.status_code == 303, response.text


async def _seed(rt: Runtime, world: World) -> None:
    async with rt.db.unit_of_work() as uow:
        for n in range(3):
            await audit.record(
                rt,
                uow,
                "chats.viewed",
                actor_type="operator",
                actor_id=world.operator_id,
                workspace_id=world.workspace_id,
                target_type="conversation",
                target_id=f"conv{n}",
                detail={"via": "api"},
            )
        await audit.record(
            rt,
            uow,
            "users.updated",
            actor_type="operator",
            actor_id=world.admin_id,
            workspace_id=world.workspace_id,
            target_type="operator",
            target_id=world.operator_id,
            detail={"name": True},
        )
        await audit.record(  # another workspace's row: never shown here
            rt,
            uow,
            "users.updated",
            actor_type="operator",
            actor_id="strangerop",
            workspace_id="otherws",
        )


def _seqs(page: str) -> list[int]:
    """The rows shown, but the log-in path's own (``auth.*``, recorded by the accounts module)."""
    import re

    found = re.findall(r'data-testid="audit-row" data-seq="(\d+)" data-action="([a-z0-9_.]+)"', page)
    return [int(seq) for seq, action in found if not action.startswith("auth.")]


async def _count(rt: Runtime) -> int:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return int(await uow.session.scalar(text("SELECT COUNT(*) FROM audit_events")) or 0)


async def test_only_audit_readers_see_it_and_a_denial_is_recorded(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    await _log_in(client, world.operator_email)
    assert (await client.get("/app/audit")).status_code == 403
    assert (await client.get("/app/audit/export.csv")).status_code == 403
    assert (await client.post("/app/audit/verify", headers=SAME_ORIGIN, data={})).status_code == 403
    async with rt.db.unit_of_work(readonly=True) as uow:
        from sqlalchemy import select

        from confide.audit.models import AuditEvent

        rows = (await uow.session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all()
    assert [(r.action, r.actor_id, r.target_id, r.outcome) for r in rows if not r.action.startswith("auth.")] == [
        ("access.denied", world.operator_id, "audit_report", "denied"),
        ("access.denied", world.operator_id, "audit_export", "denied"),
        ("access.denied", world.operator_id, "audit_verify", "denied"),
    ]


async def test_the_report_filters_pages_and_names_operators(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    await _seed(rt, world)
    await _log_in(client, world.admin_email)
    page = await client.get("/app/audit")
    assert page.status_code == 200
    assert _seqs(page.text) == [4, 3, 2, 1]  # newest first, the other workspace's row left out
    assert "Ada Admin" in page.text  # names from the users service
    assert "Mia" in page.text
    assert "strangerop" not in page.text
    # The filter form: the actor id goes into the sealed q, never into the URL.
    found = await client.post(
        "/app/audit",
        headers=SAME_ORIGIN,
        data={"actor_id": world.operator_id, "action": "chats.viewed", "outcome": "ok"},
    )
    assert found.status_code == 303
    location = found.headers["location"]
    assert world.operator_id not in location
    query = parse_qs(urlsplit(location).query)
    assert set(query) == {"action", "outcome", "q"}
    page = await client.get(location)
    assert _seqs(page.text) == [3, 2, 1]
    page = await client.get(location + "&page=1")
    assert _seqs(page.text) == [3, 2, 1]
    # An id put in the URL by hand is moved out of it.
    moved = await client.get(f"/app/audit?target_id={world.operator_id}")
    assert moved.status_code == 303
    assert world.operator_id not in moved.headers["location"]
    assert _seqs((await client.get(moved.headers["location"])).text) == [4]
    # An action prefix ("area.") and a bad outcome / date.
    assert _seqs((await client.get("/app/audit?action=users.")).text) == [4]
    bad = await client.get("/app/audit?outcome=maybe&date_from=yesterday")
    assert bad.status_code == 422
    assert "Date from: use a date like" in bad.text
    assert "Outcome" in bad.text
    forged = await client.get("/app/audit?q=not-a-sealed-value")
    assert "This search has expired" in forged.text


async def test_csv_export_holds_the_filtered_rows_and_is_recorded(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    await _seed(rt, world)
    await _log_in(client, world.admin_email)
    found = await client.post("/app/audit", headers=SAME_ORIGIN, data={"target_id": world.operator_id})
    query = urlsplit(found.headers["location"]).query
    response = await client.get(f"/app/audit/export.csv?{query}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="confide-audit-')
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:6] == ["seq", "at", "workspace_id", "actor_type", "actor_id", "action"]
    assert [(r[0], r[5], r[8]) for r in rows[1:]] == [("4", "users.updated", world.operator_id)]
    everything = list(csv.reader(io.StringIO((await client.get("/app/audit/export.csv")).text)))
    everything = [r for r in everything[1:] if not r[5].startswith("auth.")]  # the log-in path's own rows
    # the two exports themselves, recorded before their first byte; 5 is another workspace's
    assert [r[0] for r in everything[2:]] == ["4", "3", "2", "1"]
    assert [(r[5], r[4], r[9]) for r in everything[:2]] == [
        ("audit.exported", world.admin_id, "{}"),
        ("audit.exported", world.admin_id, '{"target_id":true}'),
    ]


async def test_the_chain_is_verified_on_demand_and_a_changed_row_named(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    await _seed(rt, world)
    await _log_in(client, world.admin_email)
    page = await client.get("/app/audit")
    assert "Not checked yet" in page.text
    checked = await client.post("/app/audit/verify", headers=SAME_ORIGIN, data={"back": "action=chats.viewed"})
    assert checked.status_code == 200
    assert f"Verified: audit log intact: {await _count(rt) - 1} rows." in checked.text  # -1: audit.verified
    assert _seqs(checked.text) == [3, 2, 1]  # the filtered list kept
    await _tamper(rt, "UPDATE audit_events SET target_id = 'conv9' WHERE seq = 2")
    checked = await client.post("/app/audit/verify", headers=SAME_ORIGIN, data={"back": ""})
    assert "Broken at seq 2: the row&#39;s content does not match its hash." in checked.text


async def test_hostile_filters_never_answer_500_and_never_reach_the_log(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    from tests.test_dashboard_fuzz import _draw, _form

    await _seed(rt, world)
    await _log_in(client, world.admin_email)
    keys = ["actor_id", "action", "target_type", "target_id", "outcome", "date_from", "date_to", "page"]
    for form in _draw(_form(keys)):
        response = await client.post("/app/audit", data=form, headers=SAME_ORIGIN, follow_redirects=True)
        assert response.status_code in (200, 422), (form, response.status_code)
    for params in _draw(_form([*keys, "q"])):
        for path in ("/app/audit", "/app/audit/export.csv"):
            response = await client.get(path, params=params, follow_redirects=True)
            assert response.status_code in (200, 422), (path, params, response.status_code)
        response = await client.post("/app/audit/verify", data={"back": str(params)}, headers=SAME_ORIGIN)
        assert response.status_code in (200, 422), (params, response.status_code)
    # An e-mail address as an actor id: refused with a message, and (as everywhere) never stored.
    found = await client.post("/app/audit", data={"actor_id": "ann@example.com"}, headers=SAME_ORIGIN)
    assert "ann" not in found.headers["location"]
    page = await client.get(found.headers["location"])
    assert page.status_code == 422
    assert "Actor id" in page.text  # the field named in the form's error list
    for raw in ("page=%ff", "q=%00%00", "date_from=%F0%9F", "action=%ED%BF%BF"):
        assert (await client.get(f"/app/audit?{raw}")).status_code < 500
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await audit.verify(rt, uow)).ok
        dump = str((await uow.session.execute(text("SELECT * FROM audit_events"))).all())
    assert "ann@example.com" not in dump
