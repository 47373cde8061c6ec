"""Data-subject requests (ADR 0029), through the service, on SQLite and PostgreSQL: the one-month
clock and its extension (with the notice e-mailed to the requester), the e-mailed code (right,
wrong, expired, too many attempts), the states and their transitions, the overdue list, reminders
sent once per threshold, the registry walk, and two actions on one request at once (PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from confide import privacy_registry
from confide.core import clock
from confide.core.errors import Conflict, Forbidden, Invalid, NotFound
from confide.core.personal_data import Subject
from confide.core.runtime import Runtime
from confide.privacy_requests import deadlines, intake, lifecycle, reminders
from confide.privacy_requests import views as request_views
from confide.privacy_requests.models import PrivacyRequest
from confide.privacy_requests.schemas import RequestFilters, RequestIn, StaffRequestIn
from confide.visitors import service as visitors
from confide.worker import scheduler
from confide.worker.jobs import JobRunner
from confide.workspaces import service as workspaces
from tests.conftest import World
from tests.helpers_api import actor
from tests.mailbox import Mailbox, Received

CODE = re.compile(r"enter this code: (\d{6})")
JAN_31 = datetime(2027, 1, 31, 10, 0, tzinfo=UTC)


# ---------------------------------------------------------------- the clock (no database)
@pytest.mark.parametrize(
    ("received", "months", "due"),
    [
        (datetime(2027, 1, 31, 10, tzinfo=UTC), 0, datetime(2027, 2, 28, 10, tzinfo=UTC)),  # short February
        (datetime(2028, 1, 31, 10, tzinfo=UTC), 0, datetime(2028, 2, 29, 10, tzinfo=UTC)),  # leap year
        (datetime(2027, 3, 31, 23, 59, tzinfo=UTC), 0, datetime(2027, 4, 30, 23, 59, tzinfo=UTC)),
        (datetime(2027, 12, 15, 8, tzinfo=UTC), 0, datetime(2028, 1, 15, 8, tzinfo=UTC)),  # over the year end
        (datetime(2027, 1, 31, 10, tzinfo=UTC), 1, datetime(2027, 3, 31, 10, tzinfo=UTC)),  # from receipt, not Feb 28
        (datetime(2027, 1, 30, 10, tzinfo=UTC), 2, datetime(2027, 4, 30, 10, tzinfo=UTC)),
        (datetime(2027, 11, 30, 10, tzinfo=UTC), 2, datetime(2028, 2, 29, 10, tzinfo=UTC)),
    ],
)
def test_due_date_is_one_calendar_month_after_receipt(received: datetime, months: int, due: datetime) -> None:
    assert deadlines.due_date(received, months) == due


# ---------------------------------------------------------------- helpers
def _smtp(rt: Runtime, box: Mailbox) -> None:
    rt.settings.smtp_host, rt.settings.smtp_port, rt.settings.smtp_security = "127.0.0.1", box.port, "none"


async def _deliver(rt: Runtime, box: Mailbox, count: int) -> list[Received]:
    """Run the job outbox into the real SMTP server; return the ``count`` new messages."""
    before = len(box.received)
    await JobRunner(rt, node_id="t").drain()
    got = await box.wait_for(before + count)
    assert len(got) == before + count, [m.message["Subject"] for m in got[before:]]
    return got[before:]


async def staff_request(rt: Runtime, world: World, **fields: object) -> str:
    admin = await actor(rt, world.admin_id)
    data = StaffRequestIn.model_validate({"type": "access", "email": "req@example.org", "channel": "letter",
                                          "details": "Please send me everything.", **fields})
    async with rt.db.unit_of_work() as uow:
        made = await intake.create_by_staff(rt, uow, admin, data)
    return str(made["id"])


async def requester_request(rt: Runtime, world: World, email: str = "ana@example.com",
                            type_: str = "access", visitor_id: str | None = None) -> str:
    async with rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, world.site_id)
        assert site is not None
        row = await intake.create_by_requester(
            rt, uow, site, RequestIn(type=type_, email=email, details="What do you hold?"),  # type: ignore[arg-type]
            channel="web", visitor_id=visitor_id)
        return row.id


async def _row(rt: Runtime, request_id: str) -> PrivacyRequest:
    async with rt.db.unit_of_work(readonly=True) as uow:
        row = await uow.session.get(PrivacyRequest, request_id)
        assert row is not None
        return row


async def _verify(rt: Runtime, request_id: str, code: str) -> None:
    async with rt.db.unit_of_work() as uow:
        await intake.verify_code(rt, uow, request_id, code)


# ---------------------------------------------------------------- deadlines
async def test_one_month_clock_extension_and_the_notice(rt: Runtime, world: World) -> None:
    clock.freeze(JAN_31)
    admin = await actor(rt, world.admin_id)
    request_id = await staff_request(rt, world)
    row = await _row(rt, request_id)
    assert (row.received_at, row.due_at) == (JAN_31, datetime(2027, 2, 28, 10, tzinfo=UTC))

    # A minute before the due time it is not overdue; at the due time it is.
    clock.freeze(datetime(2027, 2, 28, 9, 59, tzinfo=UTC))
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await request_views.list_all(uow, overdue=True) == []
    clock.freeze(datetime(2027, 2, 28, 10, 0, tzinfo=UTC))
    async with rt.db.unit_of_work(readonly=True) as uow:
        (listed,) = await request_views.list_all(uow, overdue=True)
        items, total = await request_views.search(rt, uow, admin, RequestFilters(overdue=True), via="test")
    assert listed["id"] == request_id
    assert listed["overdue"] is True
    assert total == 1
    assert items[0]["email"] == "req@example.org"

    async with Mailbox() as box:
        _smtp(rt, box)
        async with rt.db.unit_of_work() as uow:
            view = await lifecycle.extend(rt, uow, admin, request_id, months=1, reason="Five years of chats to review")
        assert view["due_at"] == "2027-03-31T10:00:00Z"
        assert view["extended_months"] == 1
        assert not view["overdue"]
        (notice,) = await _deliver(rt, box, 1)
        assert notice.rcpt_tos == ["req@example.org"]
        assert notice.message["Subject"] == "We need more time for your request"
        body = notice.part("plain")
        assert "31 March 2027" in body
        assert "Five years of chats to review" in body
        assert "Article 12(3)" in body

        async with rt.db.unit_of_work() as uow:
            with pytest.raises(Conflict, match="at most 2 months in all; 1 left"):
                await lifecycle.extend(rt, uow, admin, request_id, months=2, reason="More")
        async with rt.db.unit_of_work() as uow:
            view = await lifecycle.extend(rt, uow, admin, request_id, months=1, reason="Still more")
        assert view["due_at"] == "2027-04-30T10:00:00Z"  # received 31 Jan + 3 months: the last of April
        await _deliver(rt, box, 1)
        async with rt.db.unit_of_work() as uow:
            with pytest.raises(Conflict, match="two months allowed already"):
                await lifecycle.extend(rt, uow, admin, request_id, months=1, reason="Again")
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await request_views.list_all(uow, overdue=True) == []
        shown = await request_views.view(rt, uow, await _row(rt, request_id), timeline=True)
        kinds = [e["kind"] for e in shown["timeline"]]
        audited = (await uow.session.execute(text(
            "select action, detail from audit_events where target_id = :t order by seq"), {"t": request_id})).all()
    assert kinds == ["received", "extended", "extended"]
    assert [a for a, _ in audited] == ["privacy_request.received", "privacy_request.extended",
                                       "privacy_request.extended"]
    assert all("example.org" not in d and "chats" not in d for _, d in audited)  # ids and codes only


async def test_staff_receipt_date_in_the_past_starts_the_clock_then(rt: Runtime, world: World) -> None:
    clock.freeze(datetime(2027, 5, 10, 12, tzinfo=UTC))
    request_id = await staff_request(rt, world, received_at="2027-05-03T09:00:00Z")
    assert (await _row(rt, request_id)).due_at == datetime(2027, 6, 3, 9, tzinfo=UTC)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Invalid, match="future"):
            await intake.create_by_staff(rt, uow, admin, StaffRequestIn.model_validate(
                {"type": "access", "email": "a@example.org", "channel": "phone", "received_at": "2027-06-01"}))


# ---------------------------------------------------------------- verification
async def test_code_right_wrong_expired_and_too_many(rt: Runtime, world: World) -> None:
    async with rt.db.unit_of_work() as uow:  # a visitor who chatted with the same address, and another
        site = await workspaces.get_site(uow, world.site_id)
        assert site is not None
        same = await visitors.create_visitor(rt, uow, site, {"name": "Ana", "email": "Ana@Example.com"}, {})
        other = await visitors.create_visitor(rt, uow, site, {"name": "Bo", "email": "bo@example.com"}, {})
    async with Mailbox() as box:
        _smtp(rt, box)
        request_id = await requester_request(rt, world)
        assert (await _row(rt, request_id)).state == "verifying"
        (first,) = await _deliver(rt, box, 1)
        assert first.rcpt_tos == ["ana@example.com"]
        match = CODE.search(first.part("plain"))
        assert match is not None
        code = match.group(1)
        assert f"/privacy/verify/{request_id}" in first.part("plain")
        row = await _row(rt, request_id)
        assert row.code_digest
        assert code not in row.code_digest

        wrong = "000000" if code != "000000" else "111111"
        with pytest.raises(Invalid) as failed:
            await _verify(rt, request_id, wrong)
        assert failed.value.message == "this code is not right; 4 attempts left"
        assert (await _row(rt, request_id)).code_attempts == 1  # the failed attempt was kept
        for left in (3, 2, 1):
            with pytest.raises(Invalid, match=f"{left} attempts left"):
                await _verify(rt, request_id, wrong)
        with pytest.raises(Invalid, match="ask for a new one"):
            await _verify(rt, request_id, wrong)
        with pytest.raises(Invalid, match="too many wrong codes"):
            await _verify(rt, request_id, code)  # even the right one, now
        assert (await _row(rt, request_id)).verified_at is None

        async with rt.db.unit_of_work() as uow:  # a new code; the old one is worthless
            await intake.resend_code_by_requester(rt, uow, request_id)
        (second,) = await _deliver(rt, box, 1)
        match = CODE.search(second.part("plain"))
        assert match is not None
        new_code = match.group(1)
        if new_code != code:
            with pytest.raises(Invalid):
                await _verify(rt, request_id, code)

        clock.advance(timedelta(minutes=rt.settings.privacy_request_code_ttl_min, seconds=1))
        with pytest.raises(Invalid, match="expired"):
            await _verify(rt, request_id, new_code)

        async with rt.db.unit_of_work() as uow:
            await intake.resend_code_by_requester(rt, uow, request_id)
        (third,) = await _deliver(rt, box, 1)
    match = CODE.search(third.part("plain"))
    assert match is not None
    await _verify(rt, request_id, f" {match.group(1)[:3]} {match.group(1)[3:]} ")  # spaces are forgiven
    row = await _row(rt, request_id)
    assert row.verified_at is not None
    assert row.verified_by is None
    assert row.code_digest is None
    async with rt.db.unit_of_work(readonly=True) as uow:
        view = await request_views.view(rt, uow, row, timeline=True)
    assert view["visitor_ids"] == [same.id]  # linked by the e-mail's blind index, once it was proved
    assert other.id not in view["visitor_ids"]
    assert [e["kind"] for e in view["timeline"]].count("verification_failed") == 6
    assert view["timeline"][-1]["kind"] == "verified"


async def test_codes_per_request_are_capped(rt: Runtime, world: World) -> None:
    request_id = await requester_request(rt, world)
    for _ in range(rt.settings.privacy_request_codes_max - 1):
        async with rt.db.unit_of_work() as uow:
            await intake.resend_code_by_requester(rt, uow, request_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Conflict, match="too many codes"):
            await intake.resend_code_by_requester(rt, uow, request_id)


# ---------------------------------------------------------------- states
async def test_transitions_are_enforced(rt: Runtime, world: World) -> None:
    admin = await actor(rt, world.admin_id)
    operator = await actor(rt, world.operator_id)
    request_id = await staff_request(rt, world, type="erasure")

    async def act(fn: object, *args: object, **kwargs: object) -> dict[str, object]:
        async with rt.db.unit_of_work() as uow:
            return await fn(rt, uow, *args, **kwargs)  # type: ignore[operator, no-any-return]

    with pytest.raises(Conflict, match="verify the requester's identity first"):
        await act(lifecycle.start, admin, request_id)
    with pytest.raises(Conflict, match="only a request in progress can be completed; this one is received"):
        await act(lifecycle.complete, admin, request_id, outcome="x")
    with pytest.raises(NotFound):  # an operator without subjects.* does not see it at all
        await act(intake.verify_by_staff, operator, request_id, "Called back")
    await act(intake.verify_by_staff, admin, request_id, "Called back on the number we hold")
    with pytest.raises(Conflict, match="verified already"):
        await act(intake.verify_by_staff, admin, request_id, "Again")
    view = await act(lifecycle.start, admin, request_id)
    assert view["state"] == "in_progress"
    assert view["assignee"] == {"id": world.admin_id, "name": "Ada Admin"}
    with pytest.raises(Conflict, match="cannot be started: it is in progress"):
        await act(lifecycle.start, admin, request_id)
    view = await act(lifecycle.complete, admin, request_id, outcome="Erased everything", certificate_id="cert123")
    assert view["state"] == "done"
    assert view["certificate_id"] == "cert123"
    assert view["closed_at"]
    for fn, kwargs in ((lifecycle.refuse, {"reason": "x"}), (lifecycle.extend, {"months": 1, "reason": "x"}),
                       (lifecycle.complete, {"outcome": "x"})):
        with pytest.raises(Conflict, match=r"(it|this one) is done"):
            await act(fn, admin, request_id, **kwargs)

    refused_id = await staff_request(rt, world)
    view = await act(lifecycle.refuse, admin, refused_id, reason="Manifestly unfounded: the tenth copy this month")
    assert view["state"] == "refused"
    async with rt.db.unit_of_work() as uow:
        detail = await request_views.open_request(rt, uow, admin, refused_id, via="test")
    assert detail["timeline"][-1]["note"] == "Manifestly unfounded: the tenth copy this month"
    assert detail["timeline"][-1]["actor"] == "Ada Admin"


async def test_staff_without_export_cannot_act(rt: Runtime, world: World) -> None:
    operator = await actor(rt, world.operator_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Forbidden):
            await intake.create_by_staff(rt, uow, operator, StaffRequestIn.model_validate(
                {"type": "access", "email": "a@example.org", "channel": "phone"}))
        items, total = await request_views.search(rt, uow, operator, RequestFilters(), via="test")
    assert (items, total) == ([], 0)


# ---------------------------------------------------------------- reminders
async def test_reminders_are_sent_once_per_threshold(rt: Runtime, world: World) -> None:
    clock.freeze(JAN_31)
    first = await staff_request(rt, world)  # assigned to the admin who entered it
    second = await requester_request(rt, world, email="bo@example.com")  # nobody assigned: the privacy team
    async with Mailbox() as box:
        _smtp(rt, box)
        await _deliver(rt, box, 1)  # the code for the second
        clock.freeze(datetime(2027, 2, 20, 9, tzinfo=UTC))  # 8 days before: nothing yet
        async with rt.db.unit_of_work() as uow:
            assert await reminders.send_reminders(rt, uow) == 0
        clock.freeze(datetime(2027, 2, 21, 11, tzinfo=UTC))  # within 7 days
        async with rt.db.unit_of_work() as uow:
            assert await reminders.send_reminders(rt, uow) == 2
        async with rt.db.unit_of_work() as uow:
            assert await reminders.send_reminders(rt, uow) == 0  # the same tick again: nothing twice
        assert await scheduler.tick(rt) is not None  # the scheduler's job: nothing twice either
        got = await _deliver(rt, box, 2)
        subjects = sorted(m.message["Subject"] for m in got)
        assert subjects == ["Due soon: a data-subject request (access)"] * 2
        # Only the admin holds subjects.export in this world (the operator does not): both go to them.
        assert sorted(tuple(m.rcpt_tos) for m in got) == [("admin@shop.example",), ("admin@shop.example",)]
        assert f"/app/requests/{first}" in " ".join(m.part("plain") for m in got)

        clock.freeze(datetime(2027, 2, 28, 10, tzinfo=UTC))  # due: overdue, once
        async with rt.db.unit_of_work() as uow:
            assert await reminders.send_reminders(rt, uow) == 2
        clock.advance(timedelta(minutes=5))
        assert (await scheduler.tick(rt) or {}).get("privacy_requests_reminded") == 0
        got = await _deliver(rt, box, 2)
        assert {m.message["Subject"] for m in got} == {"Overdue: a data-subject request (access)"}

        # An extension moves the date: the reminders come again for the new one, once.
        admin = await actor(rt, world.admin_id)
        async with rt.db.unit_of_work() as uow:
            await lifecycle.extend(rt, uow, admin, second, months=1, reason="Complex")
        await _deliver(rt, box, 1)  # the notice to the requester
        clock.freeze(datetime(2027, 3, 30, 10, tzinfo=UTC))
        async with rt.db.unit_of_work() as uow:
            assert await reminders.send_reminders(rt, uow) == 1
        async with rt.db.unit_of_work() as uow:
            assert await reminders.send_reminders(rt, uow) == 0
        await _deliver(rt, box, 1)
        clock.advance(timedelta(minutes=2))
        assert (await scheduler.tick(rt) or {}).get("privacy_requests_reminded") == 0
        await JobRunner(rt, node_id="t").drain()
        await asyncio.sleep(0.1)
        assert len(box.received) == 7  # 1 code + 2 due soon + 2 overdue + 1 notice + 1 due soon, nothing more


# ---------------------------------------------------------------- the registry walk
async def test_registry_reaches_a_request_from_its_visitor_only(rt: Runtime, world: World) -> None:
    async with rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, world.site_id)
        assert site is not None
        ana = await visitors.create_visitor(rt, uow, site, {"name": "Ana", "email": "ana@example.com"}, {})
        bo = await visitors.create_visitor(rt, uow, site, {"name": "Bo", "email": "bo@example.com"}, {})
    by_email = await requester_request(rt, world, email="ana@example.com")
    by_link = await requester_request(rt, world, email="someone.else@example.net", visitor_id=ana.id)
    theirs = await requester_request(rt, world, email="bo@example.com")

    async def found(visitor_id: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        async with rt.db.unit_of_work(readonly=True) as uow:
            for name, stmt in privacy_registry.rows_of(Subject("visitor", visitor_id)).items():
                if name.startswith("privacy_request"):
                    rows = (await uow.session.execute(stmt)).mappings().all()
                    out[name] = {str(r.get("request_id") or r.get("id")) for r in rows}
        return out

    mine = await found(ana.id)
    assert mine["privacy_requests"] == {by_email, by_link}
    assert mine["privacy_request_visitors"] == {by_link}
    assert mine["privacy_request_events"] == {by_email, by_link}
    bos = await found(bo.id)
    assert bos["privacy_requests"] == {theirs}
    assert bos["privacy_request_visitors"] == set()


# ---------------------------------------------------------------- the race
@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_two_actions_at_once_one_wins_the_other_is_refused(rt: Runtime, world: World) -> None:
    admin = await actor(rt, world.admin_id)
    request_id = await staff_request(rt, world)
    async with rt.db.unit_of_work() as uow:
        await intake.verify_by_staff(rt, uow, admin, request_id, "Known customer")
        await lifecycle.start(rt, uow, admin, request_id)
    gate = asyncio.Event()

    async def complete() -> str:
        async with rt.db.unit_of_work() as uow:
            await gate.wait()
            await lifecycle.complete(rt, uow, admin, request_id, outcome="Sent the export")
            await asyncio.sleep(0.3)  # hold the row lock while the other waits for it
        return "done"

    async def refuse() -> str:
        async with rt.db.unit_of_work() as uow:
            await gate.wait()
            await asyncio.sleep(0.05)
            await lifecycle.refuse(rt, uow, admin, request_id, reason="Unfounded")
        return "refused"

    tasks = [asyncio.create_task(complete()), asyncio.create_task(refuse())]
    await asyncio.sleep(0.05)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == "done"
    assert isinstance(results[1], Conflict)
    assert str(results[1]) == "the request cannot be refused: it is done"
    row = await _row(rt, request_id)
    assert row.state == "done"
    async with rt.db.unit_of_work(readonly=True) as uow:
        kinds = (await uow.session.execute(text(
            "select kind from privacy_request_events where request_id = :r order by seq"), {"r": request_id})).all()
    assert [k for (k,) in kinds] == ["received", "verified", "started", "done"]
