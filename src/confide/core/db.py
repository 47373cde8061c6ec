"""Database kernel: engines for SQLite (embedded default) and PostgreSQL, the declarative Base,
and the unit of work that every edge (request, frame, job, command) opens exactly once.

Services never commit. ``UnitOfWork.after_commit`` callbacks (event fan-out, job release) run
only after a successful commit and are dropped on rollback.

On SQLite, ``Database.raw_transaction`` is the hot path's way around SQLAlchemy and aiosqlite: a
dedicated ``sqlite3`` connection driven from one thread of its own (the message writer's batches).
Same file, same PRAGMAs (``synchronous`` included), one transaction per block, serialised with
every other write transaction of the process by the same lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from confide.core.errors import CommitAndRaise, DomainError, Invalid

log = structlog.get_logger(__name__)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always returns aware datetimes (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NUL_MESSAGE = "text must not contain NUL characters"


def _nul_in_text(exc: BaseException) -> bool:
    """PostgreSQL refuses a NUL character in text (SQLite stores it as it is): whatever field of
    whichever input carried one, the caller gets a 422 with a sentence, never a 500, and the unit
    of work has rolled back."""
    return isinstance(exc, DBAPIError) and "invalid byte sequence" in str(exc.orig) and "0x00" in str(exc.orig)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012


AfterCommit = Callable[[], Awaitable[None] | None]
T = TypeVar("T")


class AfterCommitHooks:
    """Callbacks run once a transaction has committed (dropped on rollback)."""

    __slots__ = ("_after",)

    def __init__(self) -> None:
        self._after: list[AfterCommit] = []

    def after_commit(self, callback: AfterCommit) -> None:
        self._after.append(callback)

    async def release_events(self) -> None:
        """Run the after-commit callbacks (done by ``unit_of_work`` unless it was told not to)."""
        await self._run_after_commit()

    async def _run_after_commit(self) -> None:
        for callback in self._after:
            try:
                result = callback()
                if result is not None:
                    await result
            except Exception:  # one failing listener must not undo a committed transaction
                log.exception("after_commit_failed")
        self._after.clear()


BeforeCommit = Callable[[], Awaitable[None]]


class UnitOfWork(AfterCommitHooks):
    __slots__ = ("_before", "readonly", "session")

    def __init__(self, session: AsyncSession, *, readonly: bool = False) -> None:
        super().__init__()
        self.session = session
        self.readonly = readonly
        self._before: list[BeforeCommit] = []

    def before_commit(self, callback: BeforeCommit) -> None:
        """Run ``callback`` inside the transaction, just before it commits (the audit log chains
        its rows there, so that the chain head is always the last lock a transaction takes).
        Registered once per key by the caller; refused in a read-only unit, which never commits."""
        if self.readonly:
            raise RuntimeError("a read-only unit of work cannot write (before_commit)")
        if callback not in self._before:
            self._before.append(callback)

    async def _run_before_commit(self) -> None:
        while self._before:
            await self._before.pop(0)()


class RawTransaction(AfterCommitHooks):
    """One transaction on the raw SQLite writer connection (``Database.raw_transaction``).

    ``await run(fn)`` calls ``fn(connection)`` in the writer thread now (the first call begins the
    transaction); ``at_commit(fn)`` queues ``fn`` to run in the same thread call as the ``COMMIT``
    that ends the block (one trip to the thread for the writes and the commit; the service that
    queues writes still never commits). Statements use ``?`` parameters and must bind the values
    SQLAlchemy would (e.g. times in its SQLite text format)."""

    __slots__ = ("_at_commit", "_begun", "_raw")

    def __init__(self, raw: _RawSQLite) -> None:
        super().__init__()
        self._raw = raw
        self._begun = False
        self._at_commit: list[Callable[[sqlite3.Connection], object]] = []

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        begin, self._begun = not self._begun, True

        def call(conn: sqlite3.Connection) -> T:
            if begin:
                conn.execute("BEGIN IMMEDIATE")
            return fn(conn)

        return await self._raw.call(call)

    def at_commit(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        self._at_commit.append(fn)

    async def _commit(self) -> None:
        if not self._begun and not self._at_commit:
            return
        begin, writes = not self._begun, self._at_commit
        self._begun, self._at_commit = True, []

        def call(conn: sqlite3.Connection) -> None:
            if begin:
                conn.execute("BEGIN IMMEDIATE")
            for fn in writes:
                fn(conn)
            conn.execute("COMMIT")

        await self._raw.call(call)


class _RawSQLite:
    """A ``sqlite3`` connection opened and used in one dedicated thread only."""

    def __init__(self, path: str, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None, check_same_thread=False)
            cursor = conn.cursor()
            _sqlite_pragmas(cursor, self._synchronous)
            cursor.close()
            self._conn = conn
        return self._conn

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return fn(self._connection())

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        if self._conn is not None:  # never opened: no thread to start just to close nothing
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class Database:
    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine: AsyncEngine = create_async_engine(
                url, echo=echo, pool_size=8, max_overflow=0, pool_timeout=30, connect_args={"timeout": 30}
            )
            _configure_sqlite(self.engine, sqlite_synchronous)
        else:
            self.engine = create_async_engine(url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        path = self.engine.url.database if self.is_sqlite else None
        self._raw = _RawSQLite(path, sqlite_synchronous) if path and path != ":memory:" else None
        # SQLite has one writer at a time: serialise write transactions in-process instead of
        # letting them collide on the file lock (busy_timeout covers other processes, e.g. the CLI).
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @contextlib.asynccontextmanager
    async def unit_of_work(self, *, readonly: bool = False, release_events: bool = True) -> AsyncIterator[UnitOfWork]:
        """One transaction. ``release_events=False``: the caller runs ``uow.release_events()`` itself
        after the block (the message writer does, so that fan-out overlaps the next commit)."""
        lock = self._write_lock if not readonly else None
        pending: DomainError | None = None
        if lock is not None:
            await lock.acquire()
        try:
            async with self.sessions() as session:
                uow = UnitOfWork(session, readonly=readonly)
                try:
                    yield uow
                    if not readonly:
                        await uow._run_before_commit()
                except CommitAndRaise as signal:
                    pending = signal.error
                    await uow._run_before_commit()
                    await session.commit()
                except BaseException as exc:
                    await session.rollback()
                    if _nul_in_text(exc):
                        raise Invalid(NUL_MESSAGE) from None
                    raise
                else:
                    # A read-only unit just closes: its transaction ends with the session, and the
                    # objects it loaded stay readable (a rollback would expire them).
                    if not readonly:
                        try:
                            await session.commit()
                        except DBAPIError as exc:
                            await session.rollback()
                            if _nul_in_text(exc):
                                raise Invalid(NUL_MESSAGE) from None
                            raise
        finally:
            if lock is not None:
                lock.release()
        if release_events:
            await uow._run_after_commit()
        if pending is not None:
            raise pending

    @property
    def has_raw_transactions(self) -> bool:
        """True on a SQLite file database: ``raw_transaction`` is available."""
        return self._raw is not None

    @contextlib.asynccontextmanager
    async def raw_transaction(self) -> AsyncIterator[RawTransaction]:
        """One write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``) on the dedicated SQLite writer
        connection, serialised with the process's other write transactions. The block's
        ``after_commit`` callbacks are left to the caller (``tx.release_events()``), like
        ``unit_of_work(release_events=False)``."""
        raw, lock = self._raw, self._write_lock
        if raw is None or lock is None:
            raise RuntimeError("raw transactions need a SQLite file database")
        async with lock:
            tx = RawTransaction(raw)
            try:
                yield tx
                await tx._commit()
            except BaseException:
                # the writer thread runs calls in order: this rollback follows any statement still running
                await asyncio.shield(raw.call(_rollback))
                raise

    async def checkpoint(self) -> None:
        """Copy the WAL into the database file without blocking writers (SQLite only)."""
        if self.is_sqlite:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    async def truncate_wal(self) -> None:
        """Copy the WAL into the database file and empty it (SQLite; erasure does, so that erased
        pages leave the WAL). Taken under the process's write lock: a ``TRUNCATE`` checkpoint holds
        the writer lock while it waits for readers, so a write transaction of this process that
        began reading meanwhile could never upgrade (``database is locked``)."""
        if not self.is_sqlite or self._write_lock is None:
            return
        async with self._write_lock, self.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def truncate_wal_after_commit(self, unit: AfterCommitHooks) -> None:
        """``truncate_wal`` once ``unit`` has committed (SQLite; nothing elsewhere), best effort: a
        reader holding an old snapshot makes it wait its turn, and the background checkpoint
        follows anyway. For erasure and rectification: the pages that held the old rows or keys
        leave the WAL."""
        if not self.is_sqlite:
            return

        async def truncate() -> None:
            with contextlib.suppress(Exception):
                await self.truncate_wal()

        unit.after_commit(truncate)

    async def checkpoint_forever(self, interval_s: float = 2.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.checkpoint()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("wal_checkpoint_failed")

    async def dispose(self) -> None:
        if self._raw is not None:
            await self._raw.close()
            self._raw = None
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine, synchronous: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy (not the driver) decide where transactions begin, so reads are consistent.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _sqlite_pragmas(cursor, synchronous)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


def _sqlite_pragmas(cursor: Any, synchronous: str) -> None:
    """Every SQLite connection of the process, pooled or raw, runs with these."""
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # No checkpoint inside a commit (it would stall that commit for the whole copy and fsync):
    # the server checkpoints in the background instead (Database.checkpoint_forever).
    cursor.execute("PRAGMA wal_autocheckpoint=0")
