"""Invitations: by e-mail through the outbox (a real SMTP server), single use, expiring, revocable,
one account per person; the invitation page and its refusals."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from confide.audit.models import AuditEvent
from confide.core import clock, jobs, mail
from confide.core.errors import Conflict, Forbidden, NotFound
from confide.core.runtime import Runtime
from confide.users import invites
from confide.users import operators as user_operators
from confide.users.account_models import OperatorInvite
from confide.worker.jobs import JobRunner
from tests.conftest import World
from tests.helpers_api import SELF, actor, login
from tests.mailbox import Mailbox

INVITEE = "nora.new@shop.example"
NEW_PASSWORD = "a long new password 42"
LINK = re.compile(r"http://[^\s\"<>]+/invite/([A-Za-z0-9_-]+)")


async def queued_mail(rt: Runtime) -> list[dict[str, Any]]:
    """The mail jobs waiting in the outbox, opened."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = (await uow.session.scalars(select(jobs.Job).where(jobs.Job.kind == mail.KIND)
                                          .order_by(jobs.Job.id))).all()
        return [p for p in (jobs.open_payload(rt, r) for r in rows) if p is not None]


async def tokens_sent_to(rt: Runtime, address: str) -> list[str]:
    return [LINK.search(m["text"]).group(1) for m in await queued_mail(rt) if m["to"] == [address]]  # type: ignore[union-attr]


async def invite(rt: Runtime, world: World, *, email: str = INVITEE, name: str = "Nora New", role: str = "operator",
                 departments: list[str] | None = None) -> str:
    """Invite through the service; returns the token that the e-mail carries."""
    before = set(await tokens_sent_to(rt, email))
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await invites.invite(rt, uow, admin, invites.InviteIn(email=email, name=name, role=role,  # type: ignore[arg-type]
                                                               department_ids=departments or [world.department_id]),
                             base_url="http://testserver")
    (token,) = set(await tokens_sent_to(rt, email)) - before
    return token


async def accept(client: httpx.AsyncClient, token: str, *, name: str = "Nora N.", password: str = NEW_PASSWORD,
                 confirm: str | None = None) -> httpx.Response:
    return await client.post(f"/invite/{token}", data={"name": name, "password": password,
                                                       "password_confirm": password if confirm is None else confirm},
                             headers=SELF)


async def audit_actions(rt: Runtime) -> list[str]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return list((await uow.session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq))).all())


async def operator_by_email(rt: Runtime, email: str) -> user_operators.Operator | None:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await uow.session.scalar(select(user_operators.Operator).where(user_operators.Operator.email == email))


async def test_invite_from_settings_mail_arrives_and_the_link_creates_the_account(
    rt: Runtime, world: World, client: httpx.AsyncClient
) -> None:
    assert (await login(client, world.admin_email)).status_code == 200
    page = await client.get("/app/settings/operators")
    assert page.status_code == 200
    assert 'data-testid="invite-form"' in page.text
    sent = await client.post("/app/settings/invites", headers=SELF, data={
        "email": " Nora.New@Shop.Example ", "name": "Nora New", "role": "operator",
        "department_ids": world.department_id})
    assert sent.status_code == 303
    assert sent.headers["location"] == "/app/settings/invites?done=sent"
    listing = await client.get("/app/settings/invites?done=sent")
    assert "Invitation sent." in listing.text
    assert INVITEE in listing.text
    assert 'data-state="pending"' in listing.text
    async with Mailbox() as box:
        rt.settings.smtp_host, rt.settings.smtp_port, rt.settings.smtp_security = "127.0.0.1", box.port, "none"
        assert await JobRunner(rt, node_id="t").drain() == 1
        (got,) = box.received
    assert got.rcpt_tos == [INVITEE]
    assert got.message["Subject"] == "You are invited to Confide"
    match = LINK.search(got.part("plain"))
    assert match is not None
    token = match.group(1)
    assert f"/invite/{token}" in got.part("html")
    # Only the digest is stored: the token is nowhere in the invitation's row.
    async with rt.db.unit_of_work(readonly=True) as uow:
        (row,) = (await uow.session.execute(text("SELECT * FROM operator_invites"))).all()
    assert token not in " ".join(str(v) for v in row)

    client.cookies.clear()
    form = await client.get(f"/invite/{token}")
    assert form.status_code == 200
    assert INVITEE in form.text
    assert form.headers["cache-control"] == "no-store"
    done = await accept(client, token)
    assert done.status_code == 303
    assert done.headers["location"] == "/app"
    assert (await client.get("/app")).status_code == 200  # logged in
    op = await operator_by_email(rt, INVITEE)
    assert op is not None
    assert op.name == "Nora N."
    assert op.role == "operator"
    assert op.last_login_method == "invite"
    assert op.last_login_at is not None
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await user_operators.department_ids_of(uow, op.id) == [world.department_id]
    actions = await audit_actions(rt)
    assert "users.invited" in actions
    assert "users.invite_accepted" in actions
    # The same link again: refused, clearly.
    again = await client.get(f"/invite/{token}")
    assert again.status_code == 410
    assert "already used" in again.text
    assert (await accept(client, token)).status_code == 410


