"""Two-factor authentication through the services (SQLite and PostgreSQL): TOTP on Confide's clock
(replay refused, drift window, wrong codes), recovery codes (single use, regenerated), passkeys (the
real py_webauthn verification against a software authenticator: challenge single use and expiry,
origin, sign count), the log-in ticket (expiry, reuse, attempts), enforcement and its policy."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import select, text

from confide.audit.models import AuditEvent
from confide.core import clock
from confide.core.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited, Unauthorized
from confide.core.runtime import Runtime
from confide.two_factor import service as two_factor
from confide.two_factor.webauthn_rp import RelyingParty
from confide.users import sessions as user_sessions
from confide.web.login_flow import LoginClient, LoginResult, complete_login, complete_second_factor, password_login
from tests.conftest import PASSWORD, World
from tests.soft_authenticator import SoftAuthenticator

CLIENT = LoginClient(address="127.0.0.1")
RP = RelyingParty(rp_id="localhost", origin="http://localhost:8123")
T0 = datetime(2026, 3, 1, 9, 0, 5, tzinfo=UTC)  # 5 s into a 30-second step


def code_now(secret: str) -> str:
    return pyotp.TOTP(secret).at(clock.now())


async def actor(rt: Runtime, operator_id: str):  # type: ignore[no-untyped-def]
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await user_sessions.actor_for(uow, operator_id)


async def enrol_totp(rt: Runtime, operator_id: str) -> tuple[str, list[str]]:
    """TOTP set up and confirmed for the operator; returns the secret and the recovery codes."""
    me = await actor(rt, operator_id)
    async with rt.db.unit_of_work() as uow:
        setup = await two_factor.pending_totp(rt, uow, operator_id)
    async with rt.db.unit_of_work() as uow:
        codes = await two_factor.confirm_totp(rt, uow, me, code_now(setup.secret))
    clock.advance(timedelta(seconds=30))  # the enrolment's step is used; log-ins take the next one
    return setup.secret, codes or []


async def first_factor(rt: Runtime, email: str) -> LoginResult:
    return await password_login(rt, email=email, password=PASSWORD, client=CLIENT)


async def verify(rt: Runtime, ticket: str, code: str) -> str:
    """The second step with a code; returns the session token it opened."""
    done = await complete_second_factor(rt, lambda uow: two_factor.verify_code(rt, uow, ticket, code))
    return done.token


async def audit_rows(rt: Runtime, action: str) -> list[AuditEvent]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = await uow.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq))
        return list(rows.all())


# ---------------------------------------------------------------- TOTP
async def test_without_a_factor_the_login_opens_a_session(rt: Runtime, world: World) -> None:
    result = await first_factor(rt, world.operator_email)
    assert result.second_factor is None
    assert result.token
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await two_factor.two_factor_state(uow, world.operator_id) == "none"


async def test_totp_enrolment_then_login_needs_the_code(rt: Runtime, world: World) -> None:
    clock.freeze(T0)
    async with rt.db.unit_of_work() as uow:
        old_session = await user_sessions.open_session(rt, uow, world.operator_id, method="password")
    secret, codes = await enrol_totp(rt, world.operator_id)
    assert len(codes) == 10
    assert len(set(codes)) == 10
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await two_factor.two_factor_state(uow, world.operator_id) == "totp"
        with pytest.raises(Unauthorized):  # enrolling ended the other sessions
            await user_sessions.resolve_session(uow, old_session)
        # The secret is stored encrypted, and the codes as digests only.
        raw = (await uow.session.execute(text("select secret_enc from totp_factors"))).scalar_one()
        assert secret.encode() not in bytes(raw)
        digests = (await uow.session.execute(text("select code_digest from recovery_codes"))).scalars().all()
        assert len(digests) == 10
        assert not set(digests) & {c.replace("-", "") for c in codes}
    assert [r.detail for r in await audit_rows(rt, "auth.two_factor_enrolled")] == ['{"factor":"totp"}']

    result = await first_factor(rt, world.operator_email)
    assert result.token == ""
    assert result.second_factor is not None
    assert result.second_factor.stage == two_factor.VERIFY
    token = await verify(rt, result.second_factor.token, code_now(secret))
    async with rt.db.unit_of_work(readonly=True) as uow:
        me = await user_sessions.resolve_session(uow, token)
    assert me.operator_id == world.operator_id
    [ok] = await audit_rows(rt, "auth.two_factor")
    assert ok.outcome == "ok"
    assert ok.actor_id == world.operator_id
    assert '"factor":"totp"' in ok.detail


async def test_a_totp_code_is_refused_a_second_time_and_older_ones_too(rt: Runtime, world: World) -> None:
    clock.freeze(T0)
    secret, _ = await enrol_totp(rt, world.operator_id)
    code = code_now(secret)
    first = (await first_factor(rt, world.operator_email)).second_factor
    second = (await first_factor(rt, world.operator_email)).second_factor
    assert first
    assert second
    await verify(rt, first.token, code)
    with pytest.raises(Unauthorized, match="wrong or already used"):
        await verify(rt, second.token, code)  # the same code, within its window: a replay
    previous = pyotp.TOTP(secret).at(clock.now() - timedelta(seconds=30))
    with pytest.raises(Unauthorized):
        await verify(rt, second.token, previous)  # an older step than the one used
    clock.advance(timedelta(seconds=30))
    await verify(rt, second.token, code_now(secret))  # the next step's code is fine


async def test_the_clock_window_is_one_step_either_side(rt: Runtime, world: World) -> None:
    clock.freeze(T0)
    secret, _ = await enrol_totp(rt, world.operator_id)
    now = clock.now()
    ticket = (await first_factor(rt, world.operator_email)).second_factor
    assert ticket
    for stale in (now - timedelta(seconds=60), now + timedelta(seconds=60)):
        with pytest.raises(Unauthorized):
            await verify(rt, ticket.token, pyotp.TOTP(secret).at(stale))
    await verify(rt, ticket.token, pyotp.TOTP(secret).at(now + timedelta(seconds=30)))  # a phone a bit ahead
    clock.advance(timedelta(seconds=120))
    now = clock.now()
    later = (await first_factor(rt, world.operator_email)).second_factor
    assert later
    await verify(rt, later.token, pyotp.TOTP(secret).at(now - timedelta(seconds=30)))  # a phone a bit behind


async def test_wrong_codes_are_counted_and_end_the_ticket(rt: Runtime, world: World) -> None:
    clock.freeze(T0)
    secret, _ = await enrol_totp(rt, world.operator_id)
    ticket = (await first_factor(rt, world.operator_email)).second_factor
    assert ticket
    for bad in ("000000", "12345", "not a code", "", "x" * 500):
        with pytest.raises(Unauthorized):
            await verify(rt, ticket.token, bad)
    with pytest.raises(two_factor.TicketExpired):  # five wrong answers: the ticket is dead
        await verify(rt, ticket.token, code_now(secret))
    failed = await audit_rows(rt, "auth.two_factor")
    assert [r.outcome for r in failed] == ["failed"] * 5
    assert '"attempts":5' in failed[-1].detail
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await uow.session.execute(text("select count(*) from operator_sessions"))).scalar_one() == 0


async def test_wrong_codes_over_many_tickets_are_throttled(rt: Runtime, world: World) -> None:
    """New tickets do not buy new guesses: ten wrong answers in a quarter of an hour stop the checks."""
    clock.freeze(T0)
    secret, _ = await enrol_totp(rt, world.operator_id)
    for _ in range(two_factor.THROTTLE_FAILURES // 2):
        ticket = (await first_factor(rt, world.operator_email)).second_factor
        assert ticket
        for _ in range(2):
            with pytest.raises(Unauthorized):
                await verify(rt, ticket.token, "000000")
    fresh = (await first_factor(rt, world.operator_email)).second_factor
    assert fresh
    with pytest.raises(RateLimited):
        await verify(rt, fresh.token, code_now(secret))  # even the right code waits
    clock.advance(timedelta(seconds=two_factor.THROTTLE_WINDOW_S + 1))
    later = (await first_factor(rt, world.operator_email)).second_factor
    assert later
    await verify(rt, later.token, code_now(secret))


async def test_a_ticket_expires_and_is_single_use(rt: Runtime, world: World) -> None:
    clock.freeze(T0)
    secret, _ = await enrol_totp(rt, world.operator_id)
    ticket = (await first_factor(rt, world.operator_email)).second_factor
    assert ticket
    clock.advance(timedelta(seconds=two_factor.TICKET_TTL_S + 1))
    with pytest.raises(two_factor.TicketExpired):
        await verify(rt, ticket.token, code_now(secret))
    fresh = (await first_factor(rt, world.operator_email)).second_factor
    assert fresh
    await verify(rt, fresh.token, code_now(secret))
    clock.advance(timedelta(seconds=30))
    with pytest.raises(two_factor.TicketExpired):  # spent
        await verify(rt, fresh.token, code_now(secret))
    for forged in (None, "", "forged", "a" * 5000, 17):
        with pytest.raises(two_factor.TicketExpired):
            async with rt.db.unit_of_work(readonly=True) as uow:
                await two_factor.view_ticket(uow, forged)


async def test_a_ticket_is_bound_to_its_operator(rt: Runtime, world: World) -> None:
    """Mia's ticket with the admin's code: refused (each ticket checks its own operator's factor)."""
    clock.freeze(T0)
    await enrol_totp(rt, world.operator_id)
    admin_secret, _ = await enrol_totp(rt, world.admin_id)
    ticket = (await first_factor(rt, world.operator_email)).second_factor
    assert ticket
    with pytest.raises(Unauthorized):
        await verify(rt, ticket.token, code_now(admin_secret))


async def test_a_pending_secret_is_not_a_factor_and_a_second_app_conflicts(rt: Runtime, world: World) -> None:
    clock.freeze(T0)
    me = await actor(rt, world.operator_id)
    async with rt.db.unit_of_work() as uow:
        setup = await two_factor.pending_totp(rt, uow, world.operator_id)
    assert (await first_factor(rt, world.operator_email)).second_factor is None  # not confirmed: no second step
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Invalid):
            await two_factor.confirm_totp(rt, uow, me, "000000")
    async with rt.db.unit_of_work() as uow:
        again = await two_factor.pending_totp(rt, uow, world.operator_id)
    assert again.secret == setup.secret  # the page shown again keeps the same secret
    async with rt.db.unit_of_work() as uow:
        await two_factor.confirm_totp(rt, uow, me, code_now(setup.secret))
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Conflict):
            await two_factor.pending_totp(rt, uow, world.operator_id)


