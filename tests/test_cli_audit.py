"""``confide audit verify``: proves the chain (exit 0) or names the first broken row (exit 1);
``create-admin`` and ``reset-password`` are audited."""

from __future__ import annotations

from sqlalchemy import select

from confide.audit import service as audit
from confide.audit.models import AuditEvent
from confide.config import Settings
from confide.core.runtime import Runtime
from tests.cli_helpers import run_cli
from tests.conftest import World
from tests.test_audit_chain import _tamper


async def _rows(rt: Runtime) -> list[tuple[str, str, str | None, str | None, str | None, str]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = (await uow.session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all()
    return [(r.action, r.actor_type, r.actor_id, r.target_type, r.target_id, r.outcome) for r in rows]


async def test_verify_proves_an_intact_log_and_names_a_changed_row(rt: Runtime, settings: Settings) -> None:
    result = await run_cli(settings, "audit", "verify")
    assert (result.exit_code, result.output.strip()) == (0, "audit log intact: 0 rows")
    for n in range(5):
        async with rt.db.unit_of_work() as uow:
            await audit.record(rt, uow, "auth.login", actor_type="operator", actor_id=f"op{n}")
    result = await run_cli(settings, "audit", "verify")
    assert (result.exit_code, result.output.strip()) == (0, "audit log intact: 5 rows")
    await _tamper(rt, "UPDATE audit_events SET actor_id = 'op9' WHERE seq = 3")  # one row changed
    result = await run_cli(settings, "audit", "verify")
    assert result.exit_code == 1
    assert result.output.strip() == "audit log broken at seq 3: the row's content does not match its hash"


async def test_verify_names_a_removed_row(rt: Runtime, settings: Settings) -> None:
    for n in range(3):
        async with rt.db.unit_of_work() as uow:
            await audit.record(rt, uow, "auth.login", actor_type="operator", actor_id=f"op{n}")
    await _tamper(rt, "DELETE FROM audit_events WHERE seq = 2")
    result = await run_cli(settings, "audit", "verify")
    assert result.exit_code == 1
    assert result.output.strip() == "audit log broken at seq 2: a row is missing"


async def test_create_admin_and_reset_password_are_audited(rt: Runtime, settings: Settings, world: World) -> None:
    before = len(await _rows(rt))
    result = await run_cli(
        settings,
        "create-admin",
        "--email",
        "root@shop.example",
        "--name",
        "Canary Root",
        CONFIDE_ADMIN_PASSWORD="a long enough password 1",
    )
    assert result.exit_code == 0, result.output
    new_id = result.output.strip().rsplit(" ", 1)[-1]
    result = await run_cli(
        settings, "reset-password", world.operator_email, CONFIDE_ADMIN_PASSWORD="another password 22"
    )
    assert result.exit_code == 0, result.output
    assert (await _rows(rt))[before:] == [
        ("users.created", "system", None, "operator", new_id, "ok"),
        ("users.password_reset", "system", None, "operator", world.operator_id, "ok"),
    ]
    result = await run_cli(settings, "audit", "verify")
    assert result.exit_code == 0, result.output
