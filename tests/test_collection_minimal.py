"""Collection by construction (issue 7): a visitor who ticks nothing chats normally, and afterwards
no table holds anything optional about them: no page trail, no prospect, no marketing job.

The site has every optional processing switched on (automatic prospects, activity tracking on
consent, marketing e-mail, profiling offered in the widget). The scan walks every table of the
personal-data registry (``rows_of``), so a table added later that keeps something about this
visitor fails here unless it is part of what a chat needs.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import text

from confide import privacy_registry
from confide.consent import purposes as K
from confide.consent import questions as consent_questions
from confide.core.personal_data import Subject
from confide.core.runtime import Runtime
from confide.prospects import service as prospects
from confide.prospects.schemas import ProspectSettingsIn
from confide.visitor_activity import service as activity
from confide.visitor_activity.schemas import ActivitySettingsIn
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import SitePatch
from tests.conftest import World
from tests.helpers_api import accept, actor, leave_message, say, set_status, start_chat

OFFERED = [
    {"key": K.MARKETING_EMAIL, "label": "News by e-mail", "version": "v1"},
    {"key": K.PROFILING, "label": "Use my details to follow up on my enquiry", "version": "v1"},
    {"key": K.ACTIVITY_TRACKING, "label": "Remember the pages I visit while I chat", "version": "v1"},
]
# What a chat and a left message need, and the proof that the visitor said no.
NEEDED = {
    "visitors",
    "visitor_terms",
    "subject_keys",
    "conversations",
    "messages",
    "conversation_terms",
    "offline_requests",
    "consent_records",
    "presence",
}


async def _everything_on(rt: Runtime, world: World) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await workspaces.update_site(uow, admin, world.site_id, SitePatch(purposes=OFFERED))
        await activity.save_settings(rt, uow, admin, world.site_id, ActivitySettingsIn())
        await prospects.update_settings(rt, uow, admin, world.site_id, ProspectSettingsIn(auto_create=True))


async def _rows(rt: Runtime, visitor_id: str) -> dict[str, int]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        found = {}
        for name, stmt in privacy_registry.rows_of(Subject("visitor", visitor_id)).items():
            found[name] = len((await uow.session.execute(stmt)).all())
        return found


async def test_a_visitor_who_ticks_nothing_chats_and_leaves_nothing_optional(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    await _everything_on(rt, world)
    await set_status(rt, world.operator_id)
    fields = {"name": "Ana Visitor", "email": "ana@example.com"}
    started = await start_chat(client, world, fields, consents={})  # nothing ticked
    vid, conv = started["visitor_id"], started["conversation_id"]
    # The chat works: the operator takes it, both write.
    await accept(rt, world.operator_id, conv)
    await say(rt, conv, "Hello, my card is not accepted", sender_id=vid)
    await say(rt, conv, "Let me look", sender="operator", sender_id=world.operator_id)
    # The widget reports a page (it does once the chat is open): refused, nothing kept.
    report = await client.post(
        f"/api/v1/widget/{world.site_key}/activity",
        content=json.dumps({"type": "view", "token": started["token"], "url": "https://shop.example/checkout"}),
        headers={"Origin": world.origin, "content-type": "text/plain;charset=UTF-8"},
    )
    assert report.status_code == 200, report.text
    assert report.json()["stored"] is False
    # A message left later by the same person, still ticking nothing.
    await leave_message(client, world, "Call me tomorrow", fields)

    held = await _rows(rt, vid)
    kept = {name for name, n in held.items() if n}
    assert kept <= NEEDED, kept - NEEDED
    assert held["conversations"] == 1
    assert held["messages"] >= 2
    # Silence is a no: one declined row per purpose offered, nothing granted.
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows: list[Any] = (
            await uow.session.execute(
                text("select purpose, granted from consent_records where subject_id = :v"), {"v": vid}
            )
        ).all()
        assert rows
        assert {purpose for purpose, _ in rows} == {p["key"] for p in OFFERED}
        assert not any(granted for _, granted in rows)
        for purpose in (K.MARKETING_EMAIL, K.PROFILING, K.ACTIVITY_TRACKING):
            assert not await consent_questions.may(uow, workspace_id=world.workspace_id, subject_id=vid,
                                                   purpose=purpose)
        # Workspace-wide, whoever they are: no trail, no lead, no job for a consent purpose.
        for table in ("activity_pages", "prospects"):
            assert (await uow.session.execute(text(f"select count(*) from {table}"))).scalar_one() == 0  # noqa: S608
        marketing = await uow.session.execute(text("select count(*) from jobs where purpose is not null"))
        assert marketing.scalar_one() == 0