# ---------------------------------------------------------------- recovery codes
async def test_a_recovery_code_works_once(rt: Runtime, world: World) -> None:
    clock.freeze(T0)
    _, codes = await enrol_totp(rt, world.operator_id)
    ticket = (await first_factor(rt, world.operator_email)).second_factor
    assert ticket
    await verify(rt, ticket.token, "  " + codes[3].upper() + " ")  # case and spaces do not matter
    [used] = await audit_rows(rt, "auth.two_factor_recovery_used")
    assert used.detail == '{"left":9}'
    again = (await first_factor(rt, world.operator_email)).second_factor
    assert again
    with pytest.raises(Unauthorized):
        await verify(rt, again.token, codes[3])
    await verify(rt, again.token, codes[4])


async def test_new_recovery_codes_replace_the_old_ones(rt: Runtime, world: World) -> None:
    clock.freeze(T0)
    _, old = await enrol_totp(rt, world.operator_id)
    me = await actor(rt, world.operator_id)
    async with rt.db.unit_of_work() as uow:
        new = await two_factor.regenerate_recovery_codes(rt, uow, me)
    assert len(new) == 10
    assert not set(new) & set(old)
    ticket = (await first_factor(rt, world.operator_email)).second_factor
    assert ticket
    with pytest.raises(Unauthorized):
        await verify(rt, ticket.token, old[0])
    await verify(rt, ticket.token, new[0])
    assert await audit_rows(rt, "auth.two_factor_recovery_regenerated")


