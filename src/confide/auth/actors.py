"""Who is calling. Built by authentication; consumed by permissions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorActor:
    operator_id: str
    workspace_id: str
    role: str  # admin | operator
    department_ids: frozenset[str]
    name: str
    session_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class VisitorActor:
    visitor_id: str
    site_id: str
    workspace_id: str


Actor = OperatorActor | VisitorActor
