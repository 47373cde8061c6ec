"""Where a role is named besides the operators holding it: login limits, the two-factor policy,
directory and single sign-on group mappings, pending invitations (ADR 0024).

Deleting a custom role is decided here, above the domains that store those references (users
cannot import them): the role's row is locked ``FOR UPDATE`` first (every place that stores a
reference share-locks it, ``users.roles.checked_key``), then a role an operator, a pending
invitation or a directory mapping still names is refused (409), and the references that only
configured something for its holders (their login limits, the two-factor policy naming it) go
with it. Nothing is left naming a role that is gone.
"""

from __future__ import annotations

from confide.auth.actors import OperatorActor
from confide.core.db import UnitOfWork
from confide.core.errors import Conflict
from confide.core.runtime import Runtime
from confide.identity import service as identity
from confide.login_limits import service as login_limits
from confide.two_factor import service as two_factor
from confide.users import roles


async def delete_role(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, role_id: str) -> None:
    row = await roles.lock_for_delete(uow, actor, role_id)  # 404 / 403 / 409 (held, invited)
    if await identity.roles_in_use(uow, actor.workspace_id, row.id):
        raise Conflict("the directory or a single sign-on provider maps groups to this role: change that first")
    cleared = await login_limits.forget_role(uow, actor.workspace_id, row.id)
    cleared += await two_factor.forget_role(uow, actor.workspace_id, row.id)
    await roles.delete_role(rt, uow, actor, row.id, cleared=cleared)