async def test_recovery_codes_need_a_factor(rt: Runtime, world: World) -> None:
    me = await actor(rt, world.operator_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Invalid):
            await two_factor.regenerate_recovery_codes(rt, uow, me)


# ---------------------------------------------------------------- passkeys
async def add_passkey(rt: Runtime, operator_id: str, label: str = "Work laptop") -> SoftAuthenticator:
    me = await actor(rt, operator_id)
    key = SoftAuthenticator(origin=RP.origin)
    async with rt.db.unit_of_work() as uow:
        options = await two_factor.passkey_registration_options(uow, me, RP)
    async with rt.db.unit_of_work() as uow:
        await two_factor.register_passkey(rt, uow, me, key.create(options), label, RP)
    return key


async def passkey_step(rt: Runtime, ticket: str, key: SoftAuthenticator, **kwargs: object) -> str:
    async with rt.db.unit_of_work() as uow:
        options = await two_factor.passkey_login_options(uow, ticket, RP)
    answer = key.get(options, **kwargs)  # type: ignore[arg-type]
    done = await complete_second_factor(rt, lambda uow: two_factor.verify_passkey(rt, uow, ticket, answer, RP))
    return done.token


async def test_passkey_enrolment_and_login(rt: Runtime, world: World) -> None:
    key = await add_passkey(rt, world.operator_id, "  Work   laptop ")
    async with rt.db.unit_of_work(readonly=True) as uow:
        found = await two_factor.factors(uow, world.operator_id)
        assert await two_factor.two_factor_state(uow, world.operator_id) == "passkey"
    assert [p["label"] for p in found.passkeys] == ["Work laptop"]
    assert found.recovery_left == 10  # a first factor comes with recovery codes
    ticket = (await first_factor(rt, world.operator_email)).second_factor
    assert ticket
    token = await passkey_step(rt, ticket.token, key)
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await user_sessions.resolve_session(uow, token)).operator_id == world.operator_id
        count = (await uow.session.execute(text("select sign_count from passkey_credentials"))).scalar_one()
    assert count == 1
    clock.freeze(T0)
    await enrol_totp(rt, world.operator_id)
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await two_factor.two_factor_state(uow, world.operator_id) == "totp+passkey"


