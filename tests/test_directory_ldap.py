"""LDAP / Active Directory log-in against a real slapd on loopback (tests/ldap_server.py): through the
dashboard's log-in form, the account created at first log-in with its mapped role and department,
every refusal audited with a reason code (never the typed login), RFC 4515 escaping, StartTLS and
LDAPS with a certificate made in the test, and the periodic re-check ending a live session of a
user disabled or removed in the directory."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from confide.audit.models import AuditEvent
from confide.auth.providers import ldap
from confide.core import clock
from confide.core.runtime import Runtime
from confide.identity import service as identity
from confide.identity.models import DirectoryAccount, LdapDirectory
from confide.identity.schemas import LdapSettingsIn
from confide.users.models import Operator, OperatorSession
from confide.worker import scheduler
from tests.conftest import World, free_port
from tests.helpers_api import actor
from tests.ldap_server import PEOPLE, SERVICE_DN, SERVICE_PW, USER_FILTER, Slapd, start_slapd

ALICE_PW = "alice-directory-pw"
ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    yield from directory_with_users(tmp_path)


def directory_with_users(tmp_path: Path) -> Iterator[Slapd]:
    """slapd with alice (chat-admins, chat-support), bob (disabled) and carol (chat-support)."""
    server = start_slapd(tmp_path / "slapd")
    alice = server.add_user("alice", password=ALICE_PW, mail="alice@corp.example", name="Alice Smith", sam="asmith",
                            uac=512)
    server.add_user("bob", password="bob-directory-pw", mail="bob@corp.example", name="Bob Jones", uac=514)
    carol = server.add_user("carol", password="carol-directory-pw", mail="carol@corp.example", name="Carol King")
    server.add_group("chat-admins", [alice])
    server.add_group("chat-support", [alice, carol])
    yield server
    server.stop()


def config(server: Slapd, **over: Any) -> ldap.LdapConfig:
    values: dict[str, Any] = {"urls": (server.url,), "tls": "none", "ca_pem": None, "bind_dn": SERVICE_DN,
                              "bind_password": SERVICE_PW, "base_dn": PEOPLE, "user_filter": USER_FILTER,
                              "timeout_s": 3.0}
    return ldap.LdapConfig(**{**values, **over})


async def configure(rt: Runtime, world: World, server: Slapd, **over: Any) -> None:
    admin = await actor(rt, world.admin_id)
    data = {
        "enabled": True, "server_urls": [server.url], "tls_mode": "starttls", "ca_cert_pem": server.ca_pem,
        "bind_dn": SERVICE_DN, "bind_password": SERVICE_PW, "user_base_dn": PEOPLE, "user_filter": USER_FILTER,
        "group_roles": [{"group": "CN=chat-admins,OU=groups,DC=example,DC=test", "role": "administrator"}],
        "group_departments": [{"group": "cn=chat-support,ou=groups,dc=example,dc=test",
                               "department_id": world.department_id}],
        "default_role": "operator", "auto_create": True, "recheck_interval_s": 60,
    }
    async with rt.db.unit_of_work() as uow:
        await identity.save_ldap(rt, uow, admin, LdapSettingsIn.model_validate({**data, **over}))


async def form_login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/login", data={"email": email, "password": password, "next": "/app"}, headers=ORIGIN)


async def audit_rows(rt: Runtime, action: str) -> list[AuditEvent]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return list((await uow.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                                .order_by(AuditEvent.seq))).all())


async def operator_by_email(rt: Runtime, email: str) -> Operator | None:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await uow.session.scalar(select(Operator).where(Operator.email == email))


async def department_ids(rt: Runtime, operator_id: str) -> list[str]:
    from confide.users import operators as user_operators

    async with rt.db.unit_of_work(readonly=True) as uow:
        return await user_operators.department_ids_of(uow, operator_id)


# ---------------------------------------------------------------- the protocol, against slapd
async def test_search_then_bind_over_plain_starttls_and_ldaps(slapd: Slapd) -> None:
    for cfg in (config(slapd), config(slapd, tls="starttls", ca_pem=slapd.ca_pem),
                config(slapd, urls=(slapd.ldaps_url,), tls="ldaps", ca_pem=slapd.ca_pem)):
        entry = await ldap.authenticate(cfg, "alice@corp.example", ALICE_PW)
        assert entry.dn == f"uid=alice,{PEOPLE}"
        assert entry.email == "alice@corp.example"
        assert entry.name == "Alice Smith"
        assert not entry.disabled
        assert set(entry.groups) == {"cn=chat-admins,ou=groups,dc=example,dc=test",
                                     "cn=chat-support,ou=groups,dc=example,dc=test"}
    # The AD login name works through the same filter.
    assert (await ldap.authenticate(config(slapd), "asmith", ALICE_PW)).dn == f"uid=alice,{PEOPLE}"


async def test_tls_refuses_a_certificate_it_cannot_verify(slapd: Slapd) -> None:
    other_ca = ldap_server_other_ca(slapd)
    for cfg in (config(slapd, tls="starttls", ca_pem=other_ca),
                config(slapd, urls=(slapd.ldaps_url,), tls="ldaps", ca_pem=other_ca)):
        with pytest.raises(ldap.LdapRefused) as refused:
            await ldap.authenticate(cfg, "alice@corp.example", ALICE_PW)
        assert refused.value.code == "tls_failed"


def ldap_server_other_ca(slapd: Slapd) -> str:
    from tests.ldap_server import self_signed

    folder = slapd.folder / "other"
    folder.mkdir()
    return self_signed(folder)


async def test_refusals_have_codes(slapd: Slapd) -> None:
    cases = [
        ("alice@corp.example", "wrong password", "bad_credentials"),
        ("bob@corp.example", "bob-directory-pw", "disabled"),  # userAccountControl 514: bit 2 set
        ("nobody@corp.example", "whatever-pw", "not_found"),
    ]
    for login, password, code in cases:
        with pytest.raises(ldap.LdapRefused) as refused:
            await ldap.authenticate(config(slapd), login, password)
        assert refused.value.code == code, login


@pytest.mark.parametrize("password", ["", " ", "\t \n"])
async def test_empty_password_is_refused_before_any_connection(password: str) -> None:
    # Nothing listens on this port: any connection attempt would say "unreachable".
    cfg = ldap.LdapConfig((f"ldap://127.0.0.1:{free_port()}",), "none", None, SERVICE_DN, SERVICE_PW, PEOPLE,
                          USER_FILTER, timeout_s=1)
    with pytest.raises(ldap.LdapRefused) as refused:
        await ldap.authenticate(cfg, "alice@corp.example", password)
    assert refused.value.code == "empty_password"
    with pytest.raises(ldap.LdapRefused) as sync_refused:
        ldap.authenticate_sync(cfg, "alice@corp.example", password)
    assert sync_refused.value.code == "empty_password"


def test_filter_values_are_escaped_per_rfc_4515() -> None:
    assert ldap.build_filter("(uid={login})", "*)(uid=*") == r"(uid=\2a\29\28uid=\2a)"
    assert ldap.build_filter("(|(mail={login})(uid={login}))", "a\\b\x00") == r"(|(mail=a\5cb\00)(uid=a\5cb\00))"
    with pytest.raises(ValueError, match="login"):
        ldap.build_filter("(uid=alice)", "x")


@pytest.mark.parametrize("login", ["*)(uid=*", "*", "alice*", "*)(|(uid=*", "alice)(uid=*"])
async def test_filter_injection_matches_nobody(slapd: Slapd, login: str) -> None:
    # Unescaped, each of these would match alice (or everyone), and alice's password would pass.
    with pytest.raises(ldap.LdapRefused) as refused:
        await ldap.authenticate(config(slapd), login, ALICE_PW)
    assert refused.value.code == "not_found"


async def test_exactly_one_entry_must_match(slapd: Slapd) -> None:
    slapd.add_user("alice2", password=ALICE_PW, mail="alice@corp.example", name="Alice Two")
    with pytest.raises(ldap.LdapRefused) as refused:
        await ldap.authenticate(config(slapd), "alice@corp.example", ALICE_PW)
    assert refused.value.code == "ambiguous"


async def test_an_unreachable_directory_is_refused_at_once() -> None:
    cfg = ldap.LdapConfig((f"ldap://127.0.0.1:{free_port()}",), "none", None, SERVICE_DN, SERVICE_PW, PEOPLE,
                          USER_FILTER, timeout_s=1)
    started = time.monotonic()
    with pytest.raises(ldap.LdapRefused) as refused:
        await ldap.authenticate(cfg, "alice@corp.example", ALICE_PW)
    assert refused.value.code == "unreachable"
    assert time.monotonic() - started < 3  # a refused connection is not waited for


async def test_a_silent_directory_times_out_off_the_loop() -> None:
    # A server that accepts the connection and never answers: ldap3 waits in its thread (receive
    # timeout), the event loop keeps running meanwhile.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    cfg = ldap.LdapConfig((f"ldap://127.0.0.1:{silent.getsockname()[1]}",), "none", None, SERVICE_DN, SERVICE_PW,
                          PEOPLE, USER_FILTER, timeout_s=1)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        with pytest.raises(ldap.LdapRefused) as refused:
            await ldap.authenticate(cfg, "alice@corp.example", ALICE_PW)
    finally:
        task.cancel()
        silent.close()
    assert refused.value.code in ("unreachable", "timeout")
    assert 0.8 < time.monotonic() - started < 6
    assert ticks > 20


async def test_the_next_server_is_tried_when_one_does_not_answer(slapd: Slapd) -> None:
    cfg = config(slapd, urls=(f"ldap://127.0.0.1:{free_port()}", slapd.url), timeout_s=1)
    assert (await ldap.authenticate(cfg, "alice@corp.example", ALICE_PW)).dn == f"uid=alice,{PEOPLE}"


# ---------------------------------------------------------------- through the log-in form
async def test_first_login_creates_the_account_with_the_mapped_role(
    rt: Runtime, world: World, slapd: Slapd, client: httpx.AsyncClient
) -> None:
    await configure(rt, world, slapd)
    response = await form_login(client, "Alice@Corp.Example", ALICE_PW)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/app"
    op = await operator_by_email(rt, "alice@corp.example")
    assert op is not None
    assert op.name == "Alice Smith"
    who = await actor(rt, op.id)
    assert "settings.manage" in who.permissions  # chat-admins => administrator
    assert await department_ids(rt, op.id) == [world.department_id]  # chat-support => the department
    async with rt.db.unit_of_work(readonly=True) as uow:
        link = await uow.session.get(DirectoryAccount, op.id)
    assert link is not None
    assert link.source == "ldap"
    assert link.external_id == f"uid=alice,{PEOPLE}"
    # The session works, and the password is never usable locally.
    assert (await client.get("/app")).status_code == 200
    assert op.password_hash == identity.NO_LOCAL_PASSWORD
    created = await audit_rows(rt, "users.created")
    assert [(r.target_id, json.loads(r.detail)["source"]) for r in created] == [(op.id, "ldap")]

    # The next log-in finds the same account (no second one).
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=client._transport.app),  # type: ignore[attr-defined]
                                 base_url="http://testserver") as other:
        assert (await form_login(other, "alice@corp.example", ALICE_PW)).status_code == 303
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert len((await uow.session.scalars(select(DirectoryAccount))).all()) == 1


async def test_default_role_when_no_group_matches(
    rt: Runtime, world: World, slapd: Slapd, client: httpx.AsyncClient
) -> None:
    await configure(rt, world, slapd)
    assert (await form_login(client, "carol@corp.example", "carol-directory-pw")).status_code == 303
    op = await operator_by_email(rt, "carol@corp.example")
    assert op is not None
    who = await actor(rt, op.id)
    assert "settings.manage" not in who.permissions
    assert "chats.participate" in who.permissions


async def _assert_refused(rt: Runtime, client: httpx.AsyncClient, email: str, password: str, reason: str) -> None:
    before = len(await audit_rows(rt, "auth.login"))
    response = await form_login(client, email, password)
    assert response.status_code == 401, response.text
    assert "Wrong e-mail or password." in response.text
    assert "set-cookie" not in response.headers or "confide_session" not in response.headers["set-cookie"]
    rows = (await audit_rows(rt, "auth.login"))[before:]
    assert len(rows) == 1
    row = rows[0]
    assert row.outcome == "failed"
    assert json.loads(row.detail) == {"method": "ldap", "reason": reason}
    assert email.split("@")[0] not in row.detail
    assert "@" not in (row.actor_id or "")


async def test_wrong_password_disabled_and_whitespace_are_refused_and_audited(
    rt: Runtime, world: World, slapd: Slapd, client: httpx.AsyncClient
) -> None:
    await configure(rt, world, slapd)
    await _assert_refused(rt, client, "alice@corp.example", "not her password", "bad_credentials")
    await _assert_refused(rt, client, "bob@corp.example", "bob-directory-pw", "disabled")
    await _assert_refused(rt, client, "alice@corp.example", "   ", "empty_password")
    assert await operator_by_email(rt, "alice@corp.example") is None
    assert await operator_by_email(rt, "bob@corp.example") is None
    # An empty password never reaches the directory at all: the form refuses it (422).
    assert (await form_login(client, "alice@corp.example", "")).status_code == 422


async def test_required_groups_and_auto_create_off(
    rt: Runtime, world: World, slapd: Slapd, client: httpx.AsyncClient
) -> None:
    await configure(rt, world, slapd, required_groups=["cn=chat-admins,ou=groups,dc=example,dc=test"])
    await _assert_refused(rt, client, "carol@corp.example", "carol-directory-pw", "not_in_groups")
    await configure(rt, world, slapd, auto_create=False)
    # Without "create at first log-in", an unknown e-mail is an ordinary failed password log-in.
    response = await form_login(client, "alice@corp.example", ALICE_PW)
    assert response.status_code == 401
    assert await operator_by_email(rt, "alice@corp.example") is None


async def test_local_accounts_keep_their_password(
    rt: Runtime, world: World, slapd: Slapd, client: httpx.AsyncClient
) -> None:
    await configure(rt, world, slapd)
    slapd.add_user("mia", password="mia-directory-pw", mail=world.operator_email, name="Mia")
    # Mia's account is local: her Confide password works, the directory's is not asked.
    assert (await form_login(client, world.operator_email, "mia-directory-pw")).status_code == 401
    assert (await form_login(client, world.operator_email, "correct horse battery staple")).status_code == 303


async def test_a_directory_turned_off_refuses_its_accounts(
    rt: Runtime, world: World, slapd: Slapd, client: httpx.AsyncClient
) -> None:
    await configure(rt, world, slapd)
    assert (await form_login(client, "alice@corp.example", ALICE_PW)).status_code == 303
    await configure(rt, world, slapd, enabled=False)
    await _assert_refused(rt, client, "alice@corp.example", ALICE_PW, "directory_off")


# ---------------------------------------------------------------- the periodic re-check
async def _sessions(rt: Runtime, operator_id: str) -> list[OperatorSession]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return list((await uow.session.scalars(
            select(OperatorSession).where(OperatorSession.operator_id == operator_id))).all())


@pytest.mark.parametrize("change", ["disabled", "removed", "left_group"])
async def test_recheck_ends_the_live_session_of_a_user_changed_in_the_directory(
    rt: Runtime, world: World, slapd: Slapd, client: httpx.AsyncClient, change: str
) -> None:
    required = ["cn=chat-support,ou=groups,dc=example,dc=test"] if change == "left_group" else []
    await configure(rt, world, slapd, required_groups=required)
    assert (await form_login(client, "alice@corp.example", ALICE_PW)).status_code == 303
    assert (await client.get("/app")).status_code == 200
    op = await operator_by_email(rt, "alice@corp.example")
    assert op is not None
    events: list[tuple[str, dict[str, Any]]] = []
    rt.broker.set_handler(lambda topic, payload: events.append((topic, payload)))  # type: ignore[arg-type,func-returns-value]
    await rt.broker.subscribe(f"op:{op.id}")

    # Still fine in the directory: a re-check keeps the session.
    clock.advance(timedelta(seconds=61))
    done = await scheduler.tick(rt)
    assert done is not None
    assert done["directory_rechecked"] == 1
    assert all(s.revoked_at is None for s in await _sessions(rt, op.id))
    # Not due again until the interval has passed.
    assert (await scheduler.tick(rt) or {})["directory_rechecked"] == 0

    dn = f"uid=alice,{PEOPLE}"
    if change == "disabled":
        slapd.set_uac(dn, 514)
    elif change == "removed":
        slapd.delete(dn)
    else:
        with slapd.admin() as conn:
            import ldap3

            conn.modify("cn=chat-support,ou=groups,dc=example,dc=test", {"member": [(ldap3.MODIFY_DELETE, [dn])]})
    clock.advance(timedelta(seconds=61))
    assert (await scheduler.tick(rt) or {})["directory_rechecked"] == 1
    sessions = await _sessions(rt, op.id)
    assert sessions
    assert all(s.revoked_at is not None for s in sessions)
    assert (f"op:{op.id}", {"type": "revoke"}) in events
    response = await client.get("/app")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    revoked = await audit_rows(rt, "auth.sessions_revoked")
    reason = {"disabled": "disabled", "removed": "removed", "left_group": "not_in_groups"}[change]
    assert [(r.target_id, json.loads(r.detail)) for r in revoked] == [(op.id, {"method": "ldap", "reason": reason})]
    # And the next log-in is refused by the directory too.
    if change != "left_group":
        response = await form_login(client, "alice@corp.example", ALICE_PW)
        assert response.status_code == 401


async def test_recheck_keeps_sessions_when_the_directory_is_down(
    rt: Runtime, world: World, slapd: Slapd, client: httpx.AsyncClient
) -> None:
    await configure(rt, world, slapd, timeout_s=1)
    assert (await form_login(client, "alice@corp.example", ALICE_PW)).status_code == 303
    op = await operator_by_email(rt, "alice@corp.example")
    assert op is not None
    slapd.stop()
    clock.advance(timedelta(seconds=61))
    assert (await scheduler.tick(rt) or {})["directory_rechecked"] == 1
    assert all(s.revoked_at is None for s in await _sessions(rt, op.id))


async def test_directory_settings_keep_the_password_encrypted(rt: Runtime, world: World, slapd: Slapd) -> None:
    await configure(rt, world, slapd)
    async with rt.db.unit_of_work(readonly=True) as uow:
        row = await uow.session.scalar(select(LdapDirectory))
        assert row is not None
        assert row.bind_password_enc is not None
        assert SERVICE_PW.encode() not in row.bind_password_enc
        assert (await identity.ldap_config(rt, uow, row)).bind_password == SERVICE_PW
        view = identity.ldap_view(row)
    assert view["has_password"] is True
    assert SERVICE_PW not in json.dumps(view)
    # Saving without a password keeps the stored one.
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await identity.save_ldap(rt, uow, admin, LdapSettingsIn.model_validate(
            {**{k: v for k, v in view.items() if k != "has_password"}, "bind_password": None}))
    async with rt.db.unit_of_work(readonly=True) as uow:
        row = await uow.session.scalar(select(LdapDirectory))
        assert row is not None
        assert (await identity.ldap_config(rt, uow, row)).bind_password == SERVICE_PW
    assert (await ldap.test_connection(config(slapd))) == 1


async def test_two_first_logins_at_once_make_one_account(
    rt: Runtime, world: World, slapd: Slapd, live: Any
) -> None:
    await configure(rt, world, slapd)

    async def attempt() -> int:
        async with httpx.AsyncClient(base_url=live.base) as http:
            response = await http.post("/login", data={"email": "alice@corp.example", "password": ALICE_PW},
                                       headers={"Origin": live.base})
            return response.status_code

    statuses = await asyncio.gather(*(attempt() for _ in range(4)))
    # Never a 500. Each attempt is counted by the log-in throttle before the directory is asked, as
    # password log-ins are: the fourth of four at once may be told to wait (429).
    assert set(statuses) <= {303, 401, 429}, statuses
    assert 303 in statuses
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert len((await uow.session.scalars(select(DirectoryAccount))).all()) == 1
        ops = (await uow.session.scalars(select(Operator).where(Operator.email == "alice@corp.example"))).all()
    assert len(ops) == 1
