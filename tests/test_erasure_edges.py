"""Erasure through its edges: the JSON API (preview, typed confirmation, certificate as JSON and as
a download, denial), the back-office flow, the CLI (dry run, erase, bad input) and bulk erasure by
filter in batches (progress, idempotent when run again)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from confide.config import Settings
from confide.core import clock
from confide.core.runtime import Runtime
from confide.erasure import bulk, stats
from confide.erasure.models import Certificate
from tests.cli_helpers import run_cli
from tests.conftest import World
from tests.helpers_api import SELF, count, logged_in, set_status, start_chat


async def _person(rt: Runtime, client: httpx.AsyncClient, world: World, name: str) -> dict[str, Any]:
    await set_status(rt, world.operator_id)
    return await start_chat(client, world, {"name": name, "email": f"{name.lower()}@example.com"})


async def test_the_api_previews_erases_with_a_typed_confirmation_and_gives_the_certificate(
    rt: Runtime, app: Any, client: httpx.AsyncClient, world: World
) -> None:
    ana = await _person(rt, client, world, "Ana")
    async with logged_in(app, world.operator_email) as operator:
        denied = await operator.post("/api/v1/subjects/erase/preview", json={"visitor_ids": [ana["visitor_id"]]},
                                     headers=SELF)
        assert denied.status_code == 403
    async with logged_in(app, world.admin_email) as admin:
        preview = await admin.post("/api/v1/subjects/erase/preview", json={"visitor_ids": [ana["visitor_id"]]},
                                   headers=SELF)
        assert preview.status_code == 200, preview.text
        assert preview.json()["tables"]["visitors"] == 1
        unconfirmed = await admin.post("/api/v1/subjects/erase", json={"visitor_ids": [ana["visitor_id"]],
                                                                       "confirm": "yes"}, headers=SELF)
        assert unconfirmed.status_code == 422
        assert await count(rt, "visitors") == 1
        missing = await admin.post("/api/v1/subjects/erase", json={"visitor_ids": ["nobody"], "confirm": "ERASE"},
                                   headers=SELF)
        assert missing.status_code == 404
        done = await admin.post("/api/v1/subjects/erase", json={"visitor_ids": [ana["visitor_id"]],
                                                                "confirm": "ERASE", "request_id": "R-7"},
                                headers=SELF)
        assert done.status_code == 201, done.text
        cert = done.json()
        assert cert["rows"] == preview.json()["tables"]
        assert cert["request_id"] == "R-7"
        assert cert["erased_by"] == {"type": "operator", "id": world.admin_id}
        got = await admin.get(f"/api/v1/subjects/erasures/{cert['id']}?download=1")
        assert got.status_code == 200
        assert "attachment" in got.headers["content-disposition"]
        assert got.json()["id"] == cert["id"]
        page = await admin.get(f"/app/subjects/erasures/{cert['id']}")
        assert page.status_code == 200
        assert cert["id"] in page.text
    assert await count(rt, "visitors") == 0


async def test_the_back_office_flow_previews_then_erases_on_the_typed_word(
    rt: Runtime, app: Any, client: httpx.AsyncClient, world: World
) -> None:
    ana = await _person(rt, client, world, "Ana")
    async with logged_in(app, world.admin_email) as admin:
        page = await admin.get(f"/app/subjects/erase?visitor={ana['visitor_id']}")
        assert page.status_code == 200
        assert 'data-testid="erase-count"' in page.text
        wrong = await admin.post("/app/subjects/erase", data={"visitor": ana["visitor_id"], "confirm": "erase"},
                                 headers=SELF)
        assert wrong.status_code == 422
        done = await admin.post("/app/subjects/erase", data={"visitor": ana["visitor_id"], "confirm": "ERASE"},
                                headers=SELF)
        assert done.status_code == 303
        assert done.headers["location"].startswith("/app/subjects/erasures/")
    assert await count(rt, "visitors") == 0


async def test_the_cli_dry_run_changes_nothing_then_erases(
    rt: Runtime, client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    ana = await _person(rt, client, world, "Ana")
    dry = await run_cli(settings, "subject", "erase", "--workspace", world.workspace_id, "--visitor",
                        ana["visitor_id"], "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "visitors" in dry.output
    assert await count(rt, "visitors") == 1
    refused = await run_cli(settings, "subject", "erase", "--workspace", world.workspace_id, "--visitor",
                            ana["visitor_id"], stdin="n\n")
    assert refused.exit_code == 1
    assert await count(rt, "visitors") == 1
    bad = await run_cli(settings, "subject", "erase", "--workspace", world.workspace_id, "--visitor", "x" * 80)
    assert bad.exit_code == 2
    missing = await run_cli(settings, "subject", "erase", "--workspace", world.workspace_id, "--visitor", "nobody",
                            "--yes")
    assert missing.exit_code == 1
    assert "visitor not found" in missing.output
    done = await run_cli(settings, "subject", "erase", "--workspace", world.workspace_id, "--visitor",
                         ana["visitor_id"], "--yes", "--request", "REQ-9")
    assert done.exit_code == 0, done.output
    assert '"request_id": "REQ-9"' in done.output
    assert await count(rt, "visitors") == 0


async def test_bulk_erasure_goes_in_batches_keeps_recent_visitors_and_can_run_again(
    rt: Runtime, client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    old = [await _person(rt, client, world, f"Old{i}") for i in range(5)]
    clock.advance(timedelta(days=40))
    cutoff = clock.now() - timedelta(days=1)
    recent = await _person(rt, client, world, "Recent")
    async with rt.db.unit_of_work(readonly=True) as uow:
        preview = await bulk.bulk_preview(rt, uow, None, world.site_id, cutoff)
    assert preview["subjects"] == 5
    seen: list[tuple[int, int]] = []
    view = await bulk.run(rt, None, world.site_id, cutoff, batch_size=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert view["subjects"] == 5
    assert view["state"] == "done"
    assert await count(rt, "visitors") == 1
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await stats.totals(uow, world.workspace_id))["chats"] == 5
        left = await bulk.bulk_preview(rt, uow, None, world.site_id, cutoff)
        assert len((await uow.session.scalars(select(Certificate))).all()) == 1
    assert left["subjects"] == 0  # run again: nothing left to do
    assert recent["visitor_id"] not in [o["visitor_id"] for o in old]
    cli = await run_cli(settings, "subject", "erase-bulk", "--site", world.site_id, "--before",
                        cutoff.isoformat(), "--dry-run")
    assert cli.exit_code == 0, cli.output
    assert "0 visitors" in cli.output
    bad = await run_cli(settings, "subject", "erase-bulk", "--site", world.site_id, "--before", "yesterday")
    assert bad.exit_code == 2