async def test_a_passkey_sign_count_that_did_not_grow_is_refused(rt: Runtime, world: World) -> None:
    key = await add_passkey(rt, world.operator_id)
    ticket = (await first_factor(rt, world.operator_email)).second_factor
    assert ticket
    await passkey_step(rt, ticket.token, key)  # count 1
    again = (await first_factor(rt, world.operator_email)).second_factor
    assert again
    with pytest.raises(Unauthorized):
        await passkey_step(rt, again.token, key, count=1)  # a clone replaying the same count
    await passkey_step(rt, again.token, key)  # count 2


async def test_passkey_challenges_are_single_use_and_expire(rt: Runtime, world: World) -> None:
    key = await add_passkey(rt, world.operator_id)
    ticket = (await first_factor(rt, world.operator_email)).second_factor
    assert ticket
    async with rt.db.unit_of_work() as uow:
        options = await two_factor.passkey_login_options(uow, ticket.token, RP)
    answer = key.get(options)
    await complete_second_factor(rt, lambda uow: two_factor.verify_passkey(rt, uow, ticket.token, answer, RP))
    # The same signed answer on a new ticket: its challenge was used and is gone.
    other = (await first_factor(rt, world.operator_email)).second_factor
    assert other
    with pytest.raises(Unauthorized):
        await complete_second_factor(rt, lambda uow: two_factor.verify_passkey(rt, uow, other.token, answer, RP))
    # A challenge that expired.
    async with rt.db.unit_of_work() as uow:
        options = await two_factor.passkey_login_options(uow, other.token, RP)
    clock.advance(timedelta(seconds=two_factor.CHALLENGE_TTL_S + 1))
    late = key.get(options)
    third = (await first_factor(rt, world.operator_email)).second_factor
    assert third
    with pytest.raises(Unauthorized):
        await complete_second_factor(rt, lambda uow: two_factor.verify_passkey(rt, uow, third.token, late, RP))


async def test_a_passkey_answer_from_another_origin_or_key_is_refused(rt: Runtime, world: World) -> None:
    key = await add_passkey(rt, world.operator_id)
    ticket = (await first_factor(rt, world.operator_email)).second_factor
    assert ticket
    with pytest.raises(Unauthorized):
        await passkey_step(rt, ticket.token, key, origin="http://evil.example")
    stranger = SoftAuthenticator(origin=RP.origin)
    with pytest.raises(Unauthorized):
        await passkey_step(rt, ticket.token, stranger)
    for junk in ("", "{}", "[1]", '{"id": 1, "response": {}}', "x" * 100_000):
        with pytest.raises(Unauthorized):
            await complete_second_factor(
                rt, lambda uow, j=junk: two_factor.verify_passkey(rt, uow, ticket.token, j, RP)
            )
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await uow.session.execute(text("select count(*) from operator_sessions"))).scalar_one() == 0


