"""Redaction at ingest, end to end on SQLite and PostgreSQL: card numbers and IBANs masked in every
visitor field (message, pre-chat answer, offline request) at rest (raw SQL read + decrypt) and in
what the operator's socket receives; a digit string that fails Luhn is kept; custom patterns;
invalid patterns refused on save; a catastrophic pattern does not stall the writer; the originals
need ``chats.view_redacted`` and each view is audited; the widget config says what is masked."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update

from confide.core.runtime import Runtime
from confide.redaction import service as redaction
from confide.redaction.models import RedactionPolicy
from confide.redaction.schemas import PolicyIn
from tests import wsclient as wc
from tests.conftest import Live, World
from tests.helpers_api import SELF, actor, count, leave_message, logged_in, other_workspace, say, set_status, start_chat

VISA = "4111 1111 1111 1111"
AMEX = "3782-822463-10005"
MASTERCARD = "5555555555554444"
IBAN = "DE89 3704 0044 0532 0130 00"
ORDER = "1234567890123456"  # an order number: fails Luhn
POLICY = {
    "cards": True,
    "ibans": True,
    "keep_originals": True,
    "patterns": [{"name": "ticket", "regex": "TCK-[0-9]{5}", "enabled": True}],
}


async def set_policy(app: Any, world: World, body: dict[str, Any] | None = None) -> dict[str, Any]:
    async with logged_in(app, world.admin_email) as http:
        response = await http.put(f"/api/v1/sites/{world.site_id}/redaction", json=body or POLICY, headers=SELF)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def chatting(rt: Runtime, client: httpx.AsyncClient, world: World,
                   fields: dict[str, Any] | None = None) -> dict[str, Any]:
    await set_status(rt, world.operator_id)
    return await start_chat(client, world, fields)


async def raw(rt: Runtime, sql: str, **params: Any) -> list[Any]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return list((await uow.session.execute(text(sql), params)).all())


async def decrypt(rt: Runtime, visitor_id: str, blob: bytes, aad: str) -> str:
    async with rt.db.unit_of_work(readonly=True) as uow:
        key = await rt.keyring.get(uow.session, visitor_id)
    return key.decrypt(blob, aad)


async def decrypt_json(rt: Runtime, visitor_id: str, blob: bytes, aad: str) -> Any:
    async with rt.db.unit_of_work(readonly=True) as uow:
        key = await rt.keyring.get(uow.session, visitor_id)
    return key.decrypt_json(blob, aad)


def _nothing_clear(value: str) -> None:
    compact = value.replace(" ", "").replace("-", "")
    for secret in (VISA, AMEX, MASTERCARD, IBAN):
        s = secret.replace(" ", "").replace("-", "")
        assert s not in compact, value
        assert s[:-4] not in compact, value


async def test_masked_at_rest_and_in_what_the_operator_receives(
    rt: Runtime, world: World, app: Any, live: Live
) -> None:
    await set_policy(app, world)
    op, _, _cookie = await wc.operator_connect(live=live, email=world.operator_email)
    await wc.go_online(ws=op)
    chat = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin,
                               extra_fields={"order": f"card {MASTERCARD}", "phone": "4222222222222"})
    await wc.accept_offer(ws=op, conversation_id=chat.conversation_id)
    visitor, _ = await wc.visitor_hello(live=live, chat=chat)

    said = f"visa {VISA}, amex {AMEX}, iban {IBAN}, order {ORDER}, ticket TCK-12345"
    await wc.send(ws=visitor, frame={"type": "message", "client_id": "v-1", "text": said})
    got = await wc.recv_until(ws=op, type="message", where=lambda f: f["message"]["sender"] == "visitor")
    expected = (
        "visa •••• •••• •••• 1111, amex ••••-••••••-•0005, iban [IBAN ••••3000], "
        f"order {ORDER}, ticket [ticket]"
    )
    assert got["message"]["text"] == expected
    ack = await wc.recv_until(ws=visitor, type="ack")
    assert ack["message"]["text"] == expected  # the visitor sees what was kept

    # the operator's reply is masked too
    await wc.send(ws=op, frame={"type": "message", "conversation_id": chat.conversation_id, "client_id": "o-1",
                                "text": f"did you mean {MASTERCARD}?"})
    reply = await wc.recv_until(ws=visitor, type="message", where=lambda f: f["message"]["sender"] == "operator")
    assert reply["message"]["text"] == "did you mean ••••••••••••4444?"

    # at rest: raw rows, decrypted with the visitor's key
    rows = await raw(rt, "select id, sender, body_enc from messages where conversation_id = :c order by seq",
                     c=chat.conversation_id)
    bodies = {r.sender: await decrypt(rt, chat.visitor_id, r.body_enc, f"messages.body:{r.id}") for r in rows}
    assert bodies["visitor"] == expected
    assert bodies["operator"] == "did you mean ••••••••••••4444?"
    [(fields_enc, phone_enc)] = await raw(rt, "select fields_enc, phone_enc from visitors where id = :v",
                                          v=chat.visitor_id)
    fields = await decrypt_json(rt, chat.visitor_id, fields_enc, f"visitors.fields:{chat.visitor_id}")
    assert fields["order"] == "card ••••••••••••4444"
    phone = await decrypt(rt, chat.visitor_id, phone_enc, f"visitors.phone:{chat.visitor_id}")
    assert phone == "•••••••••2222"
    for value in [*bodies.values(), fields["order"], phone]:
        _nothing_clear(value)
    # the word index holds no card number either: the original digits find nothing
    async with logged_in(app, world.admin_email) as http:
        found = await http.get("/api/v1/conversations", params={"text": "4111"})
        assert found.status_code == 200
        assert found.json()["total"] == 0

    # the originals were kept (message, reply, two pre-chat answers), encrypted under the visitor's key
    originals = await raw(rt, "select id, ref_kind, text_enc from redacted_originals where subject_id = :v",
                          v=chat.visitor_id)
    kinds = sorted(r.ref_kind for r in originals)
    assert kinds == ["message", "message", "prechat", "prechat"]
    texts = {await decrypt(rt, chat.visitor_id, r.text_enc, f"redacted_originals.text:{r.id}") for r in originals}
    assert said in texts


async def test_offline_request_and_its_answers_are_masked(
    rt: Runtime, world: World, app: Any, client: httpx.AsyncClient
) -> None:
    await set_policy(app, world, {**POLICY, "keep_originals": False})
    made = await leave_message(client, world, f"please refund {AMEX} to {IBAN.lower()}, order {ORDER}",
                               {"name": "Ana", "email": "ana@example.com", "order": VISA})
    [(vid, enc)] = await raw(rt, "select visitor_id, message_enc from offline_requests where id = :i", i=made["id"])
    message = await decrypt(rt, vid, enc, f"offline_requests.message:{made['id']}")
    assert message == f"please refund ••••-••••••-•0005 to [IBAN ••••3000], order {ORDER}"
    [(fields_enc,)] = await raw(rt, "select fields_enc from visitors where id = :v", v=vid)
    assert (await decrypt_json(rt, vid, fields_enc, f"visitors.fields:{vid}"))["order"] == "•••• •••• •••• 1111"
    assert await count(rt, "redacted_originals") == 0  # the site keeps no originals
    # the back office shows the masked text
    async with logged_in(app, world.operator_email) as http:
        listed = (await http.get("/api/v1/offline-requests")).json()["items"]
    assert listed[0]["message"] == message


async def test_nothing_is_masked_without_a_policy(rt: Runtime, world: World, client: httpx.AsyncClient) -> None:
    started = await chatting(rt, client, world)
    stored = await say(rt, started["conversation_id"], f"card {VISA}", sender_id=started["visitor_id"])
    assert stored["text"] == f"card {VISA}"
    config = (await client.get(f"/api/v1/widget/{world.site_key}/config", headers={"Origin": world.origin})).json()
    assert config["redaction"] == {"cards": False, "ibans": False, "custom": False}


async def test_widget_config_says_what_is_masked(world: World, app: Any, client: httpx.AsyncClient) -> None:
    await set_policy(app, world, {"cards": True})
    config = (await client.get(f"/api/v1/widget/{world.site_key}/config", headers={"Origin": world.origin})).json()
    assert config["redaction"] == {"cards": True, "ibans": False, "custom": False}
    module = await client.get("/widget/redaction.js")
    assert module.status_code == 200
    assert "redactionNotice" in module.text


async def test_a_change_applies_to_the_next_message(rt: Runtime, world: World, app: Any,
                                                    client: httpx.AsyncClient) -> None:
    started = await chatting(rt, client, world)
    cid, vid = started["conversation_id"], started["visitor_id"]
    first = await set_policy(app, world, {"cards": True})
    assert (await say(rt, cid, f"a {VISA}", sender_id=vid))["text"] == "a •••• •••• •••• 1111"
    second = await set_policy(app, world, {"cards": False, "patterns": [{"name": "n", "regex": "secret"}]})
    assert second["version"] == first["version"] + 1
    assert (await say(rt, cid, f"a {VISA} secret", sender_id=vid))["text"] == f"a {VISA} [n]"
    # a custom pattern switched off does nothing
    await set_policy(app, world, {"patterns": [{"name": "n", "regex": "secret", "enabled": False}]})
    assert (await say(rt, cid, "secret", sender_id=vid))["text"] == "secret"


@pytest.mark.parametrize(
    ("regex", "why"),
    [("(", "does not compile"), ("a*", "empty string"), ("(a+)+$", "too slow"), ("x" * 400, "300")],
)
async def test_invalid_patterns_are_refused_on_save(rt: Runtime, world: World, app: Any, regex: str,
                                                    why: str) -> None:
    async with logged_in(app, world.admin_email) as http:
        response = await http.put(f"/api/v1/sites/{world.site_id}/redaction",
                                  json={"cards": True, "patterns": [{"name": "bad", "regex": regex}]}, headers=SELF)
        assert response.status_code == 422, response.text
        assert why in response.text
        # the dashboard form says why, with what was typed, and saves nothing
        page = await http.post(f"/app/settings/redaction/{world.site_id}", headers=SELF,
                               data={"cards": "1", "p-count": "1", "p-0-name": "bad", "p-0-regex": regex,
                                     "p-0-enabled": "1"})
        assert page.status_code == 422
        assert why in page.text
    assert await count(rt, "redaction_policies") == 0


async def test_hostile_policies(rt: Runtime, world: World, app: Any) -> None:
    other = await other_workspace(rt)
    async with logged_in(app, world.admin_email) as http:
        for body in (
            {"cards": True, "surprise": 1},
            {"cards": "yes please"},
            {"patterns": [{"name": "", "regex": "x"}]},
            {"patterns": [{"name": "a<b>", "regex": "x"}]},
            {"patterns": [{"name": "a", "regex": "x"}, {"name": "A", "regex": "y"}]},
            {"patterns": [{"name": f"p{i}", "regex": "x"} for i in range(11)]},
            {"patterns": [{"name": "a", "regex": 5}]},
        ):
            response = await http.put(f"/api/v1/sites/{world.site_id}/redaction", json=body, headers=SELF)
            assert response.status_code == 422, (body, response.text)
        foreign = await http.put(f"/api/v1/sites/{other.site_id}/redaction", json={"cards": True}, headers=SELF)
        assert foreign.status_code == 404
    async with logged_in(app, world.operator_email) as http:  # an operator may not change settings
        denied = await http.put(f"/api/v1/sites/{world.site_id}/redaction", json={"cards": True}, headers=SELF)
        assert denied.status_code == 403
    assert await count(rt, "redaction_policies") == 0


async def test_a_catastrophic_pattern_does_not_stall_the_writer(rt: Runtime, world: World, app: Any,
                                                                client: httpx.AsyncClient) -> None:
    await set_policy(app, world, {"patterns": [{"name": "x", "regex": "zz"}]})
    # A pattern that slipped past the save-time probes (written by hand here)
    async with rt.db.unit_of_work() as uow:
        await uow.session.execute(
            update(RedactionPolicy)
            .where(RedactionPolicy.site_id == world.site_id)
            .values(patterns=[{"name": "slow", "regex": "(a+)+$", "enabled": True}],
                    version=RedactionPolicy.version + 1)
        )
    started = await chatting(rt, client, world)
    start = time.perf_counter()
    stored = await say(rt, started["conversation_id"], "a" * 3990 + "!", sender_id=started["visitor_id"])
    elapsed = time.perf_counter() - start
    assert stored["text"].startswith("[message withheld")
    assert elapsed < 2.0, elapsed
    # the next, harmless message goes through as usual
    assert (await say(rt, started["conversation_id"], "hello", sender_id=started["visitor_id"]))["text"] == "hello"


async def test_originals_need_the_permission_and_each_view_is_audited(
    rt: Runtime, world: World, app: Any, client: httpx.AsyncClient
) -> None:
    await set_policy(app, world)
    started = await chatting(rt, client, world, {"name": "Ana", "email": "ana@example.com", "order": VISA})
    cid, vid = started["conversation_id"], started["visitor_id"]
    await say(rt, cid, f"my iban is {IBAN}", sender_id=vid)
    offline = await leave_message(client, world, f"card {AMEX}")
    before = await count(rt, "audit_events")
    async with logged_in(app, world.operator_email) as http:  # the operator role lacks chats.view_redacted
        for url in (f"/api/v1/conversations/{cid}/redacted", f"/api/v1/offline-requests/{offline['id']}/redacted"):
            denied = await http.get(url)
            assert denied.status_code == 403
            assert denied.json() == {"detail": "you do not have permission to do this", "code": "forbidden"}
        assert (await http.get(f"/app/chats/{cid}/redacted")).status_code == 403
        assert "/redacted" not in (await http.get(f"/app/chats/{cid}")).text
    async with logged_in(app, world.admin_email) as http:
        seen = await http.get(f"/api/v1/conversations/{cid}/redacted")
        assert seen.status_code == 200, seen.text
        items = seen.json()["items"]
        assert sorted((i["ref_kind"], i["text"]) for i in items) == [
            ("message", f"my iban is {IBAN}"),
            ("prechat", VISA),
        ]
        off = (await http.get(f"/api/v1/offline-requests/{offline['id']}/redacted")).json()["items"]
        assert [(i["ref_kind"], i["ref_id"], i["text"]) for i in off] == [("offline", offline["id"], f"card {AMEX}")]
        missing = await http.get("/api/v1/conversations/nope/redacted")
        assert missing.status_code == 404
        transcript = await http.get(f"/app/chats/{cid}")
        assert f"/app/chats/{cid}/redacted" in transcript.text
        page = await http.get(f"/app/chats/{cid}/redacted")
        assert page.status_code == 200
        assert IBAN in page.text
    audited = await raw(rt, "select action, actor_id, target_type, target_id, detail from audit_events"
                            " where action = 'redaction.originals_viewed' order by seq")
    assert [(a.actor_id, a.target_type, a.target_id) for a in audited] == [
        (world.admin_id, "conversation", cid),
        (world.admin_id, "offline_request", offline["id"]),
        (world.admin_id, "conversation", cid),  # the dashboard page
    ]
    assert audited[0].detail == '{"count":2}'
    assert await count(rt, "audit_events") > before
    # the audit rows carry no original text
    assert not await raw(rt, "select 1 from audit_events where detail like '%4111%' or detail like '%DE89%'")


async def test_settings_page(rt: Runtime, world: World, app: Any) -> None:
    async with logged_in(app, world.admin_email) as http:
        page = await http.get("/app/settings/redaction")
        assert page.status_code == 200
        assert "Mask payment card numbers" in page.text
        saved = await http.post(f"/app/settings/redaction/{world.site_id}", headers=SELF,
                                data={"cards": "1", "ibans": "1", "p-count": "2", "p-0-name": "ticket",
                                      "p-0-regex": "TCK-[0-9]{5}", "p-0-enabled": "1"})
        assert saved.status_code == 303, saved.text
        again = await http.get("/app/settings/redaction")
        assert "Masks: card numbers, IBANs, ticket" in again.text
        policy = (await http.get(f"/api/v1/sites/{world.site_id}/redaction")).json()
    assert (policy["cards"], policy["ibans"], policy["keep_originals"]) == (True, True, False)
    assert policy["patterns"] == [{"name": "ticket", "regex": "TCK-[0-9]{5}", "enabled": True}]
    changed = await raw(rt, "select target_id from audit_events where action = 'redaction.policy_changed'")
    assert [r.target_id for r in changed] == [world.site_id]


@pytest.mark.parametrize("db_kind", ["postgresql"])  # a race needs two writers at once
async def test_concurrent_saves_each_bump_the_version(rt: Runtime, world: World) -> None:
    """Two administrators saving at once (PostgreSQL: two connections): one upsert each, no lost
    version, no duplicate-key failure; the writers then compile the last version."""
    admin = await actor(rt, world.admin_id)

    async def save(cards: bool) -> None:
        async with rt.db.unit_of_work() as uow:
            await redaction.set_policy(rt, uow, admin, world.site_id, PolicyIn(cards=cards, ibans=not cards))

    await asyncio.gather(*(save(i % 2 == 0) for i in range(6)))
    [(version,)] = await raw(rt, "select version from redaction_policies where site_id = :s", s=world.site_id)
    assert version == 6
    assert await count(rt, "redaction_policies") == 1
