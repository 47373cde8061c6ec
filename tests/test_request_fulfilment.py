"""A data-subject request answered by the export it asked for or by the erasure (issue 8 points 3 to
5): the e-mailed export link and the erasure certificate are linked to the request, with a
timeline step, in the same unit of work; a request in the wrong state, of another type, or about
someone else refuses the export or the erasure and leaves nothing behind. SQLite and PostgreSQL;
the request page drives both."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from confide.core.errors import Conflict, NotFound
from confide.core.runtime import Runtime
from confide.erasure import service as erasure
from confide.erasure.models import Certificate
from confide.privacy_requests import intake, lifecycle
from confide.privacy_requests.models import PrivacyRequest, PrivacyRequestEvent
from confide.privacy_requests.schemas import StaffRequestIn
from confide.subjects import delivery
from confide.subjects.models import ExportLink
from confide.subjects.schemas import ExportIn
from tests.conftest import World
from tests.helpers_api import SELF, actor, logged_in, set_status, start_chat

BASE = "https://chat.example"


async def _person(client: httpx.AsyncClient, rt: Runtime, world: World, email: str) -> str:
    await set_status(rt, world.operator_id)
    started = await start_chat(client, world, {"name": "Rosa Requester", "email": email})
    return str(started["visitor_id"])


async def _request(rt: Runtime, world: World, email: str, type_: str = "access", *, start: bool = True) -> str:
    """A request entered by staff, its requester verified by staff (which links the visits with
    the same e-mail), and (``start``) work started."""
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        made = await intake.create_by_staff(rt, uow, admin, StaffRequestIn(type=type_, email=email,  # type: ignore[arg-type]
                                                                           channel="email"))
        await intake.verify_by_staff(rt, uow, admin, made["id"], "called the number on file")
        if start:
            await lifecycle.start(rt, uow, admin, made["id"])
    return str(made["id"])


async def _row(rt: Runtime, request_id: str) -> PrivacyRequest:
    async with rt.db.unit_of_work(readonly=True) as uow:
        row = await uow.session.get(PrivacyRequest, request_id)
        assert row is not None
        return row


async def _kinds(rt: Runtime, request_id: str) -> list[str]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return list((await uow.session.scalars(
            select(PrivacyRequestEvent.kind).where(PrivacyRequestEvent.request_id == request_id)
            .order_by(PrivacyRequestEvent.seq))).all())


async def _count(rt: Runtime, model: Any) -> int:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model)) or 0)


async def _send(rt: Runtime, world: World, visitor_ids: list[str], request_id: str | None) -> delivery.Sent:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        return await delivery.send_link(rt, uow, admin, ExportIn(visitor_ids=visitor_ids, fmt="pdf",
                                                                 request_id=request_id), base_url=BASE)


# ---------------------------------------------------------------- the export answers an access request
async def test_the_emailed_export_is_linked_to_the_access_request(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    vid = await _person(client, rt, world, "rosa@example.com")
    rid = await _request(rt, world, "rosa@example.com")
    sent = await _send(rt, world, [vid], rid)
    row = await _row(rt, rid)
    assert row.export_id == sent.link_id
    assert (await _kinds(rt, rid))[-1] == "export_sent"
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:  # completing keeps the link
        done = await lifecycle.complete(rt, uow, admin, rid, outcome="Sent the PDF")
    assert done["state"] == "done"
    assert (await _row(rt, rid)).export_id == sent.link_id


@pytest.mark.parametrize("case", ["not_started", "erasure_type", "someone_else", "unknown"])
async def test_an_export_that_answers_no_request_is_refused_and_nothing_is_sent(
    rt: Runtime, client: httpx.AsyncClient, world: World, case: str
) -> None:
    vid = await _person(client, rt, world, "rosa@example.com")
    other = await _person(client, rt, world, "someone.else@example.com")
    rid = {
        "not_started": lambda: _request(rt, world, "rosa@example.com", start=False),
        "erasure_type": lambda: _request(rt, world, "rosa@example.com", "erasure"),
        "someone_else": lambda: _request(rt, world, "rosa@example.com"),
        "unknown": None,
    }[case]
    request_id = await rid() if rid is not None else "no-such-request"
    links, jobs_before = await _count(rt, ExportLink), await _jobs(rt)
    expected = NotFound if case == "unknown" else Conflict
    with pytest.raises(expected) as refused:
        await _send(rt, world, [other if case == "someone_else" else vid], request_id)
    assert refused.value.message
    assert await _count(rt, ExportLink) == links  # the link, its mail and the audit row rolled back together
    assert await _jobs(rt) == jobs_before
    if case != "unknown":
        assert (await _row(rt, request_id)).export_id is None


async def _jobs(rt: Runtime) -> int:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return int((await uow.session.execute(text("select count(*) from jobs"))).scalar_one())


# ---------------------------------------------------------------- the erasure answers an erasure request
async def test_the_erasure_certificate_is_linked_to_the_erasure_request(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    vid = await _person(client, rt, world, "rosa@example.com")
    rid = await _request(rt, world, "rosa@example.com", "erasure")
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        cert = await erasure.erase(rt, uow, admin, world.workspace_id, [vid], request_id=rid, reason="request")
    row = await _row(rt, rid)
    assert row.certificate_id == cert.id
    assert cert.request_id == rid
    assert row.email_enc is None  # the request itself was anonymised, its row kept
    assert row.wrapped_key is None
    assert "erased" in await _kinds(rt, rid)
    async with rt.db.unit_of_work() as uow:
        done = await lifecycle.complete(rt, uow, admin, rid, outcome="Erased")
    assert done["state"] == "done"
    assert (await _row(rt, rid)).certificate_id == cert.id


async def test_an_erasure_for_a_request_not_in_progress_erases_nothing(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    vid = await _person(client, rt, world, "rosa@example.com")
    not_started = await _request(rt, world, "rosa@example.com", "erasure", start=False)
    access = await _request(rt, world, "rosa@example.com", "access")
    admin = await actor(rt, world.admin_id)
    for rid, words in ((not_started, "start work"), (access, "does not answer")):
        with pytest.raises(Conflict, match=words):
            async with rt.db.unit_of_work() as uow:
                await erasure.erase(rt, uow, admin, world.workspace_id, [vid], request_id=rid, reason="request")
    async with rt.db.unit_of_work(readonly=True) as uow:
        still = (await uow.session.execute(text("select count(*) from visitors where id = :v"), {"v": vid})).scalar()
    assert still == 1
    assert await _count(rt, Certificate) == 0


async def test_an_outside_reference_stays_on_the_certificate_only(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    vid = await _person(client, rt, world, "rosa@example.com")
    async with rt.db.unit_of_work() as uow:
        cert = await erasure.erase(rt, uow, await actor(rt, world.admin_id), world.workspace_id, [vid],
                                   request_id="TICKET-4711", reason="request")
    assert cert.request_id == "TICKET-4711"


# ---------------------------------------------------------------- the request page
async def test_the_request_page_sends_the_export_and_links_the_erasure(
    rt: Runtime, app: Any, client: httpx.AsyncClient, world: World
) -> None:
    vid = await _person(client, rt, world, "rosa@example.com")
    access = await _request(rt, world, "rosa@example.com")
    gone = await _request(rt, world, "rosa@example.com", "erasure")
    async with logged_in(app, world.admin_email) as staff:
        page = await staff.get(f"/app/requests/{access}")
        assert 'data-testid="request-send-export"' in page.text
        sent = await staff.post(f"/app/requests/{access}/send-export", data={"visitor_ids": vid, "fmt": "pdf"},
                                headers=SELF)
        assert sent.status_code == 303, sent.text
        after = await staff.get(sent.headers["location"])
        assert "linked to this request" in after.text
        assert (await _row(rt, access)).export_id is not None
        erase_page = await staff.get(f"/app/requests/{gone}")
        link = re.search(r'data-testid="request-erase" href="([^"]+)"', erase_page.text)
        assert link is not None
        preview = await staff.get(link.group(1).replace("&amp;", "&"))
        assert preview.status_code == 200
        assert f'value="{gone}"' in preview.text  # the request reference is filled in
