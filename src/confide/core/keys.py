"""Per-subject data keys, stored wrapped under the master key.

Erasure destroys a subject's key: every ciphertext of that subject, in the database or in any
backup of it, becomes unreadable.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from sqlalchemy import LargeBinary, String, select
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
        self._cache: OrderedDict[str, DataKey] = OrderedDict()
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
        self._remember(subject_id, key)
        return key

    async def get(self, session: AsyncSession, subject_id: str) -> DataKey:
        key = self._cache.get(subject_id)
        if key is not None:
            self._cache.move_to_end(subject_id)
            return key
        wrapped = await session.scalar(select(SubjectKey.wrapped_key).where(SubjectKey.subject_id == subject_id))
        if wrapped is None:
            raise NotFound("subject key not found or destroyed")
        key = self._wrapper.unwrap(wrapped, subject_id)
        self._remember(subject_id, key)
        return key

    async def destroy(self, session: AsyncSession, subject_id: str) -> None:
        row = await session.get(SubjectKey, subject_id)
        if row is not None:
            row.wrapped_key = None
            row.destroyed_at = clock.now()
        self.forget(subject_id)

    def forget(self, subject_id: str) -> None:
        self._cache.pop(subject_id, None)

    def _remember(self, subject_id: str, key: DataKey) -> None:
        self._cache[subject_id] = key
        self._cache.move_to_end(subject_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
