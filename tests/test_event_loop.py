"""The event loop never blocks on a password check (argon2 runs in its own threads, outside any
transaction): a visitor and an operator keep chatting at normal speed while wrong passwords are
tried in a loop, on a real uvicorn with a production-cost hash."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from confide.core import crypto
from confide.core.runtime import Runtime
from confide.users.models import Operator
from tests import wsclient as wc
from tests.conftest import Live, World

# One production check costs ~0.3 s here, and a round trip crosses the loop four times: a blocked
# loop cannot keep the median under this bound, even on a machine busy with other work.
ROUND_TRIP_BOUND_S = 0.25
MAX_ATTEMPTS = 30
MAX_SECONDS = 20.0


@pytest.fixture(autouse=True)
async def _close_sockets(live: Live) -> AsyncIterator[None]:
    yield
    await wc.close_all()


async def test_chats_keep_flowing_while_logins_are_attempted(rt: Runtime, world: World, live: Live) -> None:
    chat = await wc.active_chat(live=live, world=world)
    # From here on, production cost (the fixture's hasher is cheap, for speed).
    rt.passwords = crypto.Passwords(time_cost=3, memory_kib=65536)
    # Every attempt must reach argon2 here: the throttle (which would answer most of them with 429
    # and no check at all) is out of the way; test_accounts_throttle.py tests it.
    rt.settings = rt.settings.model_copy(update={"login_free_failures": 10_000, "login_address_free_failures": 10_000})
    started = time.perf_counter()
    expensive = rt.passwords.hash("the administrator's real password")
    cost_s = time.perf_counter() - started
    assert cost_s > 0.03, f"a check must take tens of ms for this test to mean anything ({cost_s:.3f} s)"
    async with rt.db.unit_of_work() as uow:
        admin = await uow.session.get(Operator, world.admin_id)
        assert admin is not None
        admin.password_hash = expensive

    stop = asyncio.Event()
    answers: list[int] = []

    async def hammer() -> None:
        deadline = time.monotonic() + MAX_SECONDS
        async with wc.http(live=live) as client:
            client.timeout = MAX_SECONDS
            while not stop.is_set() and len(answers) < MAX_ATTEMPTS and time.monotonic() < deadline:
                response = await client.post(
                    "/api/v1/auth/login",
                    json={"email": world.admin_email, "password": "not the password at all"},
                    headers={"Origin": live.base},
                )
                answers.append(response.status_code)

    hammers = [asyncio.create_task(hammer()) for _ in range(3)]
    try:
        for _ in range(200):  # wait until checks are really running (a barrier, not a sleep for time)
            if rt.passwords.pending >= 2:
                break
            await asyncio.sleep(0.01)
        assert rt.passwords.pending >= 2, "the log-in loop did not start"

        trips: list[float] = []
        overlapped = 0
        for i in range(8):
            overlapped += rt.passwords.pending > 0
            t0 = time.perf_counter()
            await wc.send(ws=chat.visitor, frame={"type": "message", "client_id": f"v-{i}", "text": f"ping {i}"})
            await wc.recv_until(ws=chat.operator, type="message", where=lambda f: f["message"]["sender"] == "visitor")
            await wc.send(
                ws=chat.operator,
                frame={
                    "type": "message",
                    "conversation_id": chat.chat.conversation_id,
                    "client_id": f"o-{i}",
                    "text": f"pong {i}",
                },
            )
            await wc.recv_until(ws=chat.visitor, type="message", where=lambda f: f["message"]["sender"] == "operator")
            trips.append(time.perf_counter() - t0)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*hammers), MAX_SECONDS + 10)

    assert overlapped >= 6, f"only {overlapped} of 8 round trips overlapped a password check"
    assert answers
    assert set(answers) == {401}, answers
    # The median is the claim (a blocked loop puts a whole check, ~0.3 s, in most round trips); the
    # maximum only guards against stalls, with room for a machine shared with other work.
    shown = [round(t, 3) for t in trips]
    assert sorted(trips)[len(trips) // 2] < ROUND_TRIP_BOUND_S, shown
    assert max(trips) < 4 * ROUND_TRIP_BOUND_S, shown


async def test_concurrent_wrong_passwords_are_all_counted_and_throttled(rt: Runtime, world: World) -> None:
    """Each attempt is counted before its check, in one upsert: racing attempts (PostgreSQL runs
    them on separate connections at once) never lose a count, and those past the free ones are
    refused (429) without any password check, however many arrive at once."""
    from sqlalchemy import select

    from confide.auth.models import LoginThrottle
    from confide.core.errors import RateLimited, Unauthorized
    from confide.web.login_flow import LoginClient, password_login

    free = rt.settings.login_free_failures

    async def wrong(password: str = "wrong password, sorry") -> str:  # noqa: S107
        try:
            await password_login(rt, email=world.operator_email, password=password, client=LoginClient(None))
        except Unauthorized:
            return "401"
        except RateLimited:
            return "429"
        return "200"

    outcomes = await asyncio.gather(*(wrong() for _ in range(free + 6)))
    # free attempts, plus the one whose failure starts the delays, were checked; the rest waited.
    assert sorted(outcomes) == ["401"] * (free + 1) + ["429"] * 5, outcomes
    async with rt.db.unit_of_work(readonly=True) as uow:
        [row] = (await uow.session.scalars(select(LoginThrottle))).all()
    assert row.failures == free + 1
    assert row.blocked_until is not None
    # The right password waits too (a block says nothing about the password).
    assert await wrong(wc.PASSWORD) == "429"


async def test_a_password_changed_during_the_check_does_not_let_the_old_one_in(rt: Runtime, world: World) -> None:
    from confide.core.errors import Unauthorized
    from confide.users import login as user_login
    from confide.users import passwords as user_passwords

    async with rt.db.unit_of_work() as uow:
        attempt = await user_login.login_attempt(rt, uow, email=world.operator_email, address=None)
    assert await user_login.check_password(rt, attempt, wc.PASSWORD)
    async with rt.db.unit_of_work() as uow:  # an administrator resets it meanwhile
        new = "a completely new passphrase"
        await user_passwords.reset_password(rt, uow, email=world.operator_email, password=new,
                                   password_hash=rt.passwords.hash(new))
    with pytest.raises(Unauthorized):
        async with rt.db.unit_of_work() as uow:
            await user_login.record_login(rt, uow, attempt, ok=True)
