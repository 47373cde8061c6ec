"""Who is calling. Built by authentication; consumed by permissions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class OperatorActor:
    operator_id: str
    workspace_id: str
    role: str  # the role's key (a built-in role, or a workspace's custom role)
    department_ids: frozenset[str]
    name: str
    # Filled by authentication from the role (permissions.policy); only permissions/ reads them.
    permissions: frozenset[str] = frozenset()
    scope: str = "workspace"  # permissions.policy.Scope
    session_id: str | None = None
    session_expires_at: datetime | None = None  # when the console session ends (sockets check each frame)


@dataclass(frozen=True)
class VisitorActor:
    visitor_id: str
    site_id: str
    workspace_id: str


Actor = OperatorActor | VisitorActor
