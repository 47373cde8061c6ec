"""Account review: the report, CSV export, the periodic sign-off, the rules, and accounts disabled
automatically after a period without a login (sessions ended, audited, people told by e-mail)."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from confide.audit.models import AuditEvent
from confide.core import clock, jobs, mail
from confide.core.errors import Forbidden
from confide.core.runtime import Runtime
from confide.permissions.policy import Permission
from confide.realtime import events
from confide.users import operators as user_operators
from confide.users import review
from confide.users.account_models import AccountReview
from confide.worker import housekeeping, scheduler
from tests import factories
from tests.conftest import World
from tests.helpers_api import SELF, actor, logged_in, login

PAGE = "/app/settings/account-review"


async def audit_rows(rt: Runtime, action: str) -> list[AuditEvent]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return list((await uow.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                               .order_by(AuditEvent.seq))).all())


async def mails(rt: Runtime) -> list[dict[str, Any]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = (await uow.session.scalars(select(jobs.Job).where(jobs.Job.kind == mail.KIND))).all()
        return [p for p in (jobs.open_payload(rt, r) for r in rows) if p is not None]


async def get_op(rt: Runtime, operator_id: str) -> user_operators.Operator:
    async with rt.db.unit_of_work(readonly=True) as uow:
        op = await user_operators.get_operator(uow, operator_id)
    assert op is not None
    return op


async def set_rules(rt: Runtime, world: World, **rules: Any) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await review.set_policy(rt, uow, admin, review.PolicyIn(**rules))


async def test_the_report_shows_every_account_with_its_last_login(
    rt: Runtime, world: World, client: httpx.AsyncClient
) -> None:
    clock.advance(timedelta(days=3))
    assert (await login(client, world.admin_email)).status_code == 200
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert page.text.count('data-testid="account-row"') == 2
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = {r["id"]: r for r in await review.account_report(uow, admin)}
    assert rows[world.admin_id]["last_login_method"] == "password"
    assert rows[world.admin_id]["inactive_days"] == 0
    assert rows[world.operator_id]["last_login_at"] is None
    assert rows[world.operator_id]["never_logged_in"] is True
    assert rows[world.operator_id]["inactive_days"] == 3  # since the account was created
    assert {r["two_factor"] for r in rows.values()} == {"none"}
    assert "No review has been signed off yet" in page.text


async def test_viewing_needs_accounts_review_and_signing_needs_sign_off(
    rt: Runtime, world: World, app: Any
) -> None:
    admin = await actor(rt, world.admin_id)
    auditor = dataclasses.replace(admin, permissions=frozenset({Permission.ACCOUNTS_REVIEW.value}))
    nobody = dataclasses.replace(admin, permissions=frozenset())
    async with rt.db.unit_of_work(readonly=True) as uow:
        data = await review.page_data(uow, auditor)
        assert data["can_sign_off"] is False
        assert data["can_set_policy"] is False
        with pytest.raises(Forbidden):
            await review.account_report(uow, nobody)
    for who in (auditor, nobody):
        with pytest.raises(Forbidden):
            async with rt.db.unit_of_work() as uow:
                await review.sign_off(rt, uow, who)
    with pytest.raises(Forbidden):
        async with rt.db.unit_of_work() as uow:
            await review.set_policy(rt, uow, auditor, review.PolicyIn(interval_days=30))
    async with logged_in(app, world.operator_email) as op_client:
        assert (await op_client.get(PAGE)).status_code == 403
        assert (await op_client.get(PAGE + ".csv")).status_code == 403
        assert (await op_client.post(PAGE + "/sign-off", headers=SELF)).status_code == 403
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await uow.session.scalar(select(AccountReview.id)) is None


async def test_sign_off_records_ids_and_codes_and_sets_the_next_due_date(
    rt: Runtime, world: World, client: httpx.AsyncClient
) -> None:
    await set_rules(rt, world, interval_days=30)
    assert (await login(client, world.admin_email)).status_code == 200
    signed = await client.post(PAGE + "/sign-off", headers=SELF)
    assert signed.status_code == 303
    page = await client.get(signed.headers["location"])
    assert "Review signed off." in page.text
    assert 'data-due="0"' in page.text
    assert "in 29 days" in page.text or "in 30 days" in page.text
    async with rt.db.unit_of_work(readonly=True) as uow:
        (rev,) = (await uow.session.scalars(select(AccountReview))).all()
    assert rev.signed_by == world.admin_id
    assert rev.account_count == 2
    assert {a["id"] for a in rev.accounts} == {world.admin_id, world.operator_id}
    stored = json.dumps(rev.accounts)
    assert "@" not in stored
    assert "Mia" not in stored  # ids and codes, no names or addresses
    (event,) = await audit_rows(rt, "accounts.review_signed")
    assert event.target_id == rev.id
    assert json.loads(event.detail) == {"accounts": 2, "disabled": 0}
    clock.advance(timedelta(days=31))
    assert (await login(client, world.admin_email)).status_code == 200  # the old session has expired
    assert 'data-due="1"' in (await client.get(PAGE)).text


async def test_csv_export_is_audited_and_safe_in_a_spreadsheet(
    rt: Runtime, world: World, client: httpx.AsyncClient
) -> None:
    async with rt.db.unit_of_work() as uow:
        await factories.operator(rt, uow, workspace_id=world.workspace_id, email="eve@shop.example",
                                 name='=HYPERLINK("http://evil.example","x")')
    assert (await login(client, world.admin_email)).status_code == 200
    response = await client.get(PAGE + ".csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["email"] for r in rows] == [world.admin_email, world.operator_email, "eve@shop.example"]
    assert rows[2]["name"].startswith("'=HYPERLINK")
    assert rows[0]["last_login_method"] == "password"
    assert rows[1]["disabled"] == "no"
    (event,) = await audit_rows(rt, "accounts.review_exported")
    assert json.loads(event.detail) == {"accounts": 3}


async def test_the_rules_form_validates(rt: Runtime, world: World, client: httpx.AsyncClient) -> None:
    assert (await login(client, world.admin_email)).status_code == 200
    for bad in ({"interval_days": "0", "inactive_days": ""}, {"interval_days": "abc", "inactive_days": "-3"},
                {"interval_days": "9" * 40, "inactive_days": ""}):
        page = await client.post(PAGE + "/policy", headers=SELF, data=bad)
        assert page.status_code == 422, bad
        assert 'data-testid="form-errors"' in page.text
    assert await audit_rows(rt, "accounts.review_policy_changed") == []
    ok = await client.post(PAGE + "/policy", headers=SELF, data={"interval_days": "60", "inactive_days": "45"})
    assert ok.status_code == 303
    page = await client.get(PAGE)
    assert 'value="60"' in page.text
    assert 'value="45"' in page.text
    off = await client.post(PAGE + "/policy", headers=SELF, data={"interval_days": "60", "inactive_days": ""})
    assert off.status_code == 303
    details = [json.loads(e.detail) for e in await audit_rows(rt, "accounts.review_policy_changed")]
    assert details == [{"interval_days": 60, "inactive_days": 45}, {"interval_days": 60, "inactive_days": None}]


async def test_inactive_accounts_are_disabled_their_sessions_end_and_people_are_told(
    rt: Runtime, world: World, app: Any
) -> None:
    heard: list[tuple[str, dict[str, Any]]] = []
    rt.broker.set_handler(lambda topic, payload: heard.append((topic, payload)))
    await rt.broker.subscribe(events.operator_topic(world.operator_id))
    async with rt.db.unit_of_work() as uow:
        assert await review.disable_inactive(rt, uow) == 0  # off by default
    await set_rules(rt, world, inactive_days=30)
    async with logged_in(app, world.operator_email) as op_client:
        assert (await op_client.get("/app")).status_code == 200
        clock.advance(timedelta(days=29))
        async with rt.db.unit_of_work() as uow:
            assert await review.disable_inactive(rt, uow) == 0  # not yet
        async with logged_in(app, world.admin_email):
            pass  # the administrator logs in now; the operator does not
        clock.advance(timedelta(days=2))
        async with rt.db.unit_of_work() as uow:
            assert await review.disable_inactive(rt, uow) == 1
        assert (await op_client.get("/app")).status_code == 303  # the session has ended
    op = await get_op(rt, world.operator_id)
    assert op.disabled is True
    assert op.status == "offline"
    assert (await get_op(rt, world.admin_id)).disabled is False
    assert (events.operator_topic(world.operator_id), {"type": "revoke"}) in heard
    (event,) = await audit_rows(rt, "users.auto_disabled")
    assert event.actor_type == "system"
    assert event.target_id == world.operator_id
    assert json.loads(event.detail) == {"inactive_days": 31, "limit_days": 30}
    sent = {m["to"][0]: m for m in await mails(rt)}
    assert set(sent) == {world.operator_email, world.admin_email}
    assert "has been disabled" in sent[world.operator_email]["text"]
    assert "Mia" in sent[world.admin_email]["text"]
    async with rt.db.unit_of_work() as uow:
        assert await review.disable_inactive(rt, uow) == 0  # done once


async def test_the_last_manager_is_never_disabled_automatically(rt: Runtime, world: World) -> None:
    await set_rules(rt, world, inactive_days=10)
    clock.advance(timedelta(days=11))
    async with rt.db.unit_of_work() as uow:
        assert await review.disable_inactive(rt, uow) == 1
    assert (await get_op(rt, world.operator_id)).disabled is True
    assert (await get_op(rt, world.admin_id)).disabled is False
    assert [e.target_id for e in await audit_rows(rt, "users.auto_disabled")] == [world.operator_id]


async def test_the_scheduler_runs_it_at_most_once_a_minute(rt: Runtime, world: World) -> None:
    await set_rules(rt, world, inactive_days=10)
    clock.advance(timedelta(days=11))
    housekeeping._last_run.pop(rt.db, None)
    first = await scheduler.tick(rt)
    assert first is not None
    assert first["accounts_auto_disabled"] == 1
    async with rt.db.unit_of_work() as uow:
        bob = await factories.operator(rt, uow, workspace_id=world.workspace_id, email="bob@shop.example")
    clock.advance(timedelta(days=11))
    clock.freeze()
    assert (await scheduler.tick(rt) or {})["accounts_auto_disabled"] == 1  # a minute has passed
    clock.advance(timedelta(seconds=30))
    assert (await scheduler.tick(rt) or {})["accounts_auto_disabled"] == 0  # throttled
    assert (await get_op(rt, bob.id)).disabled is True


async def test_two_nodes_disabling_at_once_disable_and_tell_once(rt: Runtime, world: World) -> None:
    await set_rules(rt, world, inactive_days=10)
    async with rt.db.unit_of_work() as uow:
        for i in range(5):
            await factories.operator(rt, uow, workspace_id=world.workspace_id, email=f"op{i}@shop.example")
    clock.advance(timedelta(days=11))

    async def run() -> int:
        async with rt.db.unit_of_work() as uow:
            return await review.disable_inactive(rt, uow)

    results = await asyncio.gather(run(), run(), run())
    assert sum(results) == 6
    events = await audit_rows(rt, "users.auto_disabled")
    assert len(events) == 6
    assert len({e.target_id for e in events}) == 6
    to_accounts = [m for m in await mails(rt) if m["subject"] == "Your Confide account has been disabled"]
    assert len(to_accounts) == 6
