"""The error answers the JSON API documents in OpenAPI (what ``DomainError`` and FastAPI render)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorOut(BaseModel):
    """Every refusal: a sentence for people and a stable code for programs."""

    detail: str
    code: str


class ValidationErrorOut(BaseModel):
    """FastAPI's answer to a body, query or path that does not match the schema."""

    detail: list[dict[str, Any]]


_DESCRIPTIONS = {
    400: "The body is not valid JSON (or not UTF-8)",
    401: "Not logged in, or wrong e-mail or password",
    403: "Not allowed (an administrator's action, or an origin the site does not allow)",
    404: "No such object, or not yours (denial looks exactly like absence)",
    409: "Conflicts with the current state (e.g. an e-mail in use)",
    422: "The input does not validate",
    429: "Too many requests; try again in a moment",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the listed error statuses, with their bodies."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model: Any = (ErrorOut | ValidationErrorOut) if status == 422 else ErrorOut
        out[status] = {"description": _DESCRIPTIONS[status], "model": model}
    return out
