"""The dispatcher: each client frame type maps to one handler; one unit of work per frame.

A handler is registered with the unit it needs: ``"write"`` (a transaction, committed after the
handler returns, events released after the commit), ``"read"`` (a read-only unit) or ``None``
(no database at all: ping, typing, or a message handed to the batched writer, which commits and
acknowledges it itself). A handler calls one service function and renders; it holds no SQL and
no role checks (the services and ``permissions/`` decide). A ``DomainError`` becomes the
documented error frame, with ``ref`` echoing the frame's ``client_id``.

Every frame type declares what it needs, in ``FRAME_ACCESS`` (one place the tests read): a
permission the socket's operator must hold *now* (checked on every frame against the current
actor, which role changes refresh), ``authenticated`` (any operator) or ``visitor`` (the visitor
socket's token). A frame the operator may not send is answered with the error frame
``forbidden`` ("you do not have permission to do this") and does nothing but be audited: a
refused frame (here, or ``Forbidden`` from the service it calls) writes ``access.denied``, at most a
few rows per socket and minute (``web/ws/denials.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar, get_args
from weakref import WeakKeyDictionary

import structlog
from pydantic import BaseModel

from confide.auth.actors import OperatorActor
from confide.core.db import UnitOfWork
from confide.core.errors import DomainError, Forbidden
from confide.core.runtime import Runtime
from confide.permissions.policy import Permission, allows
from confide.realtime.outbox import Outbox
from confide.realtime.wire import domain_error_frame, error_frame
from confide.web.permits import AUTHENTICATED, VISITOR, Access
from confide.web.ws.denials import DenialBudget

log = structlog.get_logger(__name__)
Unit = Literal["read", "write"]


def _needs(permission: Permission) -> Access:
    return Access("permission", permission)


# dispatcher name -> frame type -> what the frame needs.
FRAME_ACCESS: dict[str, dict[str, Access]] = {
    "operator": {
        "status": _needs(Permission.CHATS_PARTICIPATE),  # going online means being offered chats
        "accept": _needs(Permission.CHATS_PARTICIPATE),
        "message": _needs(Permission.CHATS_PARTICIPATE),
        "typing": _needs(Permission.CHATS_PARTICIPATE),
        "read": _needs(Permission.CHATS_PARTICIPATE),
        "transfer": _needs(Permission.CHATS_PARTICIPATE),
        "close": _needs(Permission.CHATS_PARTICIPATE),
        "history": _needs(Permission.CHATS_READ),
        "ping": AUTHENTICATED,
    },
    "visitor": {
        kind: VISITOR for kind in ("hello", "message", "typing", "read", "end", "rate", "leave_message", "ping")
    },
}
DENIED = Forbidden("you do not have permission to do this")


def frame_type(frame: type[BaseModel]) -> str:
    """The ``type`` a frame model accepts (its literal)."""
    return str(get_args(frame.model_fields["type"].annotation)[0])


class Connection(Protocol):
    @property
    def rt(self) -> Runtime: ...

    @property
    def outbox(self) -> Outbox: ...

    def log_id(self) -> dict[str, str]: ...


C = TypeVar("C", bound=Connection)
F = TypeVar("F", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class _Route(Generic[C]):
    call: Callable[[C, UnitOfWork | None, Any], Awaitable[None]]
    unit: Unit | None


class Dispatcher(Generic[C]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._routes: dict[type[BaseModel], _Route[C]] = {}
        self._access: dict[type[BaseModel], Access] = {}
        self._denials: WeakKeyDictionary[Any, DenialBudget] = WeakKeyDictionary()  # per socket

    def unit(
        self, frame: type[F], unit: Unit
    ) -> Callable[[Callable[[C, UnitOfWork, F], Awaitable[None]]], Callable[[C, UnitOfWork, F], Awaitable[None]]]:
        """Register a handler that runs inside one unit of work (``"read"`` or ``"write"``)."""

        def register(
            handler: Callable[[C, UnitOfWork, F], Awaitable[None]],
        ) -> Callable[[C, UnitOfWork, F], Awaitable[None]]:
            async def call(conn: C, uow: UnitOfWork | None, value: Any) -> None:
                assert uow is not None
                await handler(conn, uow, value)

            self._add(frame, _Route(call, unit))
            return handler

        return register

    def plain(self, frame: type[F]) -> Callable[[Callable[[C, F], Awaitable[None]]], Callable[[C, F], Awaitable[None]]]:
        """Register a handler that needs no unit of work."""

        def register(handler: Callable[[C, F], Awaitable[None]]) -> Callable[[C, F], Awaitable[None]]:
            async def call(conn: C, _uow: UnitOfWork | None, value: Any) -> None:
                await handler(conn, value)

            self._add(frame, _Route(call, None))
            return handler

        return register

    def _add(self, frame: type[BaseModel], route: _Route[C]) -> None:
        if frame in self._routes:
            raise TypeError(f"{self.name}: {frame.__name__} has two handlers")
        access = FRAME_ACCESS.get(self.name, {}).get(frame_type(frame))
        if access is None:
            raise TypeError(f"{self.name}: {frame.__name__} declares no access (web/ws/dispatch.py FRAME_ACCESS)")
        self._routes[frame] = route
        self._access[frame] = access

    def declared(self) -> dict[type[BaseModel], Access]:
        """Each frame type's declared access (the tests read it)."""
        return dict(self._access)

    def check_covers(self, union: Any) -> None:
        """Fail at import when a frame of the socket's union has no handler (or a handler no frame)."""
        members = set(get_args(get_args(union)[0]))
        if members != set(self._routes):
            missing = sorted(m.__name__ for m in members - set(self._routes))
            extra = sorted(m.__name__ for m in set(self._routes) - members)
            raise TypeError(f"{self.name}: frames without a handler {missing}, handlers without a frame {extra}")

    async def dispatch(self, conn: C, frame: BaseModel) -> None:
        route = self._routes[type(frame)]
        access = self._access[type(frame)]
        if access.permission is not None:
            actor = getattr(conn, "actor", None)  # the current actor: refreshed when their role changes
            if not isinstance(actor, OperatorActor) or not allows(actor, access.permission):
                conn.outbox.put(domain_error_frame(DENIED, getattr(frame, "client_id", None)))
                await self._denied(conn, frame)
                return
        try:
            if route.unit is None:
                await route.call(conn, None, frame)
            else:
                async with conn.rt.db.unit_of_work(readonly=route.unit == "read") as uow:
                    await route.call(conn, uow, frame)
        except DomainError as exc:
            conn.outbox.put(domain_error_frame(exc, getattr(frame, "client_id", None)))
            if isinstance(exc, Forbidden):  # the service refused it (its unit has rolled back)
                await self._denied(conn, frame)
        except Exception:
            # A bug or the database failing, never client input: the fuzz tests hold every input to a
            # documented answer. Logged with pseudonymous ids only.
            log.exception(f"{self.name}_frame_failed", frame_type=type(frame).__name__, **conn.log_id())
            conn.outbox.put(
                error_frame("internal", "something went wrong; try again", getattr(frame, "client_id", None))
            )

    async def _denied(self, conn: C, frame: BaseModel) -> None:
        """Audit a refused frame of an operator's socket (bounded per socket: ``web/ws/denials``)."""
        actor = getattr(conn, "actor", None)
        if not isinstance(actor, OperatorActor):
            return  # a visitor's socket: its token reaches its own conversation only, nothing to deny
        budget = self._denials.get(conn)
        if budget is None:
            budget = self._denials[conn] = DenialBudget(self.name)
        await budget.denied(conn.rt, actor, frame_type(type(frame)))

    async def closed(self, conn: C) -> None:
        """The socket is gone: the summary of the denials its last window left out, if any."""
        budget = self._denials.pop(conn, None)
        actor = getattr(conn, "actor", None)
        if budget is not None and isinstance(actor, OperatorActor):
            await budget.flush(conn.rt, actor)
