"""The consent ledger (ADR 0018): purposes and notices, may(), withdrawal from the widget, the
e-mail link and the operator's record, jobs cancelled, append-only at the database, hostile input."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from confide.consent import admin as consent_admin
from confide.consent import ledger as consent_ledger
from confide.consent import links as consent_links
from confide.consent import notices as consent_notices
from confide.consent import purposes as P
from confide.consent import questions as consent_questions
from confide.consent import removal as consent_removal
from confide.consent.models import ConsentRecord, Purpose
from confide.consent.schemas import NoticeIn, PurposePatch
from confide.core import crypto, jobs
from confide.core.runtime import Runtime
from confide.worker.jobs import JobRunner
from tests.conftest import World
from tests.helpers_api import accept, actor, counts, logged_in, other_workspace, say, set_status, start_chat

MARKETING = "marketing"  # the factory site's own purpose, adopted as a workspace purpose


def privacy_url(world: World, tail: str = "") -> str:
    return f"/api/v1/widget/{world.site_key}/privacy{tail}"


async def ledger(rt: Runtime, subject_id: str) -> list[ConsentRecord]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = await uow.session.scalars(
            select(ConsentRecord).where(ConsentRecord.subject_id == subject_id).order_by(ConsentRecord.seq))
        return list(rows.all())


async def may(rt: Runtime, world: World, subject_id: str, purpose: str) -> bool:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await consent_questions.may(uow, workspace_id=world.workspace_id, subject_id=subject_id, purpose=purpose)


async def started(client: httpx.AsyncClient, rt: Runtime, world: World, **consents: bool) -> dict[str, Any]:
    await set_status(rt, world.operator_id)
    return await start_chat(client, world, consents=consents)


async def marketing_job(rt: Runtime, world: World, subject_id: str, purpose: str = MARKETING) -> str | None:
    async with rt.db.unit_of_work() as uow:
        return await consent_links.enqueue_marketing_mail(rt, uow, workspace_id=world.workspace_id,
                                                          subject_id=subject_id, to="ana@example.com",
                                                          subject="Offers", text="Hello", purpose=purpose)


async def choose(client: httpx.AsyncClient, world: World, token: str, purpose: str, granted: bool,
                 **extra: Any) -> httpx.Response:
    return await client.post(privacy_url(world, "/choices"), headers={"Origin": world.origin},
                             json={"token": token, "purpose": purpose, "granted": granted, **extra})


# ---------------------------------------------------------------- defaults
async def test_every_workspace_gets_the_default_purposes(rt: Runtime, world: World) -> None:
    async with rt.db.unit_of_work(readonly=True) as uow:
        found = {p.key: p for p in await consent_notices.list_purposes(uow, world.workspace_id)}
    assert {P.SUPPORT, P.MARKETING_EMAIL, P.NEWSLETTER, P.PROFILING, P.ACTIVITY_TRACKING, MARKETING} <= set(found)
    assert found[P.SUPPORT].required
    assert found[P.SUPPORT].lawful_basis == P.CONTRACT
    assert found[P.MARKETING_EMAIL].lawful_basis == P.CONSENT
    assert await may(rt, world, "anyone", P.SUPPORT) is True
    assert await may(rt, world, "anyone", P.MARKETING_EMAIL) is False
    assert await may(rt, world, "anyone", "no_such_purpose") is False


# ---------------------------------------------------------------- the widget
async def test_a_visitor_who_ticks_nothing_chats_and_may_refuses(client: httpx.AsyncClient, rt: Runtime,
                                                                 world: World) -> None:
    chat = await started(client, rt, world)
    rows = await ledger(rt, chat["visitor_id"])
    assert [(r.purpose, r.granted, r.source) for r in rows] == [(MARKETING, False, "widget")]
    assert await may(rt, world, chat["visitor_id"], MARKETING) is False
    assert await may(rt, world, chat["visitor_id"], P.MARKETING_EMAIL) is False
    assert await marketing_job(rt, world, chat["visitor_id"]) is None
    assert (await counts(rt, "jobs"))["jobs"] == 0


async def test_grant_then_withdraw_in_the_widget_cancels_the_pending_job(client: httpx.AsyncClient, rt: Runtime,
                                                                         world: World) -> None:
    chat = await started(client, rt, world)
    token, vid = chat["token"], chat["visitor_id"]
    view = (await client.post(privacy_url(world), headers={"Origin": world.origin}, json={"token": token})).json()
    item = next(p for p in view["purposes"] if p["key"] == MARKETING)
    assert item["granted"] is False
    assert item["notice"]["text"] == "News by e-mail"
    response = await choose(client, world, token, MARKETING, True, notice_id=item["notice"]["id"])
    assert response.status_code == 200, response.text
    assert await may(rt, world, vid, MARKETING) is True
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await consent_questions.allowed_subjects(uow, workspace_id=world.workspace_id, purpose=MARKETING,
                                                        subject_ids=[vid, "someone-else"]) == {vid}
    job_id = await marketing_job(rt, world, vid)
    assert job_id is not None
    response = await choose(client, world, token, MARKETING, False)
    assert response.status_code == 200, response.text
    rows = await ledger(rt, vid)
    assert [(r.granted, r.notice_version, r.source) for r in rows] == [(False, 1, "widget"), (True, 1, "widget"),
                                                                       (False, 1, "widget")]
    assert await may(rt, world, vid, MARKETING) is False
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await jobs.get(uow, job_id) is None  # cancelled at once
        assert await consent_questions.allowed_subjects(uow, workspace_id=world.workspace_id, purpose=MARKETING,
                                                        subject_ids=[vid, "someone-else"]) == set()  # off the list
        kinds = list((await uow.session.scalars(select(jobs.Job.kind))).all())
        actions = list((await uow.session.execute(text(
            "select action from audit_events where action like 'consent.%' order by seq"))).scalars())
    assert kinds == [consent_ledger.WITHDRAWN_KIND]  # the integrations event, ids only, in the durable outbox
    assert actions == ["consent.withdrawn", "consent.granted", "consent.withdrawn"]


async def test_support_cannot_be_refused(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    chat = await started(client, rt, world)
    response = await choose(client, world, chat["token"], P.SUPPORT, False)
    assert response.status_code == 422
    assert len(await ledger(rt, chat["visitor_id"])) == 1


async def test_hostile_widget_calls_write_nothing(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    chat = await started(client, rt, world)
    other = await other_workspace(rt)
    async with rt.db.unit_of_work() as uow:
        foreign = await consent_notices.get_purpose(uow, other.workspace_id, MARKETING)
        assert foreign is not None
        [foreign_notice] = await consent_notices.notices_of(uow, foreign)
    before = await counts(rt, "consent_records", "audit_events", "jobs")
    token = chat["token"]
    cases = [
        (dict(token=token, purpose="no_such_purpose", granted=True), 404),
        (dict(token=token, purpose="Robert'); DROP TABLE", granted=True), 422),
        (dict(token=token + "x", purpose=MARKETING, granted=True), 401),
        (dict(token="", purpose=MARKETING, granted=True), 422),
        (dict(token=token, purpose=MARKETING, granted="yes"), 422),
        (dict(token=token, purpose=MARKETING, granted=True, extra=1), 422),
        (dict(token=token, purpose=MARKETING, granted=True, notice_id=foreign_notice.id), 404),
        (dict(token=token, purpose=MARKETING, granted=True, notice_id="x" * 65), 422),
    ]
    for body, status in cases:
        response = await client.post(privacy_url(world, "/choices"), headers={"Origin": world.origin}, json=body)
        assert response.status_code == status, (body, response.text)
    # The other site's key with this visitor's token: refused.
    response = await client.post(f"/api/v1/widget/{other.site_key}/privacy/choices", headers={"Origin": other.origin},
                                 json={"token": token, "purpose": MARKETING, "granted": True})
    assert response.status_code == 401
    # A foreign origin.
    response = await client.post(privacy_url(world, "/choices"), headers={"Origin": "https://evil.example"},
                                 json={"token": token, "purpose": MARKETING, "granted": True})
    assert response.status_code == 403
    assert await counts(rt, "consent_records", "audit_events", "jobs") == before


async def test_an_unknown_purpose_at_chat_start_is_refused(client: httpx.AsyncClient, rt: Runtime,
                                                           world: World) -> None:
    await set_status(rt, world.operator_id)
    before = await counts(rt, "consent_records", "visitors", "conversations")
    response = await start_chat(client, world, consents={"profiling_everything": True}, expect=422)
    assert "unknown consent purpose" in str(response)
    assert await counts(rt, "consent_records", "visitors", "conversations") == before


# ---------------------------------------------------------------- material notice changes
async def test_a_material_notice_change_stops_consent_until_answered(client: httpx.AsyncClient, rt: Runtime,
                                                                     world: World) -> None:
    chat = await started(client, rt, world, marketing=True)
    vid, token = chat["visitor_id"], chat["token"]
    assert await may(rt, world, vid, MARKETING) is True
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        purpose = await consent_notices.get_purpose(uow, world.workspace_id, MARKETING)
        assert purpose is not None
        fix = NoticeIn(text="News, and partners' offers", material=False)
        await consent_admin.publish_notice(uow, admin, purpose.id, fix)
    assert await may(rt, world, vid, MARKETING) is True  # a wording fix: still counts
    async with rt.db.unit_of_work() as uow:
        await consent_admin.publish_notice(uow, admin, purpose.id,
                                           NoticeIn(text="News and partner offers", material=True))
    assert await may(rt, world, vid, MARKETING) is False
    view = (await client.post(privacy_url(world), headers={"Origin": world.origin}, json={"token": token})).json()
    assert view["needs_answer"] is True
    item = next(p for p in view["purposes"] if p["key"] == MARKETING)
    assert item["notice"]["version"] == 3
    assert item["notice"]["text"] == "News and partner offers"
    # An answer under the old notice is refused (409): the visitor must see the new text.
    async with rt.db.unit_of_work(readonly=True) as uow:
        old = next(n for n in await consent_notices.notices_of(uow, purpose) if n.version == 1)
    assert (await choose(client, world, token, MARKETING, True, notice_id=old.id)).status_code == 409
    assert (await choose(client, world, token, MARKETING, True, notice_id=item["notice"]["id"])).status_code == 200
    assert await may(rt, world, vid, MARKETING) is True
    rows = await ledger(rt, vid)
    assert [(r.granted, r.notice_version) for r in rows] == [(True, 1), (True, 3)]
    assert rows[-1].notice_hash == crypto.sha256_hex("News and partner offers")  # the proof of the words shown
    # The exact text shown is kept by version: the old notice is unchanged.
    async with rt.db.unit_of_work(readonly=True) as uow:
        texts = {n.version: n.text for n in await consent_notices.notices_of(uow, purpose)}
    assert texts == {1: "News by e-mail", 2: "News, and partners' offers", 3: "News and partner offers"}


# ---------------------------------------------------------------- the e-mail link
async def test_the_email_link_withdraws_once_and_forgeries_are_refused(client: httpx.AsyncClient, rt: Runtime,
                                                                       world: World) -> None:
    chat = await started(client, rt, world, marketing=True)
    vid = chat["visitor_id"]
    job_id = await marketing_job(rt, world, vid)
    assert job_id is not None
    async with rt.db.unit_of_work(readonly=True) as uow:
        job = await jobs.get(uow, job_id)
        assert job is not None
        assert job.purpose == MARKETING
        payload = jobs.open_payload(rt, job)
    assert payload is not None
    header = payload["headers"]["List-Unsubscribe"]
    assert payload["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = header.strip("<>")
    assert url in payload["text"]
    path = url.split("://", 1)[1].split("/", 1)[1]
    token = unquote(path.rsplit("/", 1)[1])
    page = await client.get("/" + path)
    assert page.status_code == 200
    assert "Withdraw my consent" in page.text
    assert "News by e-mail" in page.text
    before = await counts(rt, "consent_records", "audit_events")
    # Forged, altered, other purpose: 404, nothing written.
    other_purpose = consent_links.withdrawal_token(rt, workspace_id=world.workspace_id, subject_id=vid,
                                                   purpose="newsletter")
    mac = token.split(".")[1]
    altered = other_purpose.split(".")[0] + "." + mac
    for bad in (token[:-2] + "AA", altered, "x", "a.b", "%00"):
        response = await client.post(f"/consent/withdraw/{bad}")
        assert response.status_code == 404, bad
        assert (await client.get(f"/consent/withdraw/{bad}")).status_code == 404
    assert await counts(rt, "consent_records", "audit_events") == before
    # RFC 8058 one-click POST, no cookie, no Origin.
    response = await client.post("/" + path, content=b"List-Unsubscribe=One-Click",
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert "withdrawn" in response.text.lower()
    assert await may(rt, world, vid, MARKETING) is False
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await jobs.get(uow, job_id) is None
    assert (await client.post("/" + path)).status_code == 200  # used again: nothing more appended
    rows = await ledger(rt, vid)
    assert [(r.granted, r.source, r.notice_version) for r in rows] == [(True, "widget", 1), (False, "email_link", 1)]


# ---------------------------------------------------------------- the operator's record
async def test_an_operator_records_a_statement_from_the_chat(client: httpx.AsyncClient, rt: Runtime,
                                                             world: World, app: Any) -> None:
    chat = await started(client, rt, world)
    conv, vid = chat["conversation_id"], chat["visitor_id"]
    await accept(rt, world.operator_id, conv)
    said = await say(rt, conv, "Yes, please send me your newsletter", sender="visitor", sender_id=vid)
    mine = await say(rt, conv, "Shall I?", sender="operator", sender_id=world.operator_id)
    url = f"/api/v1/conversations/{conv}/consent-statements"
    other = await other_workspace(rt)
    async with logged_in(app, world.operator_email) as op:
        before = await counts(rt, "consent_records", "audit_events")
        for body, status in (
            ({"message_id": mine["id"], "purpose": P.NEWSLETTER, "granted": True}, 404),  # not the visitor's
            ({"message_id": "nope", "purpose": P.NEWSLETTER, "granted": True}, 404),
            ({"message_id": said["id"], "purpose": "nope", "granted": True}, 404),
            ({"message_id": said["id"], "purpose": P.NEWSLETTER, "granted": 1}, 422),
        ):
            response = await op.post(url, json=body, headers={"Origin": "http://testserver"})
            assert response.status_code == status, (body, response.text)
        assert await counts(rt, "consent_records", "audit_events") == before
        response = await op.post(url, json={"message_id": said["id"], "purpose": P.NEWSLETTER, "granted": True},
                                 headers={"Origin": "http://testserver"})
        assert response.status_code == 201, response.text
    async with logged_in(app, other.admin_email) as foreign:
        response = await foreign.post(url, json={"message_id": said["id"], "purpose": P.NEWSLETTER, "granted": False},
                                      headers={"Origin": "http://testserver"})
        assert response.status_code == 404
    rows = [r for r in await ledger(rt, vid) if r.purpose == P.NEWSLETTER]
    assert [(r.granted, r.source, r.message_id, r.actor_id, r.conversation_id, r.notice_version) for r in rows] == [
        (True, "operator", said["id"], world.operator_id, conv, 1)]
    assert await may(rt, world, vid, P.NEWSLETTER) is True


# ---------------------------------------------------------------- append-only
async def test_the_ledger_refuses_update_and_delete(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    chat = await started(client, rt, world, marketing=True)
    vid = chat["visitor_id"]
    for sql in ("update consent_records set granted = false", "delete from consent_records",
                "update consent_records set subject_id = 'x'"):
        with pytest.raises((DBAPIError, IntegrityError)):
            async with rt.db.unit_of_work() as uow:
                await uow.session.execute(text(sql))
    assert [r.granted for r in await ledger(rt, vid)] == [True]
    # The one door for erasure (next issue): the flag, inside one transaction.
    async with rt.db.unit_of_work() as uow:
        assert await consent_removal.erase_subject(uow, vid) == 1
    assert await ledger(rt, vid) == []
    assert (await counts(rt, "consent_erasure"))["consent_erasure"] == 0


async def test_legitimate_interest_runs_until_the_subject_objects(client: httpx.AsyncClient, rt: Runtime,
                                                                  world: World) -> None:
    chat = await started(client, rt, world)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        purpose = await consent_notices.get_purpose(uow, world.workspace_id, P.PROFILING)
        assert isinstance(purpose, Purpose)
        await consent_admin.update_purpose(uow, admin, purpose.id, PurposePatch(lawful_basis="legitimate_interest"))
    vid = chat["visitor_id"]
    assert await may(rt, world, vid, P.PROFILING) is True
    async with rt.db.unit_of_work() as uow:
        await consent_ledger.record(rt, uow, workspace_id=world.workspace_id, subject_id=vid, purpose=P.PROFILING,
                                    granted=False, source="api")
    assert await may(rt, world, vid, P.PROFILING) is False


# ---------------------------------------------------------------- the pre-chat form names the notice shown
async def test_the_prechat_form_records_the_notice_it_showed(client: httpx.AsyncClient, rt: Runtime,
                                                             world: World) -> None:
    await set_status(rt, world.operator_id)
    config = (await client.get(f"/api/v1/widget/{world.site_key}/config", headers={"Origin": world.origin})).json()
    [shown] = config["purposes"]
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:  # a material change while the visitor fills in the form
        purpose = await consent_notices.get_purpose(uow, world.workspace_id, MARKETING)
        assert purpose is not None
        await consent_admin.publish_notice(uow, admin, purpose.id,
                                           NoticeIn(text="News and partner offers", material=True))
    chat = await start_chat(client, world, consents={MARKETING: {"granted": True, "notice_id": shown["notice_id"]}})
    [row] = await ledger(rt, chat["visitor_id"])
    assert (row.granted, row.notice_id, row.notice_version) == (True, shown["notice_id"], 1)
    assert await may(rt, world, chat["visitor_id"], MARKETING) is False  # given under the old text: ask again
    other = await other_workspace(rt)
    async with rt.db.unit_of_work(readonly=True) as uow:
        foreign = await consent_notices.get_purpose(uow, other.workspace_id, MARKETING)
        assert foreign is not None
        [foreign_notice] = await consent_notices.notices_of(uow, foreign)
    before = await counts(rt, "consent_records", "visitors", "conversations")
    for value, status in (({"granted": True, "notice_id": foreign_notice.id}, 404),
                          ({"granted": "yes"}, 422), ({"granted": True, "extra": 1}, 422), ([True], 422)):
        await start_chat(client, world, consents={MARKETING: value}, expect=status)
    assert await counts(rt, "consent_records", "visitors", "conversations") == before


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_concurrent_notice_versions_never_collide(rt: Runtime, world: World) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work(readonly=True) as uow:
        purpose = await consent_notices.get_purpose(uow, world.workspace_id, P.NEWSLETTER)
        assert purpose is not None

    async def publish(n: int) -> int:
        async with rt.db.unit_of_work() as uow:
            notice = await consent_admin.publish_notice(uow, admin, purpose.id, NoticeIn(text=f"Text {n}"))
            return notice.version

    versions = await asyncio.gather(*(publish(n) for n in range(6)))
    assert sorted(versions) == [2, 3, 4, 5, 6, 7]


async def test_a_queued_job_runs_only_if_may_still_allows_it(client: httpx.AsyncClient, rt: Runtime,
                                                             world: World) -> None:
    chat = await started(client, rt, world, marketing=True)
    vid = chat["visitor_id"]
    kept = rt.settings.data_dir / "mail"
    assert await marketing_job(rt, world, vid) is not None
    assert await JobRunner(rt).drain() >= 1
    assert len(list(kept.glob("*.eml"))) == 1  # allowed: sent (kept on disk without SMTP)
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in next(kept.glob("*.eml")).read_text()
    assert await marketing_job(rt, world, vid) is not None
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:  # not a withdrawal: the job stays queued, but may() now says no
        purpose = await consent_notices.get_purpose(uow, world.workspace_id, MARKETING)
        assert purpose is not None
        await consent_admin.publish_notice(uow, admin, purpose.id, NoticeIn(text="Partner offers too", material=True))
    assert await JobRunner(rt).drain() >= 1
    assert len(list(kept.glob("*.eml"))) == 1  # dropped at run time, nothing sent
    assert (await counts(rt, "jobs"))["jobs"] == 0
