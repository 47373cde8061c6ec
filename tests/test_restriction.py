"""Restriction of processing (GDPR Art. 18, issue 8 point 6, ADR 0031), on SQLite and PostgreSQL.

A restricted person's data is stored and nothing else: ``consent.questions.may`` says no to every purpose,
no automatic prospect, no Visitor Activity, their purpose jobs wait (and run once lifted) while the
Art. 12 communications (no purpose) still go; the back-office lists leave them out for a role
without ``subjects.view`` and keep them for a privacy officer; restrict and lift are audited,
idempotent, refuse hostile input with nothing written, and two at once give one result."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from confide.audit.models import AuditEvent
from confide.chats import service as chats
from confide.chats.schemas import StoredChatFilters
from confide.consent import notices as consent_notices
from confide.consent import questions as consent_questions
from confide.core import jobs, mail
from confide.core.db import Base
from confide.core.errors import DomainError, Invalid, NotFound
from confide.core.runtime import Runtime
from confide.offline import service as offline
from confide.offline.schemas import OfflineFilters
from confide.prospects import service as prospects
from confide.prospects.schemas import ProspectFilters, ProspectIn, ProspectSettingsIn
from confide.restriction import notice
from confide.restriction import service as restriction
from confide.restriction.models import Restriction
from confide.visitor_activity import service as activity
from confide.visitor_activity.schemas import ActivityFilters
from confide.visitors.service import get_visitor
from confide.worker.jobs import JobRunner
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import SitePatch
from tests import factories
from tests.conftest import World
from tests.helpers_api import SELF, accept, actor, logged_in, other_workspace, set_status, start_chat
from tests.mailbox import Mailbox

PURPOSES = [
    {"key": "marketing", "label": "News by e-mail", "version": "v1"},
    {"key": "activity_tracking", "label": "Remember the pages I visit while I chat", "version": "v1"},
    {"key": "profiling", "label": "Use my details to follow up on my interest", "version": "v1"},
]
PIA = "pia@shop.example"
ALL = {"marketing": True, "activity_tracking": True, "profiling": True}


async def person(rt: Runtime, client: httpx.AsyncClient, world: World, tag: str) -> dict[str, Any]:
    """A visitor with a chat (accepted by the operator), an offline request, a prospect and a page view."""
    email = f"{tag}@example.com"
    started = await start_chat(client, world, {"name": f"{tag.title()} Person", "email": email}, consents=ALL)
    vid, conv = started["visitor_id"], started["conversation_id"]
    await accept(rt, world.operator_id, conv)
    async with rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, world.site_id)
        visitor = await get_visitor(uow, vid)
        assert site is not None
        assert visitor is not None
        req = await offline.store_request(rt, uow, site, visitor, department_id=world.department_id,
                                          message=f"{tag} call me", page_url=None)
    async with rt.db.unit_of_work() as uow:
        lead = await prospects.create(rt, uow, await actor(rt, world.admin_id), ProspectIn(conversation_id=conv))
    page = await report(client, world, started, f"https://shop.example/{tag}")
    assert page.json()["stored"] is True, page.text
    return {"visitor_id": vid, "conversation_id": conv, "token": started["token"], "offline": req.id,
            "prospect": lead["id"], "email": email}


async def report(client: httpx.AsyncClient, world: World, started: dict[str, Any], url: str) -> httpx.Response:
    return await client.post(
        f"/api/v1/widget/{world.site_key}/activity",
        content=json.dumps({"type": "view", "token": started["token"], "url": url, "title": "A page"}),
        headers={"Origin": world.origin, "content-type": "text/plain;charset=UTF-8"},
    )


@pytest.fixture
async def shop(rt: Runtime, client: httpx.AsyncClient, world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await workspaces.update_site(uow, admin, world.site_id, SitePatch(purposes=PURPOSES))
        pia = await factories.operator(rt, uow, workspace_id=world.workspace_id, email=PIA, role="privacy_officer",
                                       name="Pia Privacy")
    _PIA[world.workspace_id] = pia.id
    await set_status(rt, world.operator_id)
    return await person(rt, client, world, "ana"), await person(rt, client, world, "bob")


_PIA: dict[str, str] = {}  # workspace id -> the privacy officer's operator id


async def pia_of(rt: Runtime, world: World) -> Any:
    return await actor(rt, _PIA[world.workspace_id])


async def restrict(rt: Runtime, world: World, ids: list[str], reason: str = "accuracy_contested",
                   who: Any = None) -> dict[str, Any]:
    async with rt.db.unit_of_work() as uow:
        return await restriction.restrict(rt, uow, who or await pia_of(rt, world), world.workspace_id, ids,
                                          reason=reason, request_id="REQ-1")


async def lift(rt: Runtime, world: World, ids: list[str]) -> dict[str, Any]:
    async with rt.db.unit_of_work() as uow:
        return await restriction.lift(rt, uow, await pia_of(rt, world), world.workspace_id, ids)


async def rows(rt: Runtime) -> list[Restriction]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return list((await uow.session.scalars(select(Restriction).order_by(Restriction.restricted_at))).all())


async def audited(rt: Runtime, action: str) -> list[AuditEvent]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return list((await uow.session.scalars(select(AuditEvent).where(AuditEvent.action == action))).all())


async def lists(rt: Runtime, who: Any) -> dict[str, set[str]]:
    """The ids each back-office list shows ``who``."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        chat_rows, _ = await chats.search(rt, uow, who, StoredChatFilters())
        offline_rows, _ = await offline.search(rt, uow, who, OfflineFilters())
        prospect_rows, _ = await prospects.search(rt, uow, who, ProspectFilters())
        activity_rows, _ = await activity.search(rt, uow, who, ActivityFilters())
    return {
        "chats": {r["id"] for r in chat_rows},
        "offline": {r["id"] for r in offline_rows},
        "prospects": {r["id"] for r in prospect_rows},
        "activity": {r["visitor_id"] for r in activity_rows},
    }


