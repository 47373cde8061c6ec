"""What each HTTP route needs, declared on the route itself and readable from ``app.routes``.

Every route carries exactly one declaration, as a route dependency:

- ``needs(Permission.X)``: a logged-in operator holding ``X`` (else ``401``, or the log-in page for
  a dashboard page; ``403`` when they lack it, with nothing done);
- ``authenticated()``: any logged-in operator (what they then see is scoped by ``permissions/``);
- ``visitor()``: the widget's calls, authorised by the site key, the Origin and the visitor token;
- ``public()``: anyone (the log-in page, the health check, static assets).

The routes Starlette serves itself (the sockets, static files, FastAPI's documentation) are
declared in ``OTHER_ROUTES``. ``tests/test_permissions_declared.py`` fails when a route has no
declaration, and checks each built-in role against each declared route. The socket frames are
declared in ``web/ws/dispatch.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request

from confide.auth.actors import OperatorActor
from confide.core.errors import Unauthorized
from confide.permissions.policy import Permission, require
from confide.users import sessions as user_sessions
from confide.web.api.deps import current_operator
from confide.web.security import is_page

Kind = Literal["permission", "authenticated", "visitor", "public"]
_ATTR = "__confide_access__"


@dataclass(frozen=True, slots=True)
class Access:
    kind: Kind
    permission: Permission | None = None

    def __str__(self) -> str:
        return self.permission.value if self.permission is not None else self.kind


PUBLIC = Access("public")
AUTHENTICATED = Access("authenticated")
VISITOR = Access("visitor")

# Served by Starlette, not by a route with dependencies: declared here (path -> access).
OTHER_ROUTES: dict[str, Access] = {
    "/openapi.json": PUBLIC,
    "/docs": PUBLIC,
    "/docs/oauth2-redirect": PUBLIC,
    "/redoc": PUBLIC,
    "/static": PUBLIC,
    "/ws/operator": AUTHENTICATED,  # every frame is then declared in web/ws/dispatch.py
    "/ws/visitor": VISITOR,
}


def _login_redirect(request: Request) -> HTTPException:
    target = "/app"
    if request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTTPException(status_code=303, headers={"Location": "/login?" + urlencode({"next": target})})


def _declared(access: Access, check: Callable[[Request], Awaitable[None]]) -> Any:
    setattr(check, _ATTR, access)
    return Depends(check)


async def _operator(request: Request) -> OperatorActor:
    """The logged-in operator; a page sends the others to the log-in page, or to the password
    change when theirs must be changed first (an API call gets the 401 or 403 as it is)."""
    try:
        return await current_operator(request)
    except user_sessions.PasswordChangeRequired:
        if is_page(request.url.path):
            raise HTTPException(status_code=303, headers={"Location": "/app/account/password"}) from None
        raise
    except Unauthorized:
        if is_page(request.url.path):
            raise _login_redirect(request) from None
        raise


def needs(permission: Permission) -> Any:
    """A route dependency: the caller is a logged-in operator who holds ``permission``."""

    async def check(request: Request) -> None:
        require(await _operator(request), permission)

    return _declared(Access("permission", permission), check)


def authenticated() -> Any:
    """A route dependency: any logged-in operator (the handler's services scope what they see)."""

    async def check(request: Request) -> None:
        await _operator(request)

    return _declared(AUTHENTICATED, check)


async def _nothing(request: Request) -> None:
    return None


async def _nothing_visitor(request: Request) -> None:
    return None


_PUBLIC = _declared(PUBLIC, _nothing)
_VISITOR = _declared(VISITOR, _nothing_visitor)


def public() -> Any:
    """A route dependency that declares the route open to anyone."""
    return _PUBLIC


def visitor() -> Any:
    """A route dependency that declares a widget call (site key, Origin and visitor token)."""
    return _VISITOR


def access_of(route: Any) -> Access | None:
    """The declaration of a route of ``app.routes`` (None: it has none)."""
    dependant = getattr(route, "dependant", None)
    if dependant is not None:
        found = [getattr(d.call, _ATTR) for d in dependant.dependencies if hasattr(d.call, _ATTR)]
        return found[0] if len(found) == 1 else None
    path = getattr(route, "path", None)
    return OTHER_ROUTES.get(path) if isinstance(path, str) else None


def iter_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route an app serves, with included routers flattened (FastAPI keeps them nested)."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            yield from iter_routes(contexts())
        else:
            yield route
