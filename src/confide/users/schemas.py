from __future__ import annotations

from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, field_validator

# A role's key: a built-in role's ("administrator", "supervisor", "operator", "privacy_officer",
# "auditor"; "admin" is still read as "administrator") or a workspace's custom role's id.
Role = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
Status = Literal["online", "away", "offline"]


def check_email(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False, test_environment=True).normalized.casefold()
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Annotated[str, Field(min_length=3, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class SecondFactorIn(BaseModel):
    """The second step of a JSON API log-in: the ticket it was given and a TOTP or recovery code."""

    model_config = ConfigDict(extra="forbid")
    ticket: Annotated[str, Field(min_length=1, max_length=200)]
    code: Annotated[str, Field(min_length=1, max_length=64)]


class OperatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Annotated[str, Field(max_length=320)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    password: Annotated[str, Field(min_length=12, max_length=1024)]
    role: Role = "operator"
    max_chats: Annotated[int, Field(ge=1, le=10_000)] = 5
    department_ids: list[str] = Field(default_factory=list, max_length=200)

    _email = field_validator("email")(check_email)


class OperatorPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    role: Role | None = None
    max_chats: Annotated[int, Field(ge=1, le=10_000)] | None = None
    disabled: bool | None = None
    department_ids: list[str] | None = Field(default=None, max_length=200)
    password: Annotated[str, Field(min_length=12, max_length=1024)] | None = None


class RoleIn(BaseModel):
    """A custom role: a name, what it is for, how far it reaches and its permissions."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=80)]
    description: Annotated[str, Field(max_length=300)] = ""
    scope: Literal["workspace", "departments", "own"] = "own"
    permissions: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("name", "description")
    @classmethod
    def _strip(cls, value: str) -> str:
        return " ".join(value.split())

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value:
            raise ValueError("a role needs a name")
        return value
