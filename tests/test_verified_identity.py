"""Verified visitor identity (ADR 0022): a claim signed with the site's secret links visits and
devices to one person and brings their history; anything else is ignored and leaves no trace."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from confide.auth import visitor_tokens
from confide.core import crypto
from confide.core.errors import NotFound
from confide.core.runtime import Runtime
from confide.permissions.access import access_conversation_by_id
from confide.verified import service as verified
from tests.conftest import World
from tests.helpers_api import accept, actor, close, counts, other_workspace, say, set_status, start_chat

TABLES = ("visitors", "visitor_terms", "conversations", "subject_keys", "verified_identities")


async def new_secret(rt: Runtime, world: World, site_id: str | None = None) -> str:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        return await verified.rotate_secret(rt, uow, admin, site_id or world.site_id)


def identity(secret: str, user_id: str = "user-42", email: str = "ana@example.com", name: str = "Ana Verified",
             **over: Any) -> dict[str, Any]:
    claim = {"id": user_id, "email": email, "name": name, "hash": crypto.identity_signature(secret, user_id, email)}
    claim.update(over)
    return claim


async def identify(client: httpx.AsyncClient, world: World, claim: Any, expect: int = 200) -> dict[str, Any]:
    response = await client.post(f"/api/v1/widget/{world.site_key}/identity", json={"identity": claim},
                                 headers={"Origin": world.origin})
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result


async def raw(rt: Runtime, sql: str) -> list[Any]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return list((await uow.session.execute(text(sql))).all())


async def test_a_valid_identity_links_two_visits_and_brings_the_history(
    client: httpx.AsyncClient, rt: Runtime, world: World
) -> None:
    secret = await new_secret(rt, world)
    await set_status(rt, world.operator_id)
    # Nothing is stored when the widget is opened by a person who never chatted.
    assert await identify(client, world, identity(secret)) == {"verified": True, "conversations": []}
    assert (await counts(rt, *TABLES))["verified_identities"] == 0
    first = await start_chat(client, world, {"name": "Typed Name"}, identity=identity(secret))
    assert first["verified"] is True
    await accept(rt, world.operator_id, first["conversation_id"])
    await say(rt, first["conversation_id"], "my parcel never came", sender_id=first["visitor_id"])
    await close(rt, world.operator_id, first["conversation_id"])
    # A second visit (another device: no token kept) gets the same person.
    second = await start_chat(client, world, {"name": "Someone"}, identity=identity(secret))
    assert second["visitor_id"] == first["visitor_id"]
    assert second["conversation_id"] != first["conversation_id"]
    assert (await counts(rt, *TABLES))["visitors"] == 1
    assert (await counts(rt, *TABLES))["verified_identities"] == 1
    # The verified name and e-mail fill the visitor's fields (encrypted; the id is never stored).
    rows = await raw(rt, "select name_enc, email_bidx from visitors")
    assert b"Ana" not in rows[0][0]
    assert rows[0][1] == rt.bidx.email(world.workspace_id, "ana@example.com")
    dump = repr(await raw(rt, "select * from verified_identities"))
    assert "user-42" not in dump
    assert "ana@example.com" not in dump
    # A third device opening the widget: a token for that person and both conversations.
    found = await identify(client, world, identity(secret))
    assert found["verified"] is True
    assert found["visitor_id"] == first["visitor_id"]
    ids = [c["id"] for c in found["conversations"]]
    assert ids == [second["conversation_id"], first["conversation_id"]]
    old = found["conversations"][1]
    assert old["status"] == "closed"
    assert "my parcel never came" in [m["text"] for m in old["messages"]]
    token = visitor_tokens.verify(rt.visitor_tokens, found["token"], site_id=world.site_id)
    assert token.visitor_id == first["visitor_id"]
    # The operator's view says "verified" and lists the earlier conversation.
    from confide.chats import service as chats
    async with rt.db.unit_of_work(readonly=True) as uow:
        conv = await chats.lock_conversation(uow, second["conversation_id"])
        assert conv is not None
        view = await chats.operator_view(rt, uow, conv)
    assert view["visitor"]["verified"] is True
    assert view["visitor"]["name"] == "Ana Verified"
    assert [c["id"] for c in view["visitor"]["earlier"]] == [first["conversation_id"]]


async def test_a_verified_token_reaches_no_one_elses_conversations(
    client: httpx.AsyncClient, rt: Runtime, world: World
) -> None:
    secret = await new_secret(rt, world)
    await set_status(rt, world.operator_id)
    ana = await start_chat(client, world, identity=identity(secret))
    bob = await start_chat(client, world, identity=identity(secret, "user-7", "bob@example.com", "Bob"))
    anon = await start_chat(client, world)
    assert len({ana["visitor_id"], bob["visitor_id"], anon["visitor_id"]}) == 3
    found = await identify(client, world, identity(secret))
    assert [c["id"] for c in found["conversations"]] == [ana["conversation_id"]]
    me = visitor_tokens.verify(rt.visitor_tokens, found["token"], site_id=world.site_id)
    async with rt.db.unit_of_work(readonly=True) as uow:
        for other in (bob, anon):
            with pytest.raises(NotFound):
                await access_conversation_by_id(uow.session, me, other["conversation_id"])


@pytest.mark.parametrize("case", ["wrong_hmac", "other_site_secret", "tampered_email", "other_user", "missing_hash",
                                  "no_secret", "uppercase_other"])
async def test_a_claim_that_does_not_verify_is_ignored(
    client: httpx.AsyncClient, rt: Runtime, world: World, case: str
) -> None:
    await set_status(rt, world.operator_id)
    if case == "no_secret":
        claim = identity("cfid_not-this-sites-secret")
    else:
        secret = await new_secret(rt, world)
        other = await other_workspace(rt)
        foreign = await new_secret(rt, other, other.site_id)
        claim = {
            "wrong_hmac": identity(secret, hash="0" * 64),
            "other_site_secret": identity(foreign),
            "tampered_email": identity(secret, email="ana@example.com") | {"email": "eve@example.com"},
            "other_user": identity(secret, "user-1") | {"id": "user-2"},
            "missing_hash": {k: v for k, v in identity(secret).items() if k != "hash"},
            "uppercase_other": identity(secret, hash=crypto.identity_signature(secret, "user-42", "").upper()),
        }[case]
        # A first, genuine visit of this person exists: a bad claim must not reach it.
        genuine = await start_chat(client, world, identity=identity(secret))
    before = await counts(rt, *TABLES)
    with capture_logs() as logs:
        assert await identify(client, world, claim) == {"verified": False}
        started = await start_chat(client, world, {"name": "Eve", "email": "eve@example.com"}, identity=claim)
    assert started["verified"] is False
    if case != "no_secret":
        assert started["visitor_id"] != genuine["visitor_id"]
    after = await counts(rt, *TABLES)
    # A new anonymous visitor, nothing about the claim: no identity row, no second link.
    assert after["verified_identities"] == before["verified_identities"]
    assert after["visitors"] == before["visitors"] + 1
    lines = [e for e in logs if e["event"] == "identity_claim_ignored"]
    assert len(lines) == 2, logs
    assert {k for e in lines for k in e} == {"event", "log_level", "site_id", "reason"}
    assert "user-42" not in repr(logs)
    assert "example.com" not in repr(logs)


async def test_rotating_the_secret_invalidates_old_signatures_and_keeps_the_person(
    client: httpx.AsyncClient, rt: Runtime, world: World
) -> None:
    await set_status(rt, world.operator_id)
    old = await new_secret(rt, world)
    first = await start_chat(client, world, identity=identity(old))
    new = await new_secret(rt, world)
    assert new != old
    assert new.startswith("cfid_")
    assert len(new) >= 5 + 43
    assert await identify(client, world, identity(old)) == {"verified": False}
    found = await identify(client, world, identity(new))
    assert found["visitor_id"] == first["visitor_id"]
    # One secret row per site; the old one's key is destroyed; both rotations audited.
    assert len(await raw(rt, "select id from identity_secrets")) == 1
    actions = [r[0] for r in await raw(rt, "select action from audit_events order by seq")]
    assert actions.count("settings.identity_secret_rotated") == 2
    # Removing it turns verification off: every claim is ignored.
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await verified.remove_secret(rt, uow, admin, world.site_id)
    assert await identify(client, world, identity(new)) == {"verified": False}


async def test_only_settings_manage_may_rotate_and_only_in_its_workspace(rt: Runtime, world: World) -> None:
    from confide.core.errors import DomainError
    operator = await actor(rt, world.operator_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(DomainError) as denied:
            await verified.rotate_secret(rt, uow, operator, world.site_id)
    assert denied.value.status == 403
    other = await other_workspace(rt)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(NotFound):
            await verified.rotate_secret(rt, uow, admin, other.site_id)
    assert await raw(rt, "select id from identity_secrets") == []


@pytest.mark.parametrize("claim", [
    {"id": "x" * 257, "hash": "a" * 64},
    {"id": 42, "hash": "a" * 64},
    {"id": "u", "email": ["a@b.c"], "hash": "a" * 64},
    {"id": "u", "name": "n" * 201, "hash": "a" * 64},
    {"id": "u", "hash": "a" * 129},
    {"id": "u", "hash": "a" * 64, "role": "admin"},
    {"id": "", "hash": "a" * 64},
    "user-42",
    None,
])
async def test_hostile_claims_are_refused_cleanly(client: httpx.AsyncClient, rt: Runtime, world: World,
                                                  claim: Any) -> None:
    await new_secret(rt, world)
    await set_status(rt, world.operator_id)
    before = await counts(rt, *TABLES)
    await identify(client, world, claim, expect=422)
    await start_chat(client, world, identity=claim, expect=None if claim is None else 422)
    if claim is not None:
        assert await counts(rt, *TABLES) == before


async def test_control_characters_in_the_id_are_ignored(client: httpx.AsyncClient, rt: Runtime,
                                                        world: World) -> None:
    secret = await new_secret(rt, world)
    # "a\nb" with e-mail "" signs the same bytes as id "a" with e-mail "b": refused, not verified.
    claim = identity(secret, "a\nb", "")
    assert await identify(client, world, claim) == {"verified": False}


@pytest.mark.parametrize("db_kind", ["postgresql"])  # SQLite serialises writers: no race to test
async def test_a_concurrent_first_visit_from_two_devices_makes_one_person(
    client: httpx.AsyncClient, rt: Runtime, world: World, db_kind: str
) -> None:
    secret = await new_secret(rt, world)
    await set_status(rt, world.operator_id)
    results = await asyncio.gather(*[start_chat(client, world, identity=identity(secret)) for _ in range(6)])
    assert len({r["visitor_id"] for r in results}) == 1
    assert len({r["conversation_id"] for r in results}) == 6
    after = await counts(rt, *TABLES)
    assert after["verified_identities"] == 1
    assert after["visitors"] == 1
    assert after["subject_keys"] == 1 + 1  # the person's key and the site secret's key


async def test_the_settings_page_shows_a_new_secret_once(app: Any, rt: Runtime, world: World) -> None:
    from tests.helpers_api import SELF, logged_in
    async with logged_in(app, world.admin_email) as admin:
        page = await admin.get("/app/settings/identity")
        assert page.status_code == 200
        assert "Verification is off" in page.text
        made = await admin.post(f"/app/settings/identity/{world.site_id}/secret", headers=SELF)
        assert made.status_code == 200
        assert made.headers["cache-control"] == "no-store"
        stored = await raw(rt, "select secret_enc from identity_secrets")
        secret = made.text.split('readonly value="', 1)[1].split('"', 1)[0]
        assert secret.startswith("cfid_")
        assert secret.encode() not in stored[0][0]  # encrypted at rest
        again = await admin.get("/app/settings/identity")
        assert secret not in again.text
        assert "Verification is on" in again.text
        off = await admin.post(f"/app/settings/identity/{world.site_id}/remove", headers=SELF)
        assert off.status_code == 303
    assert await raw(rt, "select id from identity_secrets") == []
    async with logged_in(app, world.operator_email) as operator:
        denied = await operator.post(f"/app/settings/identity/{world.site_id}/secret", headers=SELF)
        assert denied.status_code == 403
    assert await raw(rt, "select id from identity_secrets") == []


def test_the_documented_test_vector_is_what_the_server_checks() -> None:
    from pathlib import Path
    doc = (Path(__file__).parent.parent / "docs" / "privacy" / "verified-identity.md").read_text()
    expected = crypto.identity_signature("cfid_test", "user-42", "ana@example.com")
    assert f"`{expected}`" in doc
    assert crypto.identity_signature_valid("cfid_test", "user-42", "ana@example.com", expected.upper())
    assert not crypto.identity_signature_valid("cfid_test", "user-42", "", expected)


@pytest.mark.parametrize("db_kind", ["postgresql"])  # SQLite serialises writers: no race to test
async def test_two_administrators_rotating_at_once_leave_one_secret(rt: Runtime, world: World, db_kind: str) -> None:
    from confide.core.errors import Conflict
    admin = await actor(rt, world.admin_id)

    async def rotate() -> str:
        async with rt.db.unit_of_work() as uow:
            return await verified.rotate_secret(rt, uow, admin, world.site_id)

    results = await asyncio.gather(*[rotate() for _ in range(4)], return_exceptions=True)
    won = [r for r in results if isinstance(r, str)]
    assert won
    assert all(isinstance(r, (str, Conflict)) for r in results), results
    rows = await raw(rt, "select id from identity_secrets")
    assert len(rows) == 1
    keys = await raw(rt, f"select count(*) from subject_keys where subject_id = '{rows[0][0]}'")  # noqa: S608
    assert keys[0][0] == 1