def theirs(p: dict[str, Any]) -> dict[str, str]:
    return {"chats": p["conversation_id"], "offline": p["offline"], "prospects": p["prospect"],
            "activity": p["visitor_id"]}


# ---------------------------------------------------------------- processing stops
async def test_a_restricted_person_is_processed_for_no_purpose(rt: Runtime, client: httpx.AsyncClient,
                                                                world: World, shop: Any) -> None:
    ana, bob = shop
    ws = world.workspace_id
    async with rt.db.unit_of_work(readonly=True) as uow:
        keys = [p.key for p in await consent_notices.list_purposes(uow, ws)]
        assert await consent_questions.may(uow, workspace_id=ws, subject_id=ana["visitor_id"], purpose="marketing")
    done = await restrict(rt, world, [ana["visitor_id"]])
    assert done["added"] == [ana["visitor_id"]]
    assert done["restriction"]["reason"] == "accuracy_contested"
    async with rt.db.unit_of_work(readonly=True) as uow:
        for key in keys:  # every purpose, the required support chat too
            ask = {"workspace_id": ws, "subject_id": ana["visitor_id"], "purpose": key}
            assert not await consent_questions.may(uow, **ask), key
            assert await consent_questions.objected(uow, **ask), key
        assert await consent_questions.may(uow, workspace_id=ws, subject_id=bob["visitor_id"], purpose="marketing")
        allowed = await consent_questions.allowed_subjects(uow, workspace_id=ws, purpose="marketing",
                                                           subject_ids=[ana["visitor_id"], bob["visitor_id"]])
        assert allowed == {bob["visitor_id"]}
    # Visitor Activity: the restricted person's page view is not stored; the other's is.
    ana_page = await report(client, world, ana, "https://shop.example/after")
    assert ana_page.status_code < 300, ana_page.text
    assert ana_page.json()["stored"] is False
    assert (await report(client, world, bob, "https://shop.example/after")).json()["stored"] is True
    # Automatic prospects: none for the restricted person.
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await prospects.update_settings(rt, uow, admin, world.site_id,
                                        ProspectSettingsIn(auto_create=True, basis="consent", interest_note=""))
    async with rt.db.unit_of_work() as uow:
        await prospects.remove(rt, uow, admin, ana["prospect"])
        await prospects.remove(rt, uow, admin, bob["prospect"])
    async with rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, world.site_id)
        assert site is not None
        for who, expected in ((ana, False), (bob, True)):
            visitor = await get_visitor(uow, who["visitor_id"])
            assert visitor is not None
            made = await prospects.create_automatically(rt, uow, site, visitor)
            assert (made is not None) is expected, who["email"]


