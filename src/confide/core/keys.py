"""Per-subject data keys, stored wrapped under the master key.

Erasure destroys a subject's key: every ciphertext of that subject, in the database or in any
backup of it, becomes unreadable. Rectification (ADR 0032) *rotates* it: a new key replaces the
old one, every ciphertext re-encrypted under it, so that the old values in a backup die with the
old key. Writers of new ciphertexts take their keys with ``for_write``: read from the row (shared
lock on PostgreSQL), so that a write and a rotation are ordered and no row is ever written under a
key that a committed rotation has replaced; the cache serves only the very key the row holds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import LargeBinary, String, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from confide.core import clock
from confide.core.crypto import DataKey, KeyWrapper
from confide.core.db import Base
from confide.core.errors import NotFound


class SubjectKey(Base):
    __tablename__ = "subject_keys"

    subject_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(32), index=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    destroyed_at: Mapped[datetime | None]


class KeyRing:
    """Creates, loads (with a bounded cache of unwrapped keys) and destroys subject keys."""

    def __init__(self, wrapper: KeyWrapper, cache_size: int = 10_000) -> None:
        self._wrapper = wrapper
        self._cache: OrderedDict[str, tuple[bytes, DataKey]] = OrderedDict()  # subject -> (wrapped, key)
        self._cache_size = cache_size

    @property
    def wrapper(self) -> KeyWrapper:
        """The master key's wrapper, for data keys kept outside ``subject_keys`` (a job's payload)."""
        return self._wrapper

    async def create(self, session: AsyncSession, *, workspace_id: str, subject_id: str) -> DataKey:
        wrapped, key = self._wrapper.new_wrapped_key(subject_id)
        session.add(
            SubjectKey(subject_id=subject_id, workspace_id=workspace_id, wrapped_key=wrapped, created_at=clock.now())
        )
        self._remember(subject_id, wrapped, key)
        return key

    async def get(self, session: AsyncSession, subject_id: str) -> DataKey:
        cached = self._cache.get(subject_id)
        if cached is not None:
            self._cache.move_to_end(subject_id)
            return cached[1]
        wrapped = await session.scalar(select(SubjectKey.wrapped_key).where(SubjectKey.subject_id == subject_id))
        if wrapped is None:
            raise NotFound("subject key not found or destroyed")
        return self._current(subject_id, bytes(wrapped))

    async def readable(self, session: AsyncSession, subject_ids: Iterable[str]) -> dict[str, DataKey]:
        """The keys of these subjects as their rows hold them now: read (``FOR SHARE`` on
        PostgreSQL, in id order: a rotation of one of them waits for this transaction, or this one
        for the rotation and then reads the new key), the cache serving only the very key a row
        holds. Destroyed or missing keys are left out (a batch that meets an erased subject goes on)."""
        ids = sorted(set(subject_ids))
        if not ids:
            return {}
        stmt = (
            select(SubjectKey.subject_id, SubjectKey.wrapped_key)
            .where(SubjectKey.subject_id.in_(ids))
            .order_by(SubjectKey.subject_id)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(read=True)
        rows = (await session.execute(stmt)).all()
        return {sid: self._current(sid, bytes(wrapped)) for sid, wrapped in rows if wrapped is not None}

    async def for_write(self, session: AsyncSession, subject_ids: Iterable[str]) -> dict[str, DataKey]:
        """The keys to encrypt new rows of these subjects with (``readable``); ``NotFound`` for a
        destroyed or missing key."""
        ids = sorted(set(subject_ids))
        keys = await self.readable(session, ids)
        if len(keys) != len(ids):
            raise NotFound("subject key not found or destroyed")
        return keys

    def from_rows(self, subject_ids: Iterable[str], rows: Iterable[tuple[str, bytes | None]]) -> dict[str, DataKey]:
        """``for_write`` from ``subject_keys`` rows the caller read in its own write transaction
        (the SQLite message writer reads them on its raw connection, with its other reads): the
        cache serves a key only while the row still holds the very key it cached."""
        held = {sid: wrapped for sid, wrapped in rows}
        keys: dict[str, DataKey] = {}
        for sid in subject_ids:
            wrapped = held.get(sid)
            if wrapped is None:
                raise NotFound("subject key not found or destroyed")
            keys[sid] = self._current(sid, bytes(wrapped))
        return keys

    async def get_for_write(self, session: AsyncSession, subject_id: str) -> DataKey:
        """``for_write`` of one subject: the key to encrypt a new or changed value with."""
        return (await self.for_write(session, [subject_id]))[subject_id]

    async def lock(self, session: AsyncSession, subject_ids: Iterable[str]) -> dict[str, DataKey]:
        """The subjects' current keys, their rows locked ``FOR UPDATE`` in id order (a rotation);
        destroyed or missing keys are left out."""
        ids = sorted(set(subject_ids))
        if not ids:
            return {}
        rows = await session.execute(
            select(SubjectKey.subject_id, SubjectKey.wrapped_key)
            .where(SubjectKey.subject_id.in_(ids))
            .order_by(SubjectKey.subject_id)
            .with_for_update()
        )
        return {sid: self._wrapper.unwrap(bytes(w), sid) for sid, w in rows.all() if w is not None}

    async def replace(self, session: AsyncSession, subject_id: str) -> DataKey:
        """A new key for the subject in place of the old one (rotation; the row locked by ``lock``).
        Not cached until the caller's commit: a rollback keeps the old key the only one; the
        caller forgets the old key after its commit, on every node (``KeysDestroyed``)."""
        wrapped, key = self._wrapper.new_wrapped_key(subject_id)
        await session.execute(
            update(SubjectKey)
            .where(SubjectKey.subject_id == subject_id, SubjectKey.wrapped_key.is_not(None))
            .values(wrapped_key=wrapped, created_at=clock.now())
        )
        self.forget(subject_id)
        return key

    def _current(self, subject_id: str, wrapped: bytes) -> DataKey:
        cached = self._cache.get(subject_id)
        if cached is not None and cached[0] == wrapped:
            self._cache.move_to_end(subject_id)
            return cached[1]
        key = self._wrapper.unwrap(wrapped, subject_id)
        self._remember(subject_id, wrapped, key)
        return key

    async def destroy(self, session: AsyncSession, subject_id: str) -> None:
        row = await session.get(SubjectKey, subject_id)
        if row is not None:
            row.wrapped_key = None
            row.destroyed_at = clock.now()
        self.forget(subject_id)

    def forget(self, subject_id: str) -> None:
        self._cache.pop(subject_id, None)

    def _remember(self, subject_id: str, wrapped: bytes, key: DataKey) -> None:
        self._cache[subject_id] = (bytes(wrapped), key)
        self._cache.move_to_end(subject_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