async def test_passkey_registration_refuses_bad_answers(rt: Runtime, world: World) -> None:
    me = await actor(rt, world.operator_id)
    key = SoftAuthenticator(origin=RP.origin)
    async with rt.db.unit_of_work() as uow:
        options = await two_factor.passkey_registration_options(uow, me, RP)
    with pytest.raises(Invalid, match="give the passkey a name"):
        async with rt.db.unit_of_work() as uow:
            await two_factor.register_passkey(rt, uow, me, key.create(options), "   ", RP)
    with pytest.raises(Invalid, match="could not be verified"):
        async with rt.db.unit_of_work() as uow:
            await two_factor.register_passkey(rt, uow, me, key.create(options, origin="http://evil.example"), "K", RP)
    with pytest.raises(Invalid, match="expired"):  # that challenge was spent by the failed attempt
        async with rt.db.unit_of_work() as uow:
            await two_factor.register_passkey(rt, uow, me, key.create(options), "K", RP)
    assert [r.outcome for r in await audit_rows(rt, "auth.two_factor_enrolled")] == ["failed"]
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert not (await two_factor.factors(uow, world.operator_id)).passkeys


async def test_removing_a_passkey_ends_sessions_and_is_audited(rt: Runtime, world: World) -> None:
    await add_passkey(rt, world.operator_id)
    me = await actor(rt, world.operator_id)
    async with rt.db.unit_of_work() as uow:
        session_token = await user_sessions.open_session(rt, uow, world.operator_id, method="password")
        [passkey] = (await two_factor.factors(uow, world.operator_id)).passkeys
    other = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(NotFound):  # somebody else's passkey: not found
            await two_factor.remove_passkey(rt, uow, other, passkey["id"])
    async with rt.db.unit_of_work() as uow:
        await two_factor.remove_passkey(rt, uow, me, passkey["id"])
    async with rt.db.unit_of_work(readonly=True) as uow:
        with pytest.raises(Unauthorized):
            await user_sessions.resolve_session(uow, session_token)
        found = await two_factor.factors(uow, world.operator_id)
    assert not found.passkeys
    assert found.recovery_total == 0
    [removed] = await audit_rows(rt, "auth.two_factor_removed")
    assert removed.detail == '{"factor":"passkey","remaining":0}'
    assert (await first_factor(rt, world.operator_email)).second_factor is None


# ---------------------------------------------------------------- enforcement
async def test_the_policy_sends_the_roles_it_names_to_enrolment(rt: Runtime, world: World) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await two_factor.set_policy(rt, uow, admin, require_all=False, roles=["operator"])
    mia = await first_factor(rt, world.operator_email)
    assert mia.second_factor is not None
    assert mia.second_factor.stage == two_factor.ENROL
    assert (await first_factor(rt, world.admin_email)).second_factor is None  # administrators are not named
    async with rt.db.unit_of_work() as uow:
        await two_factor.set_policy(rt, uow, admin, require_all=True, roles=[])
    ada = await first_factor(rt, world.admin_email)
    assert ada.second_factor is not None
    assert ada.second_factor.stage == two_factor.ENROL
    [changed, _] = await audit_rows(rt, "settings.two_factor_updated")
    assert changed.detail == '{"require_all":false,"role_count":1,"roles":"operator"}'