async def test_purpose_jobs_wait_while_restricted_and_art12_mail_still_goes(
    rt: Runtime, world: World, shop: Any
) -> None:
    ana, _ = shop
    vid = ana["visitor_id"]
    await restrict(rt, world, [vid])
    async with rt.db.unit_of_work() as uow:
        marketing = mail.enqueue_mail(rt, uow, to=[ana["email"]], subject="News", text="Offers",
                                      workspace_id=world.workspace_id, subject_id=vid, purpose="marketing")
        # What Art. 12 / 18(3) require goes: a request's notice, an export's link (no purpose).
        mail.enqueue_mail(rt, uow, to=[ana["email"]], subject="Your request", text="We received it",
                          workspace_id=world.workspace_id, subject_id=vid)
    async with Mailbox() as box:
        rt.settings.smtp_host, rt.settings.smtp_port, rt.settings.smtp_security = "127.0.0.1", box.port, "none"
        await JobRunner(rt, node_id="t").drain()
        subjects = [m.message["Subject"] for m in box.received]
        assert subjects == ["Your request"]
        async with rt.db.unit_of_work(readonly=True) as uow:
            job = await jobs.get(uow, marketing)
            assert job is not None  # kept, not dropped
            assert job.state == jobs.PENDING
            assert job.attempts == 0
            assert job.payload_enc is not None
        # Lifted: the job falls due at once and runs (its consent guard asked again).
        lifted = await lift(rt, world, [vid])
        assert lifted["lifted"] == [vid]
        await JobRunner(rt, node_id="t").drain()
        assert [m.message["Subject"] for m in box.received] == ["Your request", "News"]
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await jobs.get(uow, marketing) is None
        assert await consent_questions.may(uow, workspace_id=world.workspace_id, subject_id=vid, purpose="marketing")


# ---------------------------------------------------------------- search exclusion
async def test_lists_leave_a_restricted_person_out_for_an_operator_not_for_a_privacy_officer(
    rt: Runtime, world: World, shop: Any
) -> None:
    ana, bob = shop
    operator = await actor(rt, world.operator_id)
    # An operator who may also read prospects of every department of theirs (no subjects.view).
    seen = await lists(rt, operator)
    for name, value in theirs(ana).items():
        assert value in seen[name], name
    await restrict(rt, world, [ana["visitor_id"]])
    seen = await lists(rt, operator)
    for name, value in theirs(ana).items():
        assert value not in seen[name], name
    for name, value in theirs(bob).items():
        assert value in seen[name], name
    # A privacy officer (subjects.view) and the administrator still see them.
    admin = await actor(rt, world.admin_id)
    officer = dataclasses.replace(operator, permissions=operator.permissions | {"subjects.view"})
    for who in (admin, officer):
        shown = await lists(rt, who)
        for name, value in theirs(ana).items():
            assert value in shown[name], name
    # Opened by id: the transcript and the page trail look missing to the operator.
    async with rt.db.unit_of_work(readonly=True) as uow:
        with pytest.raises(NotFound):
            await chats.transcript(rt, uow, operator, ana["conversation_id"])
        assert (await chats.transcript(rt, uow, admin, ana["conversation_id"]))["id"] == ana["conversation_id"]
        assert (await chats.transcript(rt, uow, operator, bob["conversation_id"]))["id"] == bob["conversation_id"]
        from confide.permissions import access

        with pytest.raises(NotFound):
            await access.access_offline_request_by_id(uow.session, operator, ana["offline"])
        with pytest.raises(NotFound):
            await access.access_prospect_by_id(uow.session, operator, ana["prospect"])
        with pytest.raises(NotFound):
            await access.access_visitor_trail_by_id(uow.session, operator, ana["visitor_id"])
        assert (await access.access_offline_request_by_id(uow.session, operator, bob["offline"])).id == bob["offline"]
        assert (await access.access_prospect_by_id(uow.session, admin, ana["prospect"])).id == ana["prospect"]
    # Lifted: everything is back.
    await lift(rt, world, [ana["visitor_id"]])
    seen = await lists(rt, operator)
    for name, value in theirs(ana).items():
        assert value in seen[name], name


