"""Every route and every socket frame declares what it needs; nothing outside ``permissions/``
compares roles or permissions; docs/permissions.md is the table policy.py generates."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, get_args

from starlette.routing import Mount

from confide.app import create_app
from confide.config import Settings
from confide.permissions import policy
from confide.permissions.policy import BUILT_IN_ROLES, Permission
from confide.web.permits import OTHER_ROUTES, access_of, iter_routes
from confide.web.ws.dispatch import FRAME_ACCESS, frame_type
from confide.web.ws.operator import operator
from confide.web.ws.schemas import OperatorFrame, VisitorFrame
from confide.web.ws.visitor import visitor

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "confide"


def _app() -> Any:
    return create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))


def route_table() -> list[tuple[str, str, str]]:
    """(methods, path, declared access) of every route the app serves."""
    rows = []
    for route in iter_routes(_app().routes):
        methods = ",".join(sorted(getattr(route, "methods", None) or {"WS" if not isinstance(route, Mount) else "*"}))
        access = access_of(route)
        rows.append((methods, route.path, str(access) if access is not None else "UNDECLARED"))
    return rows


def test_every_route_declares_its_access() -> None:
    undeclared = [(m, p) for m, p, access in route_table() if access == "UNDECLARED"]
    assert undeclared == [], "declare these routes with needs()/authenticated()/visitor()/public() (web/permits.py)"


def test_the_declarations_are_the_documented_ones() -> None:
    declared = {(m, p): a for m, p, a in route_table()}
    # A few that matter most, spelled out: the settings need settings permissions, chats need chats.
    assert declared[("GET", "/app/settings")] == "settings.read"
    assert declared[("POST", "/app/settings/sites")] == "settings.manage"
    assert declared[("POST", "/app/settings/operators")] == "users.manage"
    assert declared[("POST", "/app/settings/roles")] == "roles.manage"
    assert declared[("GET", "/api/v1/conversations/{conversation_id}")] == "chats.read"
    assert declared[("POST", "/api/v1/auth/login")] == "public"
    assert declared[("WS", "/ws/operator")] == "authenticated"
    assert all(p.startswith("/api/v1/widget/") for (m, p), a in declared.items() if a == "visitor" and m != "WS")
    for path in OTHER_ROUTES:  # no stale entry
        assert any(p == path for _, p in declared), path


def _frames(union: Any) -> list[type[Any]]:
    return list(get_args(get_args(union)[0]))


def test_every_frame_declares_its_access() -> None:
    for dispatcher, union in ((operator, OperatorFrame), (visitor, VisitorFrame)):
        declared = dispatcher.declared()
        assert set(declared) == set(_frames(union)), dispatcher.name
        assert set(FRAME_ACCESS[dispatcher.name]) == {frame_type(f) for f in _frames(union)}, "stale declarations"
    ops = {frame_type(f): str(a) for f, a in operator.declared().items()}
    assert ops == {
        "status": "chats.participate",
        "accept": "chats.participate",
        "message": "chats.participate",
        "typing": "chats.participate",
        "read": "chats.participate",
        "transfer": "chats.participate",
        "close": "chats.participate",
        "history": "chats.read",
        "ping": "authenticated",
    }
    assert {str(a) for a in visitor.declared().values()} == {"visitor"}


# ---------------------------------------------------------------- no role checks outside permissions/
FORBIDDEN_NAMES = {"is_admin", "require_admin"}
ROLE_KEYS = set(BUILT_IN_ROLES) | set(policy.LEGACY_ROLE_KEYS)


def _offences(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_NAMES:
            found.append(f"{node.attr} (line {node.lineno})")
        if isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(f"{node.id} (line {node.lineno})")
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in FORBIDDEN_NAMES:
            found.append(f"def {node.name} (line {node.lineno})")
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            ops = node.ops
            # actor.role == ..., x.role == "literal", "literal" in actor.permissions, actor.scope != ...
            # (comparing a stored role with another stored role, e.g. "did it change?", is data, not access)
            grants = [
                o for o in operands if isinstance(o, ast.Attribute) and o.attr in ("role", "permissions", "scope")
            ]
            literal = any(isinstance(o, ast.Constant) and isinstance(o.value, str) for o in operands)
            of_actor = any("actor" in ast.unparse(o.value) or ast.unparse(o.value) == "me" for o in grants)
            if grants and (literal or of_actor):
                found.append(f"comparison with a role, permissions or scope (line {node.lineno})")
            # a comparison with a role key literal: == "admin", in ("administrator", ...)
            for o in operands:
                consts = [o] if isinstance(o, ast.Constant) else list(getattr(o, "elts", []))
                if any(isinstance(c, ast.Constant) and c.value in ROLE_KEYS - {"operator"} for c in consts):
                    found.append(f"comparison with a role key (line {node.lineno})")
            # Permission.X in ..., ... not in Permission
            if any(isinstance(op, ast.In | ast.NotIn) for op in ops) and any(
                isinstance(o, ast.Attribute) and isinstance(o.value, ast.Name) and o.value.id in ("Permission", "P")
                for o in operands
            ):
                found.append(f"membership test of a permission (line {node.lineno})")
    return found


def test_no_role_or_permission_checks_outside_permissions() -> None:
    offenders = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] in ("permissions", "migrations"):
            continue
        found = _offences(ast.parse(path.read_text(), str(path)))
        if found:
            offenders[str(rel)] = found
    assert offenders == {}


def test_the_checker_finds_what_it_forbids() -> None:
    """The AST check above is not vacuous: each forbidden shape is caught."""
    for source in (
        "if actor.is_admin: pass",
        'if op.role == "x": pass',
        'ok = "admin" == key',
        "ok = Permission.CHATS_READ in perms",
        'ok = k in ("administrator", "auditor")',
        "require_admin(actor)",
        "ok = P.CHATS_READ not in actor.permissions",
        'ok = actor.scope == "workspace"',
        'ok = op.role == "supervisor"',
        "ok = key == actor.role",
        'ok = "chats.read" in actor.permissions',
    ):
        assert _offences(ast.parse(source)), source
    assert _offences(ast.parse("require(actor, Permission.CHATS_READ)")) == []
    assert _offences(ast.parse("changed = op.role != role_before")) == []  # data, not an access decision


def test_templates_ask_can_not_roles() -> None:
    for path in (SRC / "web" / "dashboard" / "templates").glob("*.html"):
        source = path.read_text()
        assert "is_admin" not in source, path.name
        assert "me.role" not in source, path.name
        assert "me.permissions" not in source, path.name


# ---------------------------------------------------------------- the documented table
def permissions_table() -> str:
    roles = list(BUILT_IN_ROLES.values())
    head = "| Permission | " + " | ".join(r.name for r in roles) + " |"
    rule = "|---|" + "|".join(":-:" for _ in roles) + "|"
    lines = [head, rule]
    for p in Permission:
        lines.append(f"| `{p.value}` | " + " | ".join("✓" if p in r.permissions else "" for r in roles) + " |")
    lines.append("| *scope* | " + " | ".join(r.scope.value for r in roles) + " |")
    return "\n".join(lines)


def test_docs_table_is_generated_from_policy() -> None:
    doc = (ROOT / "docs" / "permissions.md").read_text()
    start, end = "<!-- roles-table:start -->", "<!-- roles-table:end -->"
    assert start in doc
    assert end in doc
    table = doc.split(start, 1)[1].split(end, 1)[0].strip()
    assert table == permissions_table(), "docs/permissions.md is stale; paste:\n" + permissions_table()


def test_docs_name_every_route_declaration() -> None:
    doc = (ROOT / "docs" / "permissions.md").read_text()
    for methods, path, access in route_table():
        if path.startswith(("/docs", "/redoc", "/openapi")):
            continue
        assert f"`{path}`" in doc, f"docs/permissions.md does not list {methods} {path} ({access})"
