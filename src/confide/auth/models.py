"""Log-in throttling state (``auth.throttle``): one row per key, shared by every node."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class LoginThrottle(Base):
    """Failed log-ins counted under one key: ``a:`` + a keyed hash of the typed e-mail (whether or
    not an account has it, so that throttling tells nothing about which accounts exist), or ``n:`` +
    a keyed hash of the client address. Neither can be turned back into the e-mail or address."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(index=True)
    blocked_until: Mapped[datetime | None]