# ---------------------------------------------------------------- state, history, audit, idempotence
async def test_restrict_is_idempotent_lift_keeps_history_and_both_are_audited(
    rt: Runtime, world: World, shop: Any
) -> None:
    ana, _ = shop
    vid = ana["visitor_id"]
    first = await restrict(rt, world, [vid], "legal_claims")
    again = await restrict(rt, world, [vid], "other")  # already restricted: the first one stays
    assert again["added"] == []
    assert again["restriction"]["reason"] == "legal_claims"
    assert again["restriction"]["since"] == first["restriction"]["since"]
    assert len(await rows(rt)) == 1
    assert len(await audited(rt, "subject.restricted")) == 1
    (event,) = await audited(rt, "subject.restricted")
    assert event.target_id == vid
    assert json.loads(event.detail)["reason"] == "legal_claims"
    assert ana["email"] not in event.detail
    assert (await lift(rt, world, [vid]))["lifted"] == [vid]
    assert (await lift(rt, world, [vid]))["lifted"] == []  # nothing left to lift
    assert len(await audited(rt, "subject.restriction_lifted")) == 1
    (row,) = await rows(rt)
    assert row.lifted_at is not None
    assert row.lifted_by is not None
    await restrict(rt, world, [vid], "objection_pending")  # a new restriction: a second row
    async with rt.db.unit_of_work(readonly=True) as uow:
        history = await restriction.history(uow, world.workspace_id, [vid])
    assert [h["reason"] for h in history] == ["legal_claims", "objection_pending"]
    assert history[0]["lifted_at"] is not None
    assert history[1]["lifted_at"] is None


async def test_hostile_input_is_refused_and_nothing_is_written(rt: Runtime, world: World, shop: Any) -> None:
    ana, _ = shop
    other = await other_workspace(rt)
    pia = await pia_of(rt, world)
    operator = await actor(rt, world.operator_id)  # no subjects.restrict
    foreign_admin = await actor(rt, other.admin_id)
    narrow = dataclasses.replace(pia, scope="departments")  # a person is not split by department
    vid = ana["visitor_id"]
    for who, ws, ids in ((pia, world.workspace_id, ["0" * 32]), (operator, world.workspace_id, [vid]),
                         (foreign_admin, other.workspace_id, [vid]), (foreign_admin, world.workspace_id, [vid]),
                         (narrow, world.workspace_id, [vid]), (pia, world.workspace_id, [vid, "0" * 32])):
        async with rt.db.unit_of_work() as uow:
            with pytest.raises(NotFound) as missing:
                await restriction.restrict(rt, uow, who, ws, ids, reason="other")
        assert missing.value.message == "visitor not found"
        async with rt.db.unit_of_work() as uow:
            with pytest.raises(NotFound) as missing:
                await restriction.lift(rt, uow, who, ws, ids)
        assert missing.value.message == "visitor not found"
    for bad_ids in ([], ["x" * 65], ["a'; drop table visitors;--"], [1], "abc", [f"v{i}" for i in range(101)]):
        async with rt.db.unit_of_work() as uow:
            with pytest.raises(Invalid) as refused:
                await restriction.restrict(rt, uow, pia, world.workspace_id, bad_ids, reason="other")
        assert "visitor id" in refused.value.message
    for bad_reason in ("", "because", "ACCURACY_CONTESTED", None, 3):
        async with rt.db.unit_of_work() as uow:
            with pytest.raises(Invalid) as refused:
                await restriction.restrict(rt, uow, pia, world.workspace_id, [vid], reason=bad_reason)
        assert "reason must be one of" in refused.value.message
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Invalid):
            await restriction.restrict(rt, uow, pia, world.workspace_id, [vid], reason="other",
                                       request_id="no spaces allowed")
    assert await rows(rt) == []
    assert await audited(rt, "subject.restricted") == []


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_two_staff_restricting_and_lifting_at_once_give_one_result(
    rt: Runtime, world: World, shop: Any
) -> None:
    ana, bob = shop
    ids = [ana["visitor_id"], bob["visitor_id"]]
    pia = await pia_of(rt, world)
    admin = await actor(rt, world.admin_id)

    async def one(who: Any, reason: str) -> dict[str, Any]:
        async with rt.db.unit_of_work() as uow:
            return await restriction.restrict(rt, uow, who, world.workspace_id, ids, reason=reason)

    results = await asyncio.gather(one(pia, "other"), one(admin, "legal_claims"), one(pia, "other"))
    assert sorted(len(r["added"]) for r in results) == [0, 0, 2]
    assert len({r["restriction"]["reason"] for r in results}) == 1  # all three answer the same restriction
    assert len(await rows(rt)) == 2
    assert len(await audited(rt, "subject.restricted")) == 1

    async def off(who: Any) -> dict[str, Any]:
        async with rt.db.unit_of_work() as uow:
            return await restriction.lift(rt, uow, who, world.workspace_id, ids)

    lifted = await asyncio.gather(off(pia), off(admin), off(pia))
    assert sorted(len(r["lifted"]) for r in lifted) == [0, 0, 2]
    assert len(await audited(rt, "subject.restriction_lifted")) == 1
    async with rt.db.unit_of_work(readonly=True) as uow:
        active = await uow.session.scalar(select(func.count()).select_from(Restriction)
                                          .where(Restriction.lifted_at.is_(None)))
    assert active == 0


