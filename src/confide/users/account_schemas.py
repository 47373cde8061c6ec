"""The forms of accounts (ADR 0012): a workspace's password and session rules, a password change."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from confide.auth.passwords import MAX_LENGTH, MIN_LENGTH


class AccountRulesIn(BaseModel):
    """Settings -> Security -> Passwords."""

    model_config = ConfigDict(extra="forbid")
    password_min_length: Annotated[int, Field(ge=MIN_LENGTH, le=128)] = MIN_LENGTH
    password_max_age_days: Annotated[int, Field(ge=0, le=3650)] = 0  # 0: never (NIST SP 800-63B)
    session_idle_timeout_min: Annotated[int, Field(ge=5, le=24 * 60)] = 30
    session_max_per_operator: Annotated[int, Field(ge=0, le=100)] = 0  # 0: no cap


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: Annotated[str, Field(min_length=1, max_length=MAX_LENGTH)]
    new_password: Annotated[str, Field(min_length=1, max_length=MAX_LENGTH)]