async def test_enrolment_at_login_opens_the_session_only_once_enrolled(rt: Runtime, world: World) -> None:
    clock.freeze(T0)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await two_factor.set_policy(rt, uow, admin, require_all=True, roles=[])
    ticket = (await first_factor(rt, world.operator_email)).second_factor
    assert ticket
    assert ticket.stage == two_factor.ENROL
    with pytest.raises(two_factor.TicketExpired):  # an enrolment ticket cannot verify a code
        await verify(rt, ticket.token, "123456")
    async with rt.db.unit_of_work() as uow:
        setup = await two_factor.enrol_view(rt, uow, ticket.token)
    with pytest.raises(Unauthorized):
        await complete_second_factor(rt, lambda uow: two_factor.enrol_totp_at_login(rt, uow, ticket.token, "000000"))
    code = code_now(setup.secret)
    done = await complete_second_factor(rt, lambda uow: two_factor.enrol_totp_at_login(rt, uow, ticket.token, code))
    assert done.recovery_codes
    assert len(done.recovery_codes) == 10
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await user_sessions.resolve_session(uow, done.token)).operator_id == world.operator_id
    with pytest.raises(two_factor.TicketExpired):
        await complete_second_factor(rt, lambda uow: two_factor.enrol_totp_at_login(rt, uow, ticket.token, code))
    # Next time: the ordinary second step.
    later = (await first_factor(rt, world.operator_email)).second_factor
    assert later
    assert later.stage == two_factor.VERIFY


async def test_passkey_enrolment_at_login(rt: Runtime, world: World) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await two_factor.set_policy(rt, uow, admin, require_all=False, roles=["operator"])
    ticket = (await first_factor(rt, world.operator_email)).second_factor
    assert ticket
    key = SoftAuthenticator(origin=RP.origin)
    async with rt.db.unit_of_work() as uow:
        options = await two_factor.enrol_passkey_options_at_login(uow, ticket.token, RP)
    answer = key.create(options)
    done = await complete_second_factor(
        rt, lambda uow: two_factor.enrol_passkey_at_login(rt, uow, ticket.token, answer, "YubiKey", RP)
    )
    assert done.recovery_codes
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await two_factor.two_factor_state(uow, world.operator_id) == "passkey"


async def test_the_last_factor_cannot_be_removed_while_required(rt: Runtime, world: World) -> None:
    clock.freeze(T0)
    await enrol_totp(rt, world.operator_id)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await two_factor.set_policy(rt, uow, admin, require_all=True, roles=[])
    me = await actor(rt, world.operator_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Invalid, match="requires a second factor"):
            await two_factor.remove_totp(rt, uow, me)
    async with rt.db.unit_of_work() as uow:
        await two_factor.set_policy(rt, uow, admin, require_all=False, roles=[])
    async with rt.db.unit_of_work() as uow:
        await two_factor.remove_totp(rt, uow, me)
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await two_factor.two_factor_state(uow, world.operator_id) == "none"


async def test_the_policy_needs_settings_permission_and_known_roles(rt: Runtime, world: World) -> None:
    mia = await actor(rt, world.operator_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Forbidden):
            await two_factor.set_policy(rt, uow, mia, require_all=True, roles=[])
    async with rt.db.unit_of_work(readonly=True) as uow:
        with pytest.raises(Forbidden):
            await two_factor.read_policy(uow, mia)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(Invalid):
            await two_factor.set_policy(rt, uow, admin, require_all=False, roles=["operator", "<script>"])
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await two_factor.get_policy(uow, world.workspace_id) == two_factor.PolicyView(False, [])


# ---------------------------------------------------------------- races (PostgreSQL: real concurrency)
async def test_one_totp_code_opens_one_session_under_a_race(rt: Runtime, world: World, db_kind: str) -> None:
    clock.freeze(T0)
    secret, _ = await enrol_totp(rt, world.operator_id)
    tickets = [(await first_factor(rt, world.operator_email)).second_factor for _ in range(4)]
    code = code_now(secret)
    results = await asyncio.gather(*(verify(rt, t.token, code) for t in tickets if t), return_exceptions=True)
    opened = [r for r in results if isinstance(r, str)]
    assert len(opened) == 1, results
    assert all(isinstance(r, Unauthorized) for r in results if not isinstance(r, str))


async def test_complete_login_without_a_ticket_for_other_methods(rt: Runtime, world: World) -> None:
    """Any first factor (directory, single sign-on) passes through the same second step."""
    clock.freeze(T0)
    await enrol_totp(rt, world.operator_id)
    result = await complete_login(rt, operator_id=world.operator_id, method="oidc", client=CLIENT)
    assert result.second_factor is not None
    assert result.token == ""
    async with rt.db.unit_of_work(readonly=True) as uow:
        method = (await uow.session.execute(text("select method from two_factor_tickets"))).scalar_one()
    assert method == "oidc"