async def test_erasure_takes_the_restriction_rows_with_the_person(rt: Runtime, world: World, shop: Any) -> None:
    from confide.erasure import service as erasure

    ana, bob = shop
    await restrict(rt, world, [ana["visitor_id"]])
    await restrict(rt, world, [bob["visitor_id"]])
    async with rt.db.unit_of_work() as uow:
        cert = await erasure.erase(rt, uow, await actor(rt, world.admin_id), world.workspace_id,
                                   [ana["visitor_id"]], reason="request")
    assert cert.counts["restrictions"] == 1
    assert [r.visitor_id for r in await rows(rt)] == [bob["visitor_id"]]


# ---------------------------------------------------------------- the API, the page, the CLI
async def test_api_restrict_and_lift(app: Any, rt: Runtime, client: httpx.AsyncClient, world: World,
                                     shop: Any) -> None:
    ana, _ = shop
    body = {"visitor_ids": [ana["visitor_id"]], "reason": "unlawful_processing", "request_id": "REQ-9"}
    assert (await client.post("/api/v1/subjects/restrict", json=body, headers=SELF)).status_code == 401
    async with logged_in(app, world.operator_email) as operator:
        denied = await operator.post("/api/v1/subjects/restrict", json=body, headers=SELF)
        assert denied.status_code == 403
    async with logged_in(app, PIA) as pia:
        for bad, status in (({**body, "reason": "nope"}, 422), ({**body, "visitor_ids": []}, 422),
                            ({**body, "visitor_ids": ["0" * 32]}, 404), ({"reason": "other"}, 422),
                            ({**body, "visitor_ids": ["bad id!"]}, 422),
                            ({**body, "visitor_ids": [f"v{i}" for i in range(101)]}, 422)):
            refused = await pia.post("/api/v1/subjects/restrict", json=bad, headers=SELF)
            assert refused.status_code == status, (bad, refused.text)
            assert refused.json().get("detail") or refused.json().get("error"), refused.text
        assert await rows(rt) == []
        done = await pia.post("/api/v1/subjects/restrict", json=body, headers=SELF)
        assert done.status_code == 200, done.text
        assert done.json()["added"] == [ana["visitor_id"]]
        assert done.json()["restriction"]["request_id"] == "REQ-9"
        found = await pia.post("/api/v1/subjects/find", json={"by": "visitor", "value": ana["visitor_id"]},
                               headers=SELF)
        (person,) = found.json()["persons"]
        assert person["restriction"]["reason"] == "unlawful_processing"
        off = await pia.post("/api/v1/subjects/lift-restriction", json={"visitor_ids": [ana["visitor_id"]]},
                             headers=SELF)
        assert off.status_code == 200, off.text
        assert off.json()["lifted"] == [ana["visitor_id"]]
        assert off.json()["told"] is True  # Art. 18(3): the person is told
    async with Mailbox() as box:
        rt.settings.smtp_host, rt.settings.smtp_port, rt.settings.smtp_security = "127.0.0.1", box.port, "none"
        await JobRunner(rt, node_id="t").drain()
        told = [m for m in box.received if m.message["Subject"] == notice.SUBJECT]
    assert [m.rcpt_tos for m in told] == [[ana["email"]]]
    async with logged_in(app, PIA) as pia:
        missing = await pia.post("/api/v1/subjects/lift-restriction", json={"visitor_ids": ["0" * 32]},
                                 headers=SELF)
        assert missing.status_code == 404


