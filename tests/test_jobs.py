"""Durable jobs and the mail outbox, against a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from confide.core import clock, jobs, mail
from confide.core.broker import MemoryBroker
from confide.core.runtime import Runtime, build_runtime
from confide.worker.jobs import JobRunner
from tests.conftest import free_port
from tests.mailbox import Mailbox

RCPT = "ines.invitee@shop.example"


def use_smtp(rt: Runtime, port: int, *, security: str = "none") -> None:
    rt.settings.smtp_host = "127.0.0.1"
    rt.settings.smtp_port = port
    rt.settings.smtp_security = security  # type: ignore[assignment]
    rt.settings.smtp_timeout_s = 5


async def queue(rt: Runtime, n: int = 1, *, to: str = RCPT) -> list[str]:
    async with rt.db.unit_of_work() as uow:
        return [mail.enqueue_mail(rt, uow, to=[to], subject=f"Message {i}", text=f"Body {i}\n",
                                  html=f"<p>Body {i}</p>") for i in range(n)]


async def job_row(rt: Runtime, job_id: str) -> jobs.Job | None:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await jobs.get(uow, job_id)


async def test_a_rolled_back_unit_queues_nothing_and_a_committed_one_wakes_the_runner(rt: Runtime) -> None:
    signal = jobs.signal(rt.db)
    signal.clear()
    async def failing_action() -> None:
        async with rt.db.unit_of_work() as uow:
            mail.enqueue_mail(rt, uow, to=[RCPT], subject="Never", text="never sent")
            raise RuntimeError("the action failed")

    with pytest.raises(RuntimeError):
        await failing_action()
    assert not signal.is_set()
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await jobs.counts(uow) == {}
    (job_id,) = await queue(rt)
    assert signal.is_set()
    row = await job_row(rt, job_id)
    assert row is not None
    assert row.state == jobs.PENDING
    assert row.attempts == 0
    # The payload is encrypted at rest: neither the address nor the body is readable in the row.
    assert row.payload_enc is not None
    assert b"ines" not in row.payload_enc
    assert b"Body" not in row.payload_enc
    assert jobs.open_payload(rt, row) == {"to": [RCPT], "subject": "Message 0", "text": "Body 0\n",
                                          "html": "<p>Body 0</p>"}


async def test_enqueue_refuses_unknown_kinds_and_read_only_units(rt: Runtime) -> None:
    async with rt.db.unit_of_work() as uow:
        with pytest.raises(ValueError, match="no handler"):
            jobs.enqueue(rt, uow, "nope", {})
    async with rt.db.unit_of_work(readonly=True) as uow:
        with pytest.raises(RuntimeError):
            jobs.enqueue(rt, uow, mail.KIND, {})


async def test_mail_is_sent_to_a_real_smtp_server_and_the_job_goes(rt: Runtime) -> None:
    async with Mailbox() as box:
        use_smtp(rt, box.port)
        (job_id,) = await queue(rt)
        assert await JobRunner(rt, node_id="n1").drain() == 1
        (got,) = box.received
    assert got.rcpt_tos == [RCPT]
    assert got.message["To"] == RCPT
    assert got.message["Subject"] == "Message 0"
    assert got.message["From"] == rt.settings.mail_from
    assert got.part("plain").strip() == "Body 0"
    assert got.part("html").strip() == "<p>Body 0</p>"
    assert await job_row(rt, job_id) is None  # done: nothing kept


async def test_starttls_and_login(rt: Runtime, tmp_path: Path) -> None:
    async with Mailbox(tls_dir=tmp_path, user="confide", password="s3cret-smtp") as box:
        use_smtp(rt, box.port, security="starttls")
        rt.settings.smtp_ca_file = box.cert_file
        rt.settings.smtp_user = "confide"
        rt.settings.smtp_password = SecretStr("wrong")
        (job_id,) = await queue(rt)
        await JobRunner(rt, node_id="n1").drain()
        row = await job_row(rt, job_id)
        assert row is not None
        assert row.last_error == "smtp_auth_failed"
        assert row.state == jobs.PENDING
        assert box.received == []
        rt.settings.smtp_password = SecretStr("s3cret-smtp")
        clock.advance(timedelta(seconds=rt.settings.job_backoff_s))
        assert await JobRunner(rt, node_id="n1").drain() == 1
        assert len(box.received) == 1
    assert await job_row(rt, job_id) is None


async def test_smtp_down_is_retried_with_backoff_then_delivered(rt: Runtime) -> None:
    port = free_port()  # nothing listens there yet
    use_smtp(rt, port)
    clock.freeze()
    (job_id,) = await queue(rt)
    runner = JobRunner(rt, node_id="n1")
    assert await runner.run_once() == 1
    row = await job_row(rt, job_id)
    assert row is not None
    assert row.state == jobs.PENDING
    assert row.attempts == 1
    assert row.last_error == "smtp_unreachable"
    assert row.locked_by is None
    assert row.run_after == clock.now() + timedelta(seconds=rt.settings.job_backoff_s)
    assert await runner.run_once() == 0  # not due yet
    clock.advance(timedelta(seconds=rt.settings.job_backoff_s))
    assert await runner.run_once() == 1  # second failure: the delay doubles
    row = await job_row(rt, job_id)
    assert row is not None
    assert row.attempts == 2
    assert row.run_after == clock.now() + timedelta(seconds=2 * rt.settings.job_backoff_s)
    async with Mailbox(port=port) as box:
        clock.advance(timedelta(seconds=2 * rt.settings.job_backoff_s))
        assert await runner.run_once() == 1
        assert [m.message["Subject"] for m in box.received] == ["Message 0"]
    assert await job_row(rt, job_id) is None


async def test_gives_up_after_max_attempts_and_keeps_nothing_personal(rt: Runtime) -> None:
    use_smtp(rt, free_port())
    rt.settings.job_max_attempts = 3
    rt.settings.job_backoff_s = 0
    (job_id,) = await queue(rt)
    runner = JobRunner(rt, node_id="n1")
    for _ in range(5):
        await runner.run_once()
    row = await job_row(rt, job_id)
    assert row is not None
    assert row.state == jobs.FAILED
    assert row.attempts == 3
    assert row.last_error == "smtp_unreachable"
    assert row.finished_at is not None
    assert row.payload_enc is None
    assert row.wrapped_key is None
    async with rt.db.unit_of_work() as uow:
        assert await jobs.purge_failed(uow, clock.now() - timedelta(days=1)) == 0
        assert await jobs.purge_failed(uow, clock.now() + timedelta(seconds=1)) == 1


async def test_a_refused_recipient_fails_at_once(rt: Runtime) -> None:
    async with Mailbox() as box:
        box.handler.refuse.add(RCPT)
        use_smtp(rt, box.port)
        (job_id,) = await queue(rt)
        await JobRunner(rt, node_id="n1").drain()
    row = await job_row(rt, job_id)
    assert row is not None
    assert row.state == jobs.FAILED
    assert row.attempts == 1
    assert row.last_error == "smtp_recipient_refused"


async def test_without_smtp_mail_is_kept_in_the_data_folder(rt: Runtime, capfd: pytest.CaptureFixture[str]) -> None:
    assert rt.settings.smtp_host == ""
    await queue(rt, 2)
    assert await JobRunner(rt, node_id="n1").drain() == 2
    files = sorted((rt.settings.data_dir / "mail").glob("*.eml"))
    assert len(files) == 2
    texts = [f.read_text() for f in files]
    assert all(f"To: {RCPT}" in t for t in texts)
    assert {"Subject: Message 0", "Subject: Message 1"} <= {line for t in texts for line in t.splitlines()}
    assert RCPT not in capfd.readouterr().err


async def test_a_crashed_nodes_job_runs_again_after_its_lease(rt: Runtime) -> None:
    async with Mailbox() as box:
        use_smtp(rt, box.port)
        (job_id,) = await queue(rt)
        async with rt.db.unit_of_work() as uow:  # node "dead" claims it, then never finishes
            (claimed,) = await jobs.claim(rt, uow, "dead")
        alive = JobRunner(rt, node_id="alive")
        assert await alive.run_once() == 0  # held, lease running
        clock.advance(timedelta(seconds=rt.settings.job_lease_s + 1))
        assert await alive.run_once() == 1
        assert len(box.received) == 1
        async with rt.db.unit_of_work() as uow:  # the dead node coming back cannot finish it twice
            assert await jobs.finish(rt, uow, claimed, "dead", None) is None
    assert await job_row(rt, job_id) is None


async def test_unreadable_payload_and_unknown_kind_fail_without_crashing(rt: Runtime) -> None:
    (job_id,) = await queue(rt)
    async with rt.db.unit_of_work() as uow:
        row = await uow.session.scalar(select(jobs.Job).where(jobs.Job.id == job_id))
        assert row is not None
        row.payload_enc = b"\x01garbage" * 4
    await JobRunner(rt, node_id="n1").drain()
    row = await job_row(rt, job_id)
    assert row is not None
    assert row.state == jobs.FAILED
    assert row.last_error == "payload_unreadable"


async def test_the_runner_loop_is_woken_after_commit(rt: Runtime) -> None:
    rt.settings.job_sweep_s = 600  # the sweep alone would take ten minutes: only the wake-up can deliver
    async with Mailbox() as box:
        use_smtp(rt, box.port)
        task = asyncio.create_task(JobRunner(rt, node_id="n1").run())
        try:
            await asyncio.sleep(0.1)  # the runner is asleep now
            await queue(rt, 3)
            got = await box.wait_for(3, timeout=5)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert sorted(m.message["Subject"] for m in got) == ["Message 0", "Message 1", "Message 2"]


@pytest.mark.parametrize("db_kind", ["postgresql"])  # two nodes share a PostgreSQL database (SQLite is one process)
async def test_two_runners_on_postgresql_send_each_mail_exactly_once(rt: Runtime, db_kind: str) -> None:
    other = build_runtime(rt.settings, broker=MemoryBroker())
    try:
        async with Mailbox() as box:
            use_smtp(rt, box.port)  # both runtimes share the settings object
            await queue(rt, 40)
            a, b = JobRunner(rt, node_id="a", batch=3), JobRunner(other, node_id="b", batch=3)
            done = await asyncio.gather(a.drain(), b.drain(), a.drain(), b.drain())
            assert sum(done) == 40
            subjects = [m.message["Subject"] for m in box.received]
        assert len(subjects) == 40
        assert len(set(subjects)) == 40
        assert done[0] + done[2] > 0, f"node b did everything: {done}"
        assert done[1] + done[3] > 0, f"node a did everything: {done}"
        async with rt.db.unit_of_work(readonly=True) as uow:
            assert await jobs.counts(uow) == {}
    finally:
        await other.close()