async def test_an_expired_link_is_refused(rt: Runtime, world: World, client: httpx.AsyncClient) -> None:
    token = await invite(rt, world)
    clock.advance(timedelta(hours=rt.settings.invite_ttl_h, seconds=1))
    page = await client.get(f"/invite/{token}")
    assert page.status_code == 410
    assert "expired" in page.text
    assert (await accept(client, token)).status_code == 410
    assert await operator_by_email(rt, INVITEE) is None


async def test_inviting_again_revokes_the_older_link(rt: Runtime, world: World, client: httpx.AsyncClient) -> None:
    first = await invite(rt, world)
    second = await invite(rt, world, name="Nora Again")
    refused = await client.get(f"/invite/{first}")
    assert refused.status_code == 410
    assert "replaced or withdrawn" in refused.text
    page = await client.get(f"/invite/{second}")
    assert page.status_code == 200
    assert 'value="Nora Again"' in page.text
    assert (await accept(client, second)).status_code == 303


async def test_revoked_unknown_and_malformed_links(rt: Runtime, world: World, client: httpx.AsyncClient) -> None:
    token = await invite(rt, world)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work(readonly=True) as uow:
        (listed,) = await invites.list_invites(uow, admin)
    async with rt.db.unit_of_work() as uow:
        await invites.revoke(rt, uow, admin, listed["id"])
    assert (await client.get(f"/invite/{token}")).status_code == 410
    for bad in ("x", "A" * 43, "A" * 300, "%00%3Cscript%3E"):
        response = await client.get(f"/invite/{bad}")
        assert response.status_code == 404, bad
        assert "not valid" in response.text
        assert (await accept(client, bad)).status_code == 404
    assert "users.invite_revoked" in await audit_actions(rt)


async def test_one_person_one_account(rt: Runtime, world: World, client: httpx.AsyncClient) -> None:
    admin = await actor(rt, world.admin_id)
    with pytest.raises(Conflict):
        async with rt.db.unit_of_work() as uow:
            await invites.invite(rt, uow, admin, invites.InviteIn(email=world.operator_email.upper(), name="Mia"),
                                 base_url="http://testserver")
    assert await queued_mail(rt) == []  # a refused invitation sends nothing
    # Through the page: the form is shown again, with the reason.
    assert (await login(client, world.admin_email)).status_code == 200
    page = await client.post("/app/settings/invites", headers=SELF,
                             data={"email": world.operator_email, "name": "Mia"})
    assert page.status_code == 409
    assert "exists already" in page.text
    assert f'value="{world.operator_email}"' in page.text
    # An account created for the address after the invitation: the link cannot make a second one.
    token = await invite(rt, world)
    async with rt.db.unit_of_work() as uow:
        from tests import factories

        await factories.operator(rt, uow, workspace_id=world.workspace_id, email=INVITEE)
    client.cookies.clear()
    refused = await accept(client, token)
    assert refused.status_code == 409
    assert "exists already" in refused.text


