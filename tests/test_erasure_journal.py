"""The erasure journal and its replay (ADR 0033): a database backup taken BEFORE an erasure and
restored afterwards brings the person back; the journal, kept outside the database, erases them
again (rows gone, key destroyed, tombstones and certificate back), at start-up or with
``confide erasure replay``; a second replay does nothing; a tampered journal is refused with its
line number and erases nothing; concurrent appends (threads and processes) never interleave; no
personal value given at chat start reaches the journal file.

The backup is real: SQLite's online backup API copies the file; PostgreSQL's ``pg_dump`` /
``pg_restore`` on loopback (the tables are truncated first, as a restore onto the same server)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import multiprocessing
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from confide.app import create_app
from confide.config import Settings
from confide.core import crypto
from confide.core.broker import MemoryBroker
from confide.core.db import Base
from confide.core.errors import Invalid
from confide.core.keys import SubjectKey
from confide.core.logging import configure as configure_logging
from confide.core.runtime import Runtime, build_runtime
from confide.erasure import journal, replay, tombstones
from confide.erasure import service as erasure
from confide.erasure.models import Certificate
from confide.retention import service as retention
from confide.retention.schemas import HoldIn, LiftIn
from tests.cli_helpers import run_cli
from tests.conftest import MASTER_KEY, World
from tests.helpers_api import actor, count, set_status, start_chat
from tests.test_erasure import _all_values, _contains, seed_person

TAG = "jr7q2x"


# ---------------------------------------------------------------- backup and restore, for real
def _libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def backup(rt: Runtime, settings: Settings, tmp_path: Path) -> Path:
    """A full backup of the database as it is now (nothing of the journal: it lives apart)."""
    if rt.db.is_sqlite:
        dest = tmp_path / "backup.db"
        live = settings.data_dir / "confide.db"

        def copy() -> None:
            src, dst = sqlite3.connect(live), sqlite3.connect(dest)
            with dst:
                src.backup(dst)
            src.close()
            dst.close()

        await asyncio.to_thread(copy)
        return dest
    dest = tmp_path / "backup.dump"
    await asyncio.to_thread(subprocess.run, ["pg_dump", "--format=custom", "--data-only", "--file", str(dest),
                                             _libpq(settings.database_url)], check=True)
    return dest


async def restore(rt: Runtime, settings: Settings, dump: Path) -> None:
    """Put the backup back in place of the live database."""
    await rt.db.engine.dispose()
    if rt.db.is_sqlite:
        live = settings.data_dir / "confide.db"

        def copy() -> None:
            src, dst = sqlite3.connect(dump), sqlite3.connect(live, timeout=30)
            with dst:
                src.backup(dst)
            src.close()
            dst.close()

        await asyncio.to_thread(copy)
        return
    async with rt.db.engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {names} CASCADE"))
    await rt.db.engine.dispose()
    await asyncio.to_thread(subprocess.run, ["pg_restore", "--data-only", "--disable-triggers", "--single-transaction",
                                             "--dbname", _libpq(settings.database_url), str(dump)], check=True)


# ---------------------------------------------------------------- what a person leaves
async def key_of(rt: Runtime, subject_id: str) -> bytes | None:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await uow.session.scalar(select(SubjectKey.wrapped_key).where(SubjectKey.subject_id == subject_id))


async def visitor_exists(rt: Runtime, visitor_id: str) -> bool:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return bool(await uow.session.scalar(text("select count(*) from visitors where id = :v"), {"v": visitor_id}))


async def tombstoned(rt: Runtime, workspace_id: str, visitor_id: str) -> bool:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await tombstones.is_erased(rt, uow, workspace_id, visitor_id=visitor_id)


async def certificates(rt: Runtime) -> dict[str, Certificate]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return {c.id: c for c in (await uow.session.scalars(select(Certificate))).all()}


async def erase(rt: Runtime, world: World, *visitor_ids: str) -> Certificate:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        return await erasure.erase(rt, uow, admin, world.workspace_id, list(visitor_ids), reason="request",
                                   request_id="REQ-7")


async def person(rt: Runtime, client: httpx.AsyncClient, world: World, who: str) -> dict[str, Any]:
    await set_status(rt, world.operator_id)
    return await start_chat(client, world, {"name": f"Canary{who}{TAG}", "email": f"canary{who}{TAG}@example.com"})


def journal_lines(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(line) for line in settings.erasure_journal_path.read_text().splitlines()]


# ---------------------------------------------------------------- the restore
async def test_a_restored_backup_is_erased_again_and_a_second_replay_does_nothing(
    rt: Runtime, client: httpx.AsyncClient, world: World, settings: Settings, tmp_path: Path
) -> None:
    ana = await seed_person(rt, client, world, "ana")
    bob = await seed_person(rt, client, world, "bob")
    vid = ana["visitor_id"]
    dump = await backup(rt, settings, tmp_path)
    cert = await erase(rt, world, vid)

    # One line, ids and digests only: none of what Ana gave at chat start (or anywhere) is in it.
    raw = settings.erasure_journal_path.read_bytes()
    assert [c for c in ana["canaries"].values() if c.encode() in raw] == []
    (line,) = journal_lines(settings)
    assert line["n"] == 1
    assert line["prev"] == ""
    assert line["certificate"]["id"] == cert.id
    assert line["certificate"]["state"] == "done"
    assert line["workspace_id"] == world.workspace_id
    assert line["visitor_ids"] == [vid]
    assert vid in line["keys"]
    kinds = {k for _, k in line["tombstones"]}
    assert {"visitor", "email", "identity"} <= kinds
    assert await replay.needed(rt) is False  # the database reflects the journal

    await restore(rt, settings, dump)
    assert await visitor_exists(rt, vid)  # the restore brought Ana back, readable
    assert await key_of(rt, vid) is not None
    assert not await tombstoned(rt, world.workspace_id, vid)
    assert cert.id not in await certificates(rt)
    assert await replay.needed(rt) is True

    dry = await replay.run(rt, dry_run=True)
    assert dry.replayed == [cert.id]
    assert dry.visitors_erased == 1
    assert await visitor_exists(rt, vid)  # a dry run changes nothing

    report = await replay.run(rt)
    assert report.replayed == [cert.id]
    assert report.visitors_erased == 1
    assert report.certificates_restored == 1
    assert report.tombstones_restored == len(line["tombstones"])
    assert report.unjournaled == []
    assert not await visitor_exists(rt, vid)
    assert await key_of(rt, vid) is None
    assert await tombstoned(rt, world.workspace_id, vid)
    held = await certificates(rt)
    assert held[cert.id].request_id == "REQ-7"
    assert held[cert.id].state == "done"
    (again,) = [c for c in held.values() if c.reason == "restore"]
    assert again.filter == {"replay_of": cert.id}
    assert again.state == "done"
    assert again.subjects == 1
    # As if the erasure had happened: no value of Ana's in any column of any table; Bob untouched.
    needles = [v.encode() for v in ana["canaries"].values()]
    assert [(t, c) for t, c, value in await _all_values(rt) if _contains(value, needles)] == []
    assert await visitor_exists(rt, bob["visitor_id"])
    assert await key_of(rt, bob["visitor_id"]) is not None
    # The replay's own erasure is journalled too, chained after the first line.
    lines = journal_lines(settings)
    assert [x["n"] for x in lines] == [1, 2]
    assert lines[1]["prev"] == lines[0]["mac"]
    assert lines[1]["certificate"]["reason"] == "restore"
    assert lines[1]["certificate"]["state"] == "done"
    assert await replay.needed(rt) is False

    second = await replay.run(rt)
    assert second.nothing_to_do
    assert second.lines == 2
    assert len(journal_lines(settings)) == 2
    assert len(await certificates(rt)) == 2


async def test_the_server_replays_at_start_up_when_the_database_is_behind_the_journal(
    rt: Runtime, client: httpx.AsyncClient, world: World, settings: Settings, tmp_path: Path
) -> None:
    ana = await person(rt, client, world, "Ana")
    bob = await person(rt, client, world, "Bob")
    dump = await backup(rt, settings, tmp_path)
    await erase(rt, world, ana["visitor_id"])
    await restore(rt, settings, dump)
    assert await visitor_exists(rt, ana["visitor_id"])
    # Someone erased on the restored database before the server starts: the journal's last
    # certificate is then in the database, and Ana's rolled-back one must still be seen.
    await erase(rt, world, bob["visitor_id"])
    assert await replay.needed(rt) is True

    fresh = build_runtime(settings, broker=MemoryBroker())
    application = create_app(runtime=fresh)
    async with application.router.lifespan_context(application):
        assert not await visitor_exists(fresh, ana["visitor_id"])
        assert await key_of(fresh, ana["visitor_id"]) is None
        assert await tombstoned(fresh, world.workspace_id, ana["visitor_id"])
        assert await replay.needed(fresh) is False


async def test_a_hold_brought_back_by_the_restore_does_not_stop_the_replay(
    rt: Runtime, client: httpx.AsyncClient, world: World, settings: Settings, tmp_path: Path
) -> None:
    ana = await person(rt, client, world, "Ana")
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        hold = await retention.place_hold(rt, uow, admin, HoldIn(target_type="visitor", target_id=ana["visitor_id"],
                                                                  reason="case 2026-118"))
    dump = await backup(rt, settings, tmp_path)  # the backup holds the hold
    async with rt.db.unit_of_work() as uow:
        await retention.lift_hold(rt, uow, admin, hold["id"], LiftIn(reason="case closed"))
    await erase(rt, world, ana["visitor_id"])
    await restore(rt, settings, dump)
    report = await replay.run(rt)
    assert report.visitors_erased == 1
    assert not await visitor_exists(rt, ana["visitor_id"])


# ---------------------------------------------------------------- a tampered journal
async def test_a_tampered_journal_is_refused_with_its_line_number_and_nothing_is_erased(
    rt: Runtime, client: httpx.AsyncClient, world: World, settings: Settings, tmp_path: Path
) -> None:
    ana = await person(rt, client, world, "Ana")
    bob = await person(rt, client, world, "Bob")
    dump = await backup(rt, settings, tmp_path)
    await erase(rt, world, ana["visitor_id"])
    await erase(rt, world, bob["visitor_id"])
    await restore(rt, settings, dump)
    path = settings.erasure_journal_path
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == 2
    body = json.loads(lines[1])
    body["certificate"]["subjects"] = 7  # a quiet change of line 2
    path.write_text(lines[0] + json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n")

    with pytest.raises(replay.Refused) as refused:
        await replay.run(rt)
    assert refused.value.line == 2
    assert "line 2 of the erasure journal was changed" in refused.value.message
    assert await visitor_exists(rt, ana["visitor_id"])
    assert await visitor_exists(rt, bob["visitor_id"])

    result = await run_cli(settings, "erasure", "replay")
    assert result.exit_code == 1, result.output
    assert "line 2 of the erasure journal" in result.output
    assert "nothing was erased" in result.output
    assert await visitor_exists(rt, ana["visitor_id"])
    assert await visitor_exists(rt, bob["visitor_id"])
    # The server starts anyway, logs the refusal (no ids of people), and erases nothing.
    buffer = io.StringIO()
    configure_logging("info", stream=buffer)
    assert await replay.at_startup(rt) is None
    assert "erasure_journal_refused" in buffer.getvalue()
    assert await visitor_exists(rt, ana["visitor_id"])

    forced = await run_cli(settings, "erasure", "replay", "--force")
    assert forced.exit_code == 0, forced.output
    assert "replayed anyway" in forced.output
    assert not await visitor_exists(rt, ana["visitor_id"])
    assert not await visitor_exists(rt, bob["visitor_id"])


@pytest.mark.parametrize("damage", ["removed", "swapped", "foreign key", "not json"])
async def test_every_kind_of_damage_names_its_line(tmp_path: Path, damage: str) -> None:
    path, key = tmp_path / "j.jsonl", crypto.derive_journal_key(crypto.b64d(MASTER_KEY))
    for i in range(4):
        record = journal.record_of({"id": f"c{i}"}, "w", [f"v{i}"], [f"v{i}"], [("d", "visitor")])
        journal.append_sync(path, key, record)
    assert journal.read(path, key).ok
    assert len(journal.read(path, key).entries) == 4
    lines = path.read_text().splitlines(keepends=True)
    if damage == "removed":
        del lines[1]
        expected = 2
    elif damage == "swapped":
        lines[1], lines[2] = lines[2], lines[1]
        expected = 2
    elif damage == "foreign key":  # a line re-chained under another key (someone without the master key)
        other = tmp_path / "other.jsonl"
        journal.append_sync(other, crypto.derive_journal_key(crypto.random_key()),
                            journal.record_of({"id": "c0"}, "w", ["v0"], ["v0"], [("d", "visitor")]))
        lines[0] = other.read_text()
        expected = 1
    else:
        lines[2] = "{not json\n"
        expected = 3
    path.write_text("".join(lines))
    reading = journal.read(path, key)
    assert reading.line == expected
    assert f"line {expected}" in (reading.problem or "")


# ---------------------------------------------------------------- concurrency
def _append_many(path: str, key_b64: str, who: int, count_: int) -> None:
    """In another process: three threads appending ``count_`` lines each."""
    key = crypto.b64d(key_b64)

    def work(t: int) -> None:
        for i in range(count_):
            ids = [f"p{who}t{t}n{i}" + "x" * 40]
            journal.append_sync(Path(path), key, journal.record_of({"id": f"c{who}-{t}-{i}"}, "w", ids, ids,
                                                                    [("d" * 32, "visitor")] * 20))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def test_concurrent_appends_from_processes_and_threads_never_interleave(tmp_path: Path) -> None:
    path, key = tmp_path / "j.jsonl", crypto.random_key()
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(4, mp_context=ctx) as pool:
        list(pool.map(_append_many, [str(path)] * 4, [crypto.b64e(key)] * 4, range(4), [15] * 4))
    reading = journal.read(path, key)
    assert reading.ok, reading.problem
    assert [e.n for e in reading.entries] == list(range(1, 181))
    assert len({e.certificate_id for e in reading.entries}) == 180


async def test_two_erasures_at_once_on_one_node_give_two_well_formed_lines(
    rt: Runtime, client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    people = [await person(rt, client, world, f"P{i}") for i in range(4)]
    admin = await actor(rt, world.admin_id)

    async def one(vid: str) -> str:
        async with rt.db.unit_of_work() as uow:
            return (await erasure.erase(rt, uow, admin, world.workspace_id, [vid], reason="request")).id

    ids = await asyncio.gather(*(one(p["visitor_id"]) for p in people))
    reading = journal.read(settings.erasure_journal_path, rt.journal_key)
    assert reading.ok, reading.problem
    assert sorted(e.certificate_id for e in reading.entries) == sorted(ids)
    assert [e.n for e in reading.entries] == [1, 2, 3, 4]


async def test_two_nodes_replaying_at_once_erase_once(
    rt: Runtime, client: httpx.AsyncClient, world: World, settings: Settings, tmp_path: Path
) -> None:
    people = [await person(rt, client, world, f"N{i}") for i in range(3)]
    dump = await backup(rt, settings, tmp_path)
    for p in people:
        await erase(rt, world, p["visitor_id"])
    await restore(rt, settings, dump)
    other = build_runtime(settings, broker=MemoryBroker())  # a second node (or the CLI) on the same database
    try:
        first, second = await asyncio.gather(replay.run(rt), replay.run(other))
    finally:
        await other.close()
    assert first.visitors_erased + second.visitors_erased == 3
    assert await count(rt, "visitors") == 0
    assert len([c for c in (await certificates(rt)).values() if c.reason == "restore"]) == 3
    reading = journal.read(settings.erasure_journal_path, rt.journal_key)
    assert reading.ok, reading.problem
    assert len(reading.entries) == 6
    assert (await replay.run(rt)).nothing_to_do


async def test_a_line_cut_short_by_a_crash_is_removed_by_the_next_append(tmp_path: Path) -> None:
    path, key = tmp_path / "j.jsonl", crypto.random_key()
    journal.append_sync(path, key, journal.record_of({"id": "c1"}, "w", ["v1"], [], []))
    with path.open("ab") as handle:
        handle.write(b'{"v":1,"n":2,"at":"2026')  # the crash
    reading = journal.read(path, key)
    assert reading.ok
    assert reading.torn
    assert len(reading.entries) == 1
    assert journal.append_sync(path, key, journal.record_of({"id": "c2"}, "w", ["v2"], [], [])) == 2
    reading = journal.read(path, key)
    assert reading.ok
    assert not reading.torn
    assert [e.certificate_id for e in reading.entries] == ["c1", "c2"]


# ---------------------------------------------------------------- bulk, failures, the CLI
async def test_a_bulk_run_is_journalled_per_batch_and_replayed_whole(
    rt: Runtime, client: httpx.AsyncClient, world: World, settings: Settings, tmp_path: Path
) -> None:
    from datetime import timedelta

    from confide.core import clock
    from confide.erasure import bulk

    people = [await person(rt, client, world, f"B{i}") for i in range(5)]
    dump = await backup(rt, settings, tmp_path)
    clock.advance(timedelta(days=2))
    view = await bulk.run(rt, None, world.site_id, clock.now() - timedelta(days=1), batch_size=2)
    assert view["subjects"] == 5
    lines = journal_lines(settings)
    assert [len(x["visitor_ids"]) for x in lines] == [2, 2, 1]
    assert {x["certificate"]["id"] for x in lines} == {view["id"]}
    await restore(rt, settings, dump)
    assert await count(rt, "visitors") == 5
    report = await replay.run(rt)
    assert report.visitors_erased == 5
    assert report.certificates_restored == 1
    assert await count(rt, "visitors") == 0
    restored = (await certificates(rt))[view["id"]]
    assert restored.kind == "bulk"
    assert restored.subjects == 5
    assert all([await tombstoned(rt, world.workspace_id, p["visitor_id"]) for p in people])
    assert (await replay.run(rt)).nothing_to_do


async def test_a_failed_append_leaves_the_erasure_done_logs_its_certificate_and_the_replay_lists_it(
    rt: Runtime, client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    ana = await person(rt, client, world, "Ana")
    settings.erasure_journal_path.mkdir()  # the journal's path is a folder: the append fails
    buffer = io.StringIO()
    configure_logging("info", stream=buffer)
    cert = await erase(rt, world, ana["visitor_id"])
    assert not await visitor_exists(rt, ana["visitor_id"])  # the erasure stands
    logged = buffer.getvalue()
    assert "erasure_journal_append_failed" in logged
    assert cert.id in logged
    assert "Canary" not in logged
    assert TAG not in logged
    settings.erasure_journal_path.rmdir()
    result = await run_cli(settings, "erasure", "replay", "--dry-run")
    assert result.exit_code == 1, result.output
    assert "not in the journal" in result.output
    assert cert.id in result.output


async def test_staff_cannot_give_the_replays_own_reason(rt: Runtime, client: httpx.AsyncClient,
                                                         world: World) -> None:
    ana = await person(rt, client, world, "Ana")
    admin = await actor(rt, world.admin_id)
    with pytest.raises(Invalid, match="reason must be one of"):
        async with rt.db.unit_of_work() as uow:
            await erasure.erase(rt, uow, admin, world.workspace_id, [ana["visitor_id"]], reason="restore")
    assert await visitor_exists(rt, ana["visitor_id"])
    assert "restore" not in erasure.STAFF_REASONS


async def test_the_cli_exit_codes(rt: Runtime, client: httpx.AsyncClient, world: World, settings: Settings,
                                  tmp_path: Path) -> None:
    nothing = await run_cli(settings, "erasure", "replay")  # a fresh database, no journal
    assert nothing.exit_code == 0, nothing.output
    assert "0 journal lines" in nothing.output
    assert "nothing to do" in nothing.output
    assert not settings.erasure_journal_path.exists()
    bad = await run_cli(settings, "erasure", "replay", CONFIDE_PORT="not-a-port")
    assert bad.exit_code == 2
    ana = await person(rt, client, world, "Ana")
    dump = await backup(rt, settings, tmp_path)
    cert = await erase(rt, world, ana["visitor_id"])
    await restore(rt, settings, dump)
    dry = await run_cli(settings, "erasure", "replay", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would be replayed" in dry.output
    assert "dry run: nothing was erased" in dry.output
    assert await visitor_exists(rt, ana["visitor_id"])
    done = await run_cli(settings, "erasure", "replay")
    assert done.exit_code == 0, done.output
    assert cert.id in done.output
    assert "1/1 journal lines replayed" in done.output
    assert not await visitor_exists(rt, ana["visitor_id"])
    # An erasure from the shell (its own runtime and event loop) is journalled as well.
    bob = await person(rt, client, world, "Bob")
    shell = await run_cli(settings, "subject", "erase", "--workspace", world.workspace_id, "--visitor",
                          bob["visitor_id"], "--yes")
    assert shell.exit_code == 0, shell.output
    last = journal_lines(settings)[-1]
    assert last["visitor_ids"] == [bob["visitor_id"]]
    assert last["certificate"]["id"] in shell.output
    again = await run_cli(settings, "erasure", "replay")
    assert again.exit_code == 0
    assert "nothing to do" in again.output
    # Another journal path through the environment.
    elsewhere = tmp_path / "shared" / "journal.jsonl"
    moved = await run_cli(settings, "erasure", "replay", CONFIDE_ERASURE_JOURNAL=str(elsewhere))
    assert moved.exit_code == 1  # the database's certificates are in no line of an empty journal
    assert "not in the journal" in moved.output
    assert Settings(erasure_journal=elsewhere).erasure_journal_path == elsewhere
    assert Settings(data_dir=tmp_path).erasure_journal_path == tmp_path / "erasure-journal.jsonl"