async def test_find_a_person_page_shows_the_state_and_the_buttons_work(app: Any, rt: Runtime, world: World,
                                                                       shop: Any) -> None:
    ana, _ = shop
    async with logged_in(app, PIA) as pia:
        page = await pia.post("/app/subjects", data={"by": "visitor", "value": ana["visitor_id"]}, headers=SELF)
        assert page.status_code == 200
        assert 'data-testid="subject-restricted"' not in page.text
        assert 'data-testid="subject-restrict"' in page.text
        done = await pia.post("/app/subjects/restrict", data={"visitor_ids": ana["visitor_id"],
                                                              "reason": "accuracy_contested"}, headers=SELF)
        assert done.status_code == 200, done.text
        assert 'data-testid="subject-restricted"' in done.text
        assert "Restricted since" in done.text
        assert "accuracy contested" in done.text
        assert 'data-testid="subject-lift"' in done.text
        bad = await pia.post("/app/subjects/restrict", data={"visitor_ids": ana["visitor_id"], "reason": "x"},
                             headers=SELF)
        assert bad.status_code == 422
        assert "Reason must be one of" in bad.text
        foreign = await pia.post("/app/subjects/restrict", data={"visitor_ids": "", "reason": "other"},
                                 headers=SELF)
        assert foreign.status_code == 422
        off = await pia.post("/app/subjects/lift-restriction", data={"visitor_ids": ana["visitor_id"]},
                             headers=SELF)
        assert off.status_code == 200
        assert 'data-testid="subject-restricted"' not in off.text
        assert "The restriction was lifted. The person is told by e-mail." in off.text
        # A form from another site is refused (the CSRF origin check of every form here).
        forged = await pia.post("/app/subjects/restrict", data={"visitor_ids": ana["visitor_id"], "reason": "other"},
                                headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403
    assert [r.lifted_at is not None for r in await rows(rt)] == [True]


async def test_cli_restrict_and_unrestrict(rt: Runtime, world: World, shop: Any) -> None:
    from tests.cli_helpers import run_cli

    ana, _ = shop
    base = ("--workspace", world.workspace_id, "--visitor", ana["visitor_id"])
    done = await run_cli(rt.settings, "subject", "restrict", *base, "--reason", "legal_claims")
    assert done.exit_code == 0, done.output
    assert "restricted:" in done.stdout
    again = await run_cli(rt.settings, "subject", "restrict", *base, "--reason", "legal_claims")
    assert again.exit_code == 0, again.output
    assert "already restricted" in again.stdout
    bad = await run_cli(rt.settings, "subject", "restrict", *base, "--reason", "because")
    assert bad.exit_code == 2
    assert "reason must be one of" in bad.output
    bad_id = await run_cli(rt.settings, "subject", "restrict", "--workspace", world.workspace_id,
                           "--visitor", "bad id!", "--reason", "other")
    assert bad_id.exit_code == 2
    missing = await run_cli(rt.settings, "subject", "restrict", "--workspace", world.workspace_id,
                            "--visitor", "0" * 32, "--reason", "other")
    assert missing.exit_code == 1
    assert "visitor not found" in missing.output
    other_ws = await run_cli(rt.settings, "subject", "unrestrict", "--workspace", "0" * 32,
                             "--visitor", ana["visitor_id"])
    assert other_ws.exit_code == 1
    off = await run_cli(rt.settings, "subject", "unrestrict", *base)
    assert off.exit_code == 0, off.output
    assert "restriction lifted" in off.stdout
    assert "told by e-mail" in off.stdout
    (row,) = await rows(rt)
    assert row.restricted_by is None  # the installation's shell
    assert row.lifted_at is not None
    events = await audited(rt, "subject.restricted")
    assert [e.actor_type for e in events] == ["system"]


def test_the_reason_codes_are_one_list() -> None:
    assert set(restriction.REASON_LABELS) == set(restriction.REASONS)
    with pytest.raises(DomainError):
        restriction.reason_of("free text")


async def test_the_export_states_the_restriction_as_an_art15_fact(rt: Runtime, world: World, shop: Any) -> None:
    import jsonschema

    from confide.subjects import export
    from confide.subjects.schemas import ExportIn
    from tests.test_subjects import SCHEMA

    ana, bob = shop
    await restrict(rt, world, [ana["visitor_id"]], "objection_pending")
    admin = await actor(rt, world.admin_id)
    packages = {}
    for who in (ana, bob):
        delivered = await export.export_person(rt, admin, ExportIn(visitor_ids=[who["visitor_id"]],
                                                                   searched_by="visitor"), via="test")
        packages[who["email"]] = json.loads(delivered.data)
        jsonschema.Draft202012Validator(SCHEMA).validate(packages[who["email"]])
    fact = packages[ana["email"]]["facts"]["restriction"]
    assert "restricted since" in fact
    assert "Art. 18(1)(d)" in fact
    assert "restriction" not in packages[bob["email"]]["facts"]
    for fmt in ("csv", "xlsx", "pdf"):  # every renderer takes the fact
        done = await export.export_person(rt, admin, ExportIn(visitor_ids=[ana["visitor_id"]], searched_by="visitor",
                                                              fmt=fmt), via="test")  # type: ignore[arg-type]
        assert done.data


async def test_the_retention_sweep_keeps_a_restricted_persons_rows(rt: Runtime, client: httpx.AsyncClient,
                                                                   world: World) -> None:
    """Storage is what a restriction allows; a sweep's deletion is a processing it stops (Art. 18(1)(b),
    (c)). Lifted, the next sweep takes the rows."""
    from confide.core import clock
    from confide.retention import sweep
    from tests.test_retention import DAY, chat, exists, page_views

    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        pia = await factories.operator(rt, uow, workspace_id=world.workspace_id, email=PIA, role="privacy_officer",
                                       name="Pia Privacy")
    _PIA[world.workspace_id] = pia.id
    await set_status(rt, world.operator_id)
    clock.advance(-400 * DAY)
    kept, gone = await chat(client, rt, world), await chat(client, rt, world)
    for who in (kept, gone):
        await page_views(rt, world, who["visitor_id"], 2)
    clock.reset()
    await restrict(rt, world, [kept["visitor_id"]], "unlawful_processing", who=admin)
    report = await sweep.run(rt)
    assert report.totals()["chats"] == 1
    assert await exists(rt, "conversations", kept["conversation_id"])
    assert not await exists(rt, "conversations", gone["conversation_id"])
    async with rt.db.unit_of_work(readonly=True) as uow:
        pages = await uow.session.execute(select(func.count()).select_from(Base.metadata.tables["activity_pages"]))
        assert pages.scalar_one() == 2  # the restricted person's two
    await lift(rt, world, [kept["visitor_id"]])
    await sweep.run(rt)
    assert not await exists(rt, "conversations", kept["conversation_id"])