async def test_bad_passwords_and_hostile_names(rt: Runtime, world: World, client: httpx.AsyncClient) -> None:
    token = await invite(rt, world, name="<script>alert(1)</script>")
    page = await client.get(f"/invite/{token}")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text
    short = await accept(client, token, password="too short")
    assert short.status_code == 422
    assert "at least 12 characters" in short.text
    mismatch = await accept(client, token, confirm="something else entirely")
    assert mismatch.status_code == 422
    assert "not the same" in mismatch.text
    empty = await accept(client, token, name="   ")
    assert empty.status_code == 422
    assert await operator_by_email(rt, INVITEE) is None
    # From another site: refused before anything is read.
    forged = await client.post(f"/invite/{token}", headers={"Origin": "https://evil.example"},
                               data={"name": "x", "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert forged.status_code == 403
    assert await operator_by_email(rt, INVITEE) is None
    assert (await accept(client, token, name="<b>Nora</b>")).status_code == 303


async def test_inviting_needs_users_manage_and_departments_of_the_workspace(
    rt: Runtime, world: World, client: httpx.AsyncClient
) -> None:
    operator = await actor(rt, world.operator_id)
    with pytest.raises(Forbidden):
        async with rt.db.unit_of_work() as uow:
            await invites.invite(rt, uow, operator, invites.InviteIn(email=INVITEE, name="N"),
                                 base_url="http://testserver")
    admin = await actor(rt, world.admin_id)
    with pytest.raises(NotFound):
        async with rt.db.unit_of_work() as uow:
            await invites.invite(rt, uow, admin, invites.InviteIn(email=INVITEE, name="N", department_ids=["nope"]),
                                 base_url="http://testserver")
    assert await queued_mail(rt) == []
    assert (await login(client, world.operator_email)).status_code == 200
    page = await client.post("/app/settings/invites", headers=SELF, data={"email": INVITEE, "name": "N"})
    assert page.status_code == 403
    assert (await client.get("/app/settings/invites")).status_code == 403
    assert await queued_mail(rt) == []


async def test_two_submissions_of_one_link_make_one_account(rt: Runtime, world: World) -> None:
    token = await invite(rt, world)
    hashed = await rt.passwords.hash_async(NEW_PASSWORD)

    async def submit() -> str | Exception:
        try:
            async with rt.db.unit_of_work() as uow:
                return await invites.accept(rt, uow, token, invites.AcceptIn(name="Nora", password=NEW_PASSWORD),
                                            password_hash=hashed)
        except Exception as exc:
            return exc

    results = await asyncio.gather(*(submit() for _ in range(4)))
    made = [r for r in results if isinstance(r, str)]
    assert len(made) == 1, results
    assert all(isinstance(r, invites.InviteUnusable) and r.reason == "used" for r in results if r not in made)
    async with rt.db.unit_of_work(readonly=True) as uow:
        operator = user_operators.Operator
        count = await uow.session.scalar(select(operator.id).where(operator.email == INVITEE))
        used = await uow.session.scalar(select(OperatorInvite.operator_id))
    assert count == made[0] == used


async def test_no_address_name_or_token_reaches_the_log(rt: Runtime, world: World, client: httpx.AsyncClient) -> None:
    import io

    from confide.core.logging import configure as configure_logging
    from confide.users import review
    from tests.conftest import free_port

    tag = "qq7canary"
    buffer = io.StringIO()
    configure_logging("debug", stream=buffer)
    try:
        token = await invite(rt, world, email=f"{tag}@shop.example", name=f"Name{tag}")
        rt.settings.smtp_host, rt.settings.smtp_port, rt.settings.smtp_security = "127.0.0.1", free_port(), "none"
        await JobRunner(rt, node_id="t").drain()  # SMTP down: a retry, logged by code
        async with Mailbox(port=rt.settings.smtp_port) as box:
            box.handler.refuse.add(f"{tag}@shop.example")  # then a refusal that quotes the address
            clock.advance(timedelta(hours=1))
            await JobRunner(rt, node_id="t").drain()
        rt.settings.smtp_host = ""  # kept in the folder
        assert (await accept(client, token, name=f"Other{tag}", password=f"{tag}-password-long")).status_code == 303
        admin = await actor(rt, world.admin_id)
        async with rt.db.unit_of_work() as uow:
            await review.set_policy(rt, uow, admin, review.PolicyIn(inactive_days=1))
        clock.advance(timedelta(days=2))
        async with rt.db.unit_of_work() as uow:
            assert await review.disable_inactive(rt, uow) >= 1
        assert await JobRunner(rt, node_id="t").drain() >= 1
    finally:
        configure_logging("warning")
    out = buffer.getvalue()
    assert "job_failed" in out  # the log did record the failures
    assert "mail_kept" in out
    assert tag not in out
    assert token not in out


async def test_two_admins_inviting_one_address_at_once_leave_one_live_invitation(rt: Runtime, world: World) -> None:
    """Two nodes (PostgreSQL: two engines, two pools), two administrators, one address, at once:
    one live invitation; the other call is refused with 409 (nothing of it kept, no mail) or, when
    it ran after the first committed, replaced it."""
    from confide.core.broker import MemoryBroker
    from confide.core.runtime import build_runtime
    from tests import factories

    async with rt.db.unit_of_work() as uow:
        second_admin = await factories.operator(rt, uow, workspace_id=world.workspace_id, email="bo@shop.example",
                                                role="admin", department_ids=[world.department_id], name="Bo")
    node2 = rt if rt.db.is_sqlite else build_runtime(rt.settings, broker=MemoryBroker())
    admins = [await actor(rt, world.admin_id), await actor(rt, second_admin.id)]

    async def send(node: Runtime, who: Any, email: str) -> str | Exception:
        try:
            async with node.db.unit_of_work() as uow:
                row = await invites.invite(node, uow, who, invites.InviteIn(
                    email=email, name="Nora", department_ids=[world.department_id]), base_url="http://testserver")
                return row.id
        except Exception as exc:
            return exc

    refused = 0
    try:
        for n in range(6):
            email = f"nora{n}@shop.example"
            results = await asyncio.gather(send(rt, admins[0], email), send(node2, admins[1], email))
            assert all(isinstance(r, str | Conflict) for r in results), results
            conflicts = [r for r in results if isinstance(r, Conflict)]
            assert len(conflicts) <= 1, results
            refused += len(conflicts)
            assert all("being invited by someone else" in c.message for c in conflicts)
            async with rt.db.unit_of_work(readonly=True) as uow:
                rows = (await uow.session.scalars(select(OperatorInvite).where(OperatorInvite.email == email))).all()
            live = [r for r in rows if r.used_at is None and r.revoked_at is None]
            assert len(live) == 1, [(r.id, r.revoked_at) for r in rows]
            assert len(rows) == 2 - len(conflicts)  # a refused invitation leaves no row
            assert len(await tokens_sent_to(rt, email)) == len(rows)  # and no mail
    finally:
        if node2 is not rt:
            await node2.close()
    if not rt.db.is_sqlite:
        assert refused >= 1  # the calls did overlap at least once: the index decided it
