"""Every built-in role against every route and every operator socket frame, generated from the
route table and the frame union: allowed -> it works (2xx/3xx, or the frame's normal answer);
denied -> the documented refusal (403 for a route, the ``not_found`` permission error frame for a
frame) and the database is exactly as before. On SQLite and PostgreSQL (fixture ``db_kind``)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text

import confide.models  # noqa: F401 - every table in Base.metadata
from confide.auth import visitor_tokens
from confide.auth.actors import VisitorActor
from confide.chats.models import Conversation
from confide.core.db import Base
from confide.core.runtime import Runtime
from confide.permissions.policy import BUILT_IN_ROLES, BuiltInRole
from confide.users import roles as user_roles
from confide.users.schemas import RoleIn
from confide.web.permits import Access, access_of, iter_routes
from confide.web.ws.dispatch import frame_type
from confide.web.ws.operator import operator as operator_dispatcher
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import CannedReplyIn
from tests import factories, wsclient
from tests.conftest import Live, World
from tests.helpers_api import SELF, actor, leave_message, login, say, set_status, start_chat

DENIED_JSON = {"detail": "you do not have permission to do this", "code": "forbidden"}
DENIED_FRAME_MESSAGE = "you do not have permission to do this"
# Rows that change on their own or record the attempt rather than the action.
NOT_STATE = {"presence", "audit_events", "audit_head"}
SKIP = ("/docs", "/redoc", "/openapi.json")  # FastAPI's own documentation pages
_n = itertools.count()


def email_of(role: BuiltInRole) -> str:
    return f"{role.key.replace('_', '-')}@shop.example"


@dataclass
class Ctx:
    rt: Runtime
    world: World
    queued_chat: str  # waiting in the world's department: every chatting role reaches it
    request_id: str  # an offline request of the world's department
    role: BuiltInRole
    made: dict[str, str] = field(default_factory=dict)

    async def admin(self) -> Any:
        return await actor(self.rt, self.world.admin_id)

    async def fresh_canned(self) -> str:
        async with self.rt.db.unit_of_work() as uow:
            reply = await workspaces.create_canned_reply(
                uow, await self.admin(), CannedReplyIn(shortcut=f"c{next(_n)}", title="T", text="Text")
            )
            return reply.id

    async def fresh_operator(self) -> str:
        async with self.rt.db.unit_of_work() as uow:
            op = await factories.operator(
                self.rt,
                uow,
                workspace_id=self.world.workspace_id,
                email=f"target{next(_n)}@shop.example",
                name="Target",
                department_ids=[self.world.department_id],
            )
            return op.id

    async def fresh_role(self) -> str:
        async with self.rt.db.unit_of_work() as uow:
            row = await user_roles.create_role(
                self.rt,
                uow,
                await self.admin(),
                RoleIn(name=f"Role {next(_n)}", scope="own", permissions=["chats.read"]),
            )
            return row.id


Sample = Callable[[Ctx], Awaitable[dict[str, Any]]]


def _site_form() -> dict[str, str]:
    return {
        "name": f"Site {next(_n)}",
        "origins": "https://shop.example",
        "privacy_policy_url": "",
        "greeting": "",
        "color": "#2563eb",
        "timezone": "UTC",
        "always_open": "1",
    }


# (method, path) -> the request to make: {"url", "json" | "data"}. A route without a sample fails the
# test: add one when you add a route.
SAMPLES: dict[tuple[str, str], Sample] = {}


def sample(method: str, path: str) -> Callable[[Sample], Sample]:
    def register(fn: Sample) -> Sample:
        SAMPLES[(method, path)] = fn
        return fn

    return register


def plain(method: str, path: str, **kwargs: Any) -> None:
    async def fn(ctx: Ctx) -> dict[str, Any]:
        return {"url": path, **kwargs}

    SAMPLES[(method, path)] = fn


for _path in (
    "/healthz",
    "/api/v1/auth/me",
    "/api/v1/sites",
    "/api/v1/departments",
    "/api/v1/operators",
    "/api/v1/canned-replies",
    "/api/v1/conversations",
    "/api/v1/offline-requests",
    "/widget.js",
    "/widget/app.js",
    "/widget/activity.js",  # ---- activity
    "/widget/identity.js",  # verified identity (ADR 0022)
    "/demo",
    "/",
    "/login",
    "/app",
    "/app/chats",
    "/app/offline",
    "/app/settings",
    "/app/settings/departments",
    "/app/settings/operators",
    "/app/settings/canned",
    "/app/settings/roles",
):
    plain("GET", _path)
plain("POST", "/api/v1/auth/logout")
plain("POST", "/logout", data={})
plain("POST", "/app/chats", data={"status": "closed"})
plain("POST", "/app/offline", data={"state": "all"})


@sample("POST", "/api/v1/auth/login")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/api/v1/auth/login", "json": {"email": email_of(ctx.role), "password": factories.PASSWORD}}


@sample("POST", "/login")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/login", "data": {"email": email_of(ctx.role), "password": factories.PASSWORD, "next": "/app"}}


@sample("POST", "/api/v1/sites")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/api/v1/sites", "json": {"name": f"Site {next(_n)}"}}


@sample("PATCH", "/api/v1/sites/{site_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/sites/{ctx.world.site_id}", "json": {"greeting": f"Hello {next(_n)}"}}


@sample("POST", "/api/v1/departments")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/api/v1/departments", "json": {"site_id": ctx.world.site_id, "name": f"Dept {next(_n)}"}}


@sample("PATCH", "/api/v1/departments/{department_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/departments/{ctx.world.department_id}", "json": {"offer_timeout_s": 20 + next(_n)}}


@sample("POST", "/api/v1/operators")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {
        "url": "/api/v1/operators",
        "json": {
            "email": f"new{next(_n)}@shop.example",
            "name": "New",
            "password": factories.PASSWORD,
            "role": "operator",
        },
    }


@sample("PATCH", "/api/v1/operators/{operator_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/operators/{await ctx.fresh_operator()}", "json": {"max_chats": 7}}


@sample("POST", "/api/v1/canned-replies")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/api/v1/canned-replies", "json": {"shortcut": f"n{next(_n)}", "title": "T", "text": "Text"}}


@sample("DELETE", "/api/v1/canned-replies/{reply_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/canned-replies/{await ctx.fresh_canned()}"}


@sample("GET", "/api/v1/conversations/{conversation_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/conversations/{ctx.queued_chat}"}


@sample("GET", "/app/chats/{conversation_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/chats/{ctx.queued_chat}"}


@sample("POST", "/api/v1/offline-requests/{request_id}/handled")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/offline-requests/{ctx.request_id}/handled", "json": {"handled": True}}


@sample("POST", "/app/offline/{request_id}/handled")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/offline/{ctx.request_id}/handled", "data": {"handled": "0"}}


# ---- issue 6's pages and calls. GETs must work for an allowed role like every other route. For the
# POSTs below a role that is allowed must not be refused (no 403) and nothing may fail (no 5xx); what a
# valid request does is each route's own tests' business (test_accounts_*, test_two_factor_pages,
# test_invites, test_account_review, test_directory_pages, test_login_limits, test_audit_report).
# Public routes keyed by a secret no role holds (an invitation token, a second-factor ticket, a single
# sign-on state) answer every role alike. A denied role still gets exactly 403 and changes nothing.
LENIENT: set[tuple[str, str]] = set()


def lenient(method: str, path: str, **kwargs: Any) -> None:
    plain(method, path, **kwargs)
    LENIENT.add((method, path))


for _path in (
    "/api/v1/auth/sessions",
    "/app/audit",
    "/app/audit/export.csv",
    "/app/account/password",
    "/app/account/sessions",
    "/app/settings/security/passwords",
    "/app/settings/invites",
    "/app/settings/account-review",
    "/app/settings/account-review.csv",
    "/app/settings/security/directory",
    "/app/account/two-factor",
    "/app/settings/security/two-factor",
    "/app/settings/security/login-limits",
    "/app/settings/identity",  # verified identity (ADR 0022)
):
    plain("GET", _path)
plain("POST", "/app/audit", data={"action": "auth.login"})
plain("POST", "/app/audit/verify", data={})
lenient("POST", "/api/v1/auth/password", json={"current_password": "x", "new_password": "short"})
lenient("POST", "/app/account/password", data={})  # refused before any password check or throttle count
lenient("POST", "/app/account/sessions/end", data={"session_id": "no-such-session"})
lenient("POST", "/app/account/sessions/end-others", data={})
lenient("POST", "/app/settings/security/passwords", data={"password_min_length": "12"})
lenient("POST", "/app/settings/account-review/sign-off", data={})
lenient("POST", "/app/settings/account-review/policy", data={"interval_days": "90", "inactive_days": ""})
for _path in (
    "/app/settings/security/directory/ldap",
    "/app/settings/security/directory/ldap/test",
    "/app/settings/security/directory/oidc",
    "/app/settings/security/two-factor",
    "/login/two-factor",
    "/login/two-factor/passkey/options",
    "/login/two-factor/passkey",
    "/login/two-factor/enrol",
    "/login/two-factor/enrol/passkey/options",
    "/login/two-factor/enrol/passkey",
    "/app/account/two-factor/totp/start",
    "/app/account/two-factor/totp/cancel",
    "/app/account/two-factor/totp/confirm",
    "/app/account/two-factor/totp/remove",
    "/app/account/two-factor/recovery",
    "/app/account/two-factor/passkeys/options",
    "/app/account/two-factor/passkeys",
):
    lenient("POST", _path, data={})
for _path in ("/login/two-factor", "/login/two-factor/enrol"):
    lenient("GET", _path)
# ---- rolesfix: the JSON API's second step (a ticket no role holds: answers every role alike)
lenient("POST", "/api/v1/auth/login/second-factor", json={"ticket": "no-such-ticket", "code": "123456"})


def _keyed(method: str, pattern: str, url: str, **kwargs: Any) -> None:
    async def fn(ctx: Ctx) -> dict[str, Any]:
        return {"url": url, **kwargs}

    SAMPLES[(method, pattern)] = fn
    LENIENT.add((method, pattern))


_keyed(
    "POST",
    "/app/settings/invites",
    "/app/settings/invites",
    data={"email": "invited@shop.example", "name": "Invited", "role": "operator"},
)
_keyed("POST", "/app/settings/invites/{invite_id}/revoke", "/app/settings/invites/no-such-invite/revoke", data={})
_keyed("POST", "/app/settings/invites/{invite_id}/resend", "/app/settings/invites/no-such-invite/resend", data={})
_keyed("DELETE", "/api/v1/auth/sessions/{session_id}", "/api/v1/auth/sessions/no-such-session")
_keyed("GET", "/invite/{token}", "/invite/no-such-token")
_keyed("POST", "/invite/{token}", "/invite/no-such-token", data={})
_keyed(
    "POST",
    "/app/settings/security/directory/oidc/{provider_id}",
    "/app/settings/security/directory/oidc/no-such-provider",
    data={},
)
_keyed(
    "POST",
    "/app/settings/security/directory/oidc/{provider_id}/delete",
    "/app/settings/security/directory/oidc/no-such-provider/delete",
    data={},
)
_keyed("GET", "/login/sso/{provider_id}", "/login/sso/no-such-provider")
_keyed("GET", "/login/sso/{provider_id}/callback", "/login/sso/no-such-provider/callback?state=x&code=y")
_keyed(
    "POST",
    "/app/account/two-factor/passkeys/{passkey_id}/remove",
    "/app/account/two-factor/passkeys/no-such-passkey/remove",
    data={},
)
_keyed(
    "POST",
    "/app/settings/security/login-limits/{subject_type}/{subject_id}",
    "/app/settings/security/login-limits/role/supervisor",
    data={"ranges": "", "timezone": "UTC", "w-count": "0"},
)


# ---- verified identity (ADR 0022): Settings → Verified identity
@sample("POST", "/app/settings/identity/{site_id}/secret")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/settings/identity/{ctx.world.site_id}/secret", "data": {}}


@sample("POST", "/app/settings/identity/{site_id}/remove")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/settings/identity/{ctx.world.site_id}/remove", "data": {}}
# ---- end verified identity


def _widget(path: str, method: str, **kwargs: Any) -> None:
    async def fn(ctx: Ctx) -> dict[str, Any]:
        url = "/api/v1/widget/" + ctx.world.site_key + path
        return {"url": url, "headers": {"Origin": ctx.world.origin}, **kwargs}

    SAMPLES[(method, "/api/v1/widget/{site_key}" + (path if path != "/config" else "/config"))] = fn


_widget("/config", "GET")
_widget("/conversations", "POST", json={"fields": {"name": "Ana", "email": "ana@example.com"}, "consents": {}})
_widget("/identity", "POST", json={"identity": {"id": "user-1", "hash": "0" * 64}})  # verified identity (ADR 0022)
_widget(
    "/offline-requests",
    "POST",
    json={"fields": {"name": "Ana", "email": "ana@example.com"}, "consents": {}, "message": "Call me"},
)


# ---- consent (ADR 0018)
async def _visitor_token(ctx: Ctx) -> str:
    async with ctx.rt.db.unit_of_work(readonly=True) as uow:
        conv = await uow.session.get(Conversation, ctx.queued_chat)
        assert conv is not None
        who = VisitorActor(visitor_id=conv.visitor_id, site_id=conv.site_id, workspace_id=conv.workspace_id)
    return visitor_tokens.issue(ctx.rt.visitor_tokens, who, 600)[0]


@sample("POST", "/api/v1/widget/{site_key}/privacy")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/widget/{ctx.world.site_key}/privacy", "headers": {"Origin": ctx.world.origin},
            "json": {"token": await _visitor_token(ctx)}}


@sample("POST", "/api/v1/widget/{site_key}/privacy/choices")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/widget/{ctx.world.site_key}/privacy/choices", "headers": {"Origin": ctx.world.origin},
            "json": {"token": await _visitor_token(ctx), "purpose": "marketing", "granted": True}}


@sample("POST", "/api/v1/conversations/{conversation_id}/consent-statements")
async def _(ctx: Ctx) -> dict[str, Any]:
    async with ctx.rt.db.unit_of_work(readonly=True) as uow:
        conv = await uow.session.get(Conversation, ctx.queued_chat)
        assert conv is not None
        visitor_id = conv.visitor_id
    said = await say(ctx.rt, ctx.queued_chat, "Yes, the newsletter please", sender="visitor", sender_id=visitor_id)
    return {"url": f"/api/v1/conversations/{ctx.queued_chat}/consent-statements",
            "json": {"message_id": said["id"], "purpose": "newsletter", "granted": True}}


plain("GET", "/widget/privacy.js")
plain("GET", "/app/consent")
plain("GET", "/app/settings/privacy")
_keyed("GET", "/consent/withdraw/{token}", "/consent/withdraw/no-such-token")
_keyed("POST", "/consent/withdraw/{token}", "/consent/withdraw/no-such-token", data={})
_keyed("GET", "/app/consent/records/{record_id}", "/app/consent/records/no-such-record")
lenient("POST", "/app/settings/privacy", data={})
_keyed("POST", "/app/settings/privacy/{purpose_id}", "/app/settings/privacy/no-such-purpose", data={})
_keyed("POST", "/app/settings/privacy/{purpose_id}/notices", "/app/settings/privacy/no-such-purpose/notices",
       data={"text": "x"})


@sample("OPTIONS", "/api/v1/widget/{site_key}/{rest:path}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {
        "url": f"/api/v1/widget/{ctx.world.site_key}/conversations",
        "headers": {"Origin": ctx.world.origin, "Access-Control-Request-Method": "POST"},
    }


@sample("POST", "/app/settings/sites")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/app/settings/sites", "data": _site_form()}


@sample("POST", "/app/settings/sites/{site_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/settings/sites/{ctx.world.site_id}", "data": {**_site_form(), "name": "Shop"}}


@sample("POST", "/app/settings/departments")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {
        "url": "/app/settings/departments",
        "data": {
            "site_id": ctx.world.site_id,
            "name": f"Dept {next(_n)}",
            "strategy": "round_robin",
            "offer_timeout_s": "30",
        },
    }


@sample("POST", "/app/settings/departments/{department_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {
        "url": f"/app/settings/departments/{ctx.world.department_id}",
        "data": {"name": "Support", "strategy": "round_robin", "offer_timeout_s": str(20 + next(_n))},
    }


@sample("POST", "/app/settings/operators")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {
        "url": "/app/settings/operators",
        "data": {
            "email": f"form{next(_n)}@shop.example",
            "name": "Form",
            "role": "operator",
            "max_chats": "5",
            "password": factories.PASSWORD,
        },
    }


@sample("POST", "/app/settings/operators/{operator_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {
        "url": f"/app/settings/operators/{await ctx.fresh_operator()}",
        "data": {"name": "Renamed", "role": "supervisor", "max_chats": "4", "department_ids": ctx.world.department_id},
    }


@sample("POST", "/app/settings/operators/{operator_id}/disabled")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/settings/operators/{await ctx.fresh_operator()}/disabled", "data": {"disabled": "1"}}


@sample("POST", "/app/settings/canned")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/app/settings/canned", "data": {"shortcut": f"f{next(_n)}", "title": "T", "text": "Text"}}


@sample("POST", "/app/settings/canned/{reply_id}/delete")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/settings/canned/{await ctx.fresh_canned()}/delete", "data": {}}


@sample("POST", "/app/settings/roles")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {
        "url": "/app/settings/roles",
        "data": {"name": f"Made {next(_n)}", "scope": "own", "permissions": ["chats.read"]},
    }


@sample("POST", "/app/settings/roles/{role_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {
        "url": f"/app/settings/roles/{await ctx.fresh_role()}",
        "data": {"name": f"Edited {next(_n)}", "scope": "own", "permissions": ["chats.read", "offline.read"]},
    }


@sample("POST", "/app/settings/roles/{role_id}/delete")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/settings/roles/{await ctx.fresh_role()}/delete", "data": {}}


# ---- activity (Visitor Activity, issue 7 point 5; ADR 0019)
async def _chat_visitor(ctx: Ctx) -> str:
    async with ctx.rt.db.unit_of_work(readonly=True) as uow:
        return str((await uow.session.execute(
            text("select visitor_id from conversations where id = :id"), {"id": ctx.queued_chat}
        )).scalar_one())


plain("GET", "/app/activity")
plain("POST", "/app/activity", data={"site_id": ""})


@sample("GET", "/app/activity/visitors/{visitor_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/activity/visitors/{await _chat_visitor(ctx)}"}


@sample("GET", "/api/v1/conversations/{conversation_id}/activity")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/conversations/{ctx.queued_chat}/activity"}


@sample("GET", "/app/settings/sites/{site_id}/activity")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/settings/sites/{ctx.world.site_id}/activity"}


@sample("POST", "/app/settings/sites/{site_id}/activity")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {
        "url": f"/app/settings/sites/{ctx.world.site_id}/activity",
        "data": {"basis": "consent", "justification": "", "ip_mode": "none", "ua_mode": "family"},
    }


@sample("POST", "/api/v1/widget/{site_key}/activity")
async def _(ctx: Ctx) -> dict[str, Any]:
    from confide.auth import visitor_tokens
    from confide.auth.actors import VisitorActor

    who = VisitorActor(visitor_id=await _chat_visitor(ctx), site_id=ctx.world.site_id,
                       workspace_id=ctx.world.workspace_id)
    token, _ = visitor_tokens.issue(ctx.rt.visitor_tokens, who, 600)
    return {
        "url": f"/api/v1/widget/{ctx.world.site_key}/activity",
        "headers": {"Origin": ctx.world.origin},
        "json": {"type": "view", "token": token, "url": "https://shop.example/pricing"},
    }
# ---- end activity
# ---- prospects (issue 7 point 6): a fresh prospect of the world's department for each object route
async def fresh_prospect(ctx: Ctx) -> str:
    from confide.prospects import service as prospects
    from confide.prospects.schemas import ProspectIn

    async with ctx.rt.db.unit_of_work() as uow:
        made = await prospects.create(
            ctx.rt, uow, await ctx.admin(),
            ProspectIn(site_id=ctx.world.site_id, department_id=ctx.world.department_id, name=f"Lead {next(_n)}",
                       email=f"lead{next(_n)}@example.com"),
        )
        return str(made["id"])


def _new_prospect(ctx: Ctx) -> dict[str, Any]:
    return {"site_id": ctx.world.site_id, "department_id": ctx.world.department_id, "name": f"New {next(_n)}"}


plain("GET", "/api/v1/prospects")
plain("POST", "/api/v1/prospects/search", json={"text": "lead"})
plain("POST", "/api/v1/prospects/objections", json={"email": "objects@example.com"})
plain("GET", "/app/prospects")
plain("POST", "/app/prospects", data={"status": "new", "text": "lead"})
plain("GET", "/app/settings/prospects")


@sample("POST", "/api/v1/prospects")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/api/v1/prospects", "json": _new_prospect(ctx)}


@sample("POST", "/app/prospects/new")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/app/prospects/new", "data": _new_prospect(ctx)}


@sample("GET", "/api/v1/prospects/{prospect_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/prospects/{await fresh_prospect(ctx)}"}


@sample("PATCH", "/api/v1/prospects/{prospect_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/prospects/{await fresh_prospect(ctx)}", "json": {"version": 1, "status": "won"}}


@sample("DELETE", "/api/v1/prospects/{prospect_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/prospects/{await fresh_prospect(ctx)}"}


@sample("GET", "/app/prospects/{prospect_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/prospects/{await fresh_prospect(ctx)}"}


@sample("POST", "/app/prospects/{prospect_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/prospects/{await fresh_prospect(ctx)}", "data": {"version": "1", "status": "qualified"}}


@sample("POST", "/app/prospects/{prospect_id}/delete")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/prospects/{await fresh_prospect(ctx)}/delete", "data": {}}


@sample("POST", "/app/prospects/{prospect_id}/objection")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/prospects/{await fresh_prospect(ctx)}/objection", "data": {}}


@sample("POST", "/app/settings/prospects/{site_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/settings/prospects/{ctx.world.site_id}", "data": {"basis": "consent", "currency": "EUR"}}
# ---- end prospects
# ---- erasure (ADR 0028): a fresh visitor (and, for the certificate, an erasure) for each request
async def fresh_visitor(ctx: Ctx) -> str:
    from confide.visitors import service as visitors

    async with ctx.rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, ctx.world.site_id)
        assert site is not None
        made = await visitors.create_visitor(ctx.rt, uow, site, {"name": f"Erasable {next(_n)}"}, {})
        return made.id


@sample("POST", "/api/v1/subjects/erase/preview")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/api/v1/subjects/erase/preview", "json": {"visitor_ids": [await fresh_visitor(ctx)]}}


@sample("POST", "/api/v1/subjects/erase")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/api/v1/subjects/erase", "json": {"visitor_ids": [await fresh_visitor(ctx)], "confirm": "ERASE"}}


@sample("POST", "/api/v1/subjects/erase-bulk/preview")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/api/v1/subjects/erase-bulk/preview",
            "json": {"site_id": ctx.world.site_id, "before": "2020-01-01T00:00:00+00:00"}}


async def fresh_certificate(ctx: Ctx) -> str:
    from confide.erasure import service as erasure

    vid = await fresh_visitor(ctx)
    async with ctx.rt.db.unit_of_work() as uow:
        return (await erasure.erase(ctx.rt, uow, None, ctx.world.workspace_id, [vid], reason="staff")).id


@sample("GET", "/api/v1/subjects/erasures/{certificate_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/subjects/erasures/{await fresh_certificate(ctx)}"}


@sample("GET", "/app/subjects/erasures/{certificate_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/subjects/erasures/{await fresh_certificate(ctx)}"}


@sample("GET", "/app/subjects/erase")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/subjects/erase?visitor={await fresh_visitor(ctx)}"}


@sample("POST", "/app/subjects/erase")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/app/subjects/erase", "data": {"visitor": await fresh_visitor(ctx), "confirm": "ERASE"}}
# ---- end erasure


# ---- restriction of processing (ADR 0031): a fresh person each time
@sample("POST", "/api/v1/subjects/restrict")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/api/v1/subjects/restrict", "json": {"visitor_ids": [await fresh_visitor(ctx)], "reason": "other"}}


@sample("POST", "/api/v1/subjects/lift-restriction")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/api/v1/subjects/lift-restriction", "json": {"visitor_ids": [await fresh_visitor(ctx)]}}


@sample("POST", "/app/subjects/restrict")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/app/subjects/restrict", "data": {"visitor_ids": await fresh_visitor(ctx), "reason": "other"}}


@sample("POST", "/app/subjects/lift-restriction")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/app/subjects/lift-restriction", "data": {"visitor_ids": await fresh_visitor(ctx)}}
# ---- end restriction


# ---- rectification (ADR 0032): a fresh visitor for each correction
@sample("POST", "/api/v1/subjects/rectify")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/api/v1/subjects/rectify",
            "json": {"visitor_ids": [await fresh_visitor(ctx)], "field": "name", "value": "Corrected Name"}}


@sample("POST", "/app/subjects/rectify")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/app/subjects/rectify",
            "data": {"visitor_ids": await fresh_visitor(ctx), "field": "name", "value": "Corrected Name"}}
# ---- end rectification


# ---------------------------------------------------------------- the matrix
# ---- retention (ADR 0030): a fresh person for each hold, so that every allowed role's hold is new
async def _fresh_visitor(ctx: Ctx) -> str:
    from confide.visitors import service as visitors

    async with ctx.rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, ctx.world.site_id)
        assert site is not None
        return str((await visitors.create_visitor(ctx.rt, uow, site, {"name": "Held"}, {})).id)


plain("GET", "/app/retention")
plain("POST", "/app/retention/policy", data={"scope": "workspace", "category": "chats", "days": "400"})
plain("GET", "/app/privacy/ropa")

@sample("GET", "/app/privacy/ropa/download/{fmt}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/app/privacy/ropa/download/md"}


@sample("POST", "/app/retention/holds")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/app/retention/holds",
            "data": {"target_type": "visitor", "target_id": await _fresh_visitor(ctx), "reason": "case 7"}}


@sample("POST", "/app/retention/holds/{hold_id}/lift")
async def _(ctx: Ctx) -> dict[str, Any]:
    from confide.retention import service as retention
    from confide.retention.schemas import HoldIn

    target = await _fresh_visitor(ctx)
    async with ctx.rt.db.unit_of_work() as uow:
        made = await retention.place_hold(ctx.rt, uow, await ctx.admin(),
                                          HoldIn(target_type="visitor", target_id=target, reason="case 8"))
    return {"url": f"/app/retention/holds/{made['id']}/lift", "data": {"reason": "case closed"}}
# ---- end retention


async def snapshot(rt: Runtime) -> dict[str, list[str]]:
    """Every row of every table that holds state (sorted), to prove a denial changed nothing."""
    out: dict[str, list[str]] = {}
    async with rt.db.unit_of_work(readonly=True) as uow:
        for name in sorted(Base.metadata.tables):
            if name in NOT_STATE:
                continue
            rows = (await uow.session.execute(text(f'SELECT * FROM "{name}"'))).all()  # noqa: S608 - names from the metadata
            out[name] = sorted(repr(tuple(row)) for row in rows)
    return out


def allowed(access: Access, role: BuiltInRole) -> bool:
    return access.permission is None or access.permission in role.permissions


def http_routes(app: Any) -> list[tuple[str, str, Access]]:
    out = []
    for route in iter_routes(app.routes):
        methods = getattr(route, "methods", None)
        access = access_of(route)
        if not methods or route.path.startswith(SKIP) or access is None:
            continue
        for method in sorted(methods - {"HEAD"}):
            out.append((method, route.path, access))
    return out


async def role_scene(rt: Runtime, client: httpx.AsyncClient, world: World) -> tuple[str, str]:
    async with rt.db.unit_of_work() as uow:
        for role in BUILT_IN_ROLES.values():
            await factories.operator(
                rt,
                uow,
                workspace_id=world.workspace_id,
                email=email_of(role),
                name=role.name,
                role=role.key,
                department_ids=[world.department_id],
            )
    await set_status(rt, world.operator_id)  # Mia online: chats may start (offered to her, still queued)
    chat = await start_chat(client, world, department_id=world.department_id)
    request = await leave_message(client, world, department_id=world.department_id)
    return chat["conversation_id"], request["id"]


# ---- redaction (issue 7 point 7)
plain("GET", "/widget/redaction.js")
plain("GET", "/app/settings/redaction")


@sample("GET", "/api/v1/sites/{site_id}/redaction")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/sites/{ctx.world.site_id}/redaction"}


@sample("PUT", "/api/v1/sites/{site_id}/redaction")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/sites/{ctx.world.site_id}/redaction", "json": {"cards": True, "ibans": True}}


@sample("POST", "/app/settings/redaction/{site_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/settings/redaction/{ctx.world.site_id}", "data": {"cards": "1", "p-count": "0"}}


@sample("GET", "/api/v1/conversations/{conversation_id}/redacted")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/conversations/{ctx.queued_chat}/redacted"}


@sample("GET", "/api/v1/offline-requests/{request_id}/redacted")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/offline-requests/{ctx.request_id}/redacted"}


@sample("GET", "/app/chats/{conversation_id}/redacted")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/chats/{ctx.queued_chat}/redacted"}


# ---- end redaction


# ---- data-subject requests (ADR 0029): read with subjects.view, act with subjects.export; a fresh
# request in the state each action needs, so that an allowed role's action works.
async def fresh_request(ctx: Ctx, *, verified: bool = False, started: bool = False) -> str:
    from confide.privacy_requests import intake as request_intake
    from confide.privacy_requests import lifecycle as request_lifecycle
    from confide.privacy_requests.schemas import StaffRequestIn

    admin = await ctx.admin()
    async with ctx.rt.db.unit_of_work() as uow:
        made = await request_intake.create_by_staff(ctx.rt, uow, admin, StaffRequestIn(
            type="access", channel="email", email=f"req{next(_n)}@example.org"))
        if verified or started:
            await request_intake.verify_by_staff(ctx.rt, uow, admin, made["id"], "Known customer")
        if started:
            await request_lifecycle.start(ctx.rt, uow, admin, made["id"])
        return str(made["id"])


async def requester_request(ctx: Ctx) -> str:
    from confide.privacy_requests import intake as request_intake
    from confide.privacy_requests.schemas import RequestIn
    from confide.workspaces import service as workspaces_service

    async with ctx.rt.db.unit_of_work() as uow:
        site = await workspaces_service.get_site(uow, ctx.world.site_id)
        assert site is not None
        row = await request_intake.create_by_requester(
            ctx.rt, uow, site, RequestIn(type="access", email=f"v{next(_n)}@example.com"), channel="web")
        return row.id


plain("GET", "/api/v1/privacy-requests")
plain("POST", "/api/v1/privacy-requests", json={"type": "access", "channel": "phone", "email": "p@example.org"})
plain("GET", "/app/requests")
plain("POST", "/app/requests", data={"state": "open", "overdue": "1"})
plain("POST", "/app/requests/new", data={"type": "access", "channel": "letter", "email": "l@example.org"})


@sample("GET", "/api/v1/privacy-requests/{request_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/privacy-requests/{await fresh_request(ctx)}"}


@sample("GET", "/app/requests/{request_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/app/requests/{await fresh_request(ctx)}"}


def _request_action(action: str, body: dict[str, Any] | None, *, verified: bool = False,
                    started: bool = False) -> None:
    @sample("POST", f"/api/v1/privacy-requests/{{request_id}}/{action}")
    async def api(ctx: Ctx) -> dict[str, Any]:
        rid = await fresh_request(ctx, verified=verified, started=started)
        return {"url": f"/api/v1/privacy-requests/{rid}/{action}", "json": body}

    @sample("POST", f"/app/requests/{{request_id}}/{action}")
    async def page(ctx: Ctx) -> dict[str, Any]:
        rid = await fresh_request(ctx, verified=verified, started=started)
        return {"url": f"/app/requests/{rid}/{action}", "data": {k: str(v) for k, v in (body or {}).items()}}


_request_action("send-code", None)
_request_action("verify", {"reason": "Called back"})
_request_action("start", None, verified=True)
_request_action("extend", {"months": 1, "reason": "Complex"})
_request_action("complete", {"outcome": "Sent the export"}, started=True)
_request_action("refuse", {"reason": "Unfounded"})


@sample("POST", "/app/requests/{request_id}/send-export")
async def _(ctx: Ctx) -> dict[str, Any]:
    """An access request in progress whose requester's address is a visitor's: the export is sent."""
    from confide.privacy_requests import intake as request_intake
    from confide.privacy_requests import lifecycle as request_lifecycle
    from confide.privacy_requests.schemas import StaffRequestIn
    from confide.visitors import service as visitors

    email = f"asker{next(_n)}@example.org"
    admin = await ctx.admin()
    async with ctx.rt.db.unit_of_work() as uow:
        site = await workspaces.get_site(uow, ctx.world.site_id)
        assert site is not None
        visitor = await visitors.create_visitor(ctx.rt, uow, site, {"name": "Asker", "email": email}, {})
        made = await request_intake.create_by_staff(ctx.rt, uow, admin, StaffRequestIn(
            type="access", channel="email", email=email))
        await request_intake.verify_by_staff(ctx.rt, uow, admin, made["id"], "Known customer")
        await request_lifecycle.start(ctx.rt, uow, admin, made["id"])
    return {"url": f"/app/requests/{made['id']}/send-export", "data": {"visitor_ids": visitor.id, "fmt": "json"}}


@sample("POST", "/api/v1/widget/{site_key}/privacy-requests")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/widget/{ctx.world.site_key}/privacy-requests", "headers": {"Origin": ctx.world.origin},
            "json": {"type": "access", "email": f"w{next(_n)}@example.com"}}


@sample("POST", "/api/v1/widget/{site_key}/privacy-requests/{request_id}/resend")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/api/v1/widget/{ctx.world.site_key}/privacy-requests/{await requester_request(ctx)}/resend",
            "headers": {"Origin": ctx.world.origin}}


@sample("POST", "/api/v1/widget/{site_key}/privacy-requests/{request_id}/verify")
async def _(ctx: Ctx) -> dict[str, Any]:  # a code no role holds: answered every role alike (422)
    return {"url": f"/api/v1/widget/{ctx.world.site_key}/privacy-requests/{await requester_request(ctx)}/verify",
            "headers": {"Origin": ctx.world.origin}, "json": {"code": "000000x"}}


LENIENT.add(("POST", "/api/v1/widget/{site_key}/privacy-requests/{request_id}/verify"))


@sample("GET", "/privacy/request/{site_key}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/privacy/request/{ctx.world.site_key}"}


@sample("POST", "/privacy/request/{site_key}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/privacy/request/{ctx.world.site_key}", "data": {"type": "access", "email": "p@example.com"}}


@sample("GET", "/privacy/verify/{request_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/privacy/verify/{await requester_request(ctx)}"}


@sample("POST", "/privacy/verify/{request_id}")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": f"/privacy/verify/{await requester_request(ctx)}", "data": {"resend": "1"}}


# ---- end data-subject requests


async def _client(app: Any, role: BuiltInRole) -> httpx.AsyncClient:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    response = await login(http, email_of(role))
    assert response.status_code == 200, response.text
    return http


def test_every_route_has_a_sample(app: Any) -> None:
    missing = [(m, p) for m, p, _ in http_routes(app) if (m, p) not in SAMPLES]
    assert missing == [], "add a sample request to tests/test_permission_matrix.py for each of these"


@pytest.mark.parametrize("role_key", list(BUILT_IN_ROLES))
async def test_role_against_every_route(
    app: Any, rt: Runtime, client: httpx.AsyncClient, world: World, role_key: str
) -> None:
    role = BUILT_IN_ROLES[role_key]
    queued_chat, request_id = await role_scene(rt, client, world)
    http = await _client(app, role)
    results: dict[str, int] = {}
    try:
        for method, path, access in http_routes(app):
            ctx = Ctx(rt, world, queued_chat, request_id, role)
            spec = await SAMPLES[(method, path)](ctx)
            before = await snapshot(rt)
            headers = {**SELF, **spec.get("headers", {})}
            response = await http.request(
                method,
                spec["url"],
                json=spec.get("json"),
                data=spec.get("data"),
                headers=headers,
                follow_redirects=False,
            )
            label = f"{role.key} {method} {path}"
            results[f"{method} {path}"] = response.status_code
            if allowed(access, role) and (method, path) in LENIENT:
                assert response.status_code != 403, (label, response.status_code, response.text[:300])
                assert response.status_code < 500, (label, response.status_code, response.text[:300])
            elif allowed(access, role):
                assert 200 <= response.status_code < 400, (label, response.status_code, response.text[:300])
            else:
                assert response.status_code == 403, (label, response.status_code, response.text[:300])
                if path.startswith("/api/"):
                    assert response.json() == DENIED_JSON, label
                assert await snapshot(rt) == before, f"{label}: a denied request changed the database"
            if path.endswith("/logout"):  # log in again for the routes that follow
                assert (await login(http, email_of(role))).status_code == 200
    finally:
        await http.aclose()
    denied = sorted(k for k, v in results.items() if v == 403)
    # The matrix is not vacuous: the administrator is refused nothing, everyone else something.
    assert (denied == []) == (role.key == "administrator"), denied


# ---------------------------------------------------------------- socket frames
FRAME_SAMPLES: dict[str, Callable[[str], dict[str, Any]]] = {
    "status": lambda chat: {"type": "status", "status": "away"},
    "accept": lambda chat: {"type": "accept", "conversation_id": chat},
    "message": lambda chat: {"type": "message", "conversation_id": chat, "client_id": "m-1", "text": "Hello"},
    "typing": lambda chat: {"type": "typing", "conversation_id": chat, "on": True},
    "read": lambda chat: {"type": "read", "conversation_id": chat, "seq": 1},
    "transfer": lambda chat: {"type": "transfer", "conversation_id": chat, "department_id": "no-such-department"},
    "close": lambda chat: {"type": "close", "conversation_id": chat},
    "history": lambda chat: {"type": "history", "conversation_id": chat, "after_seq": 0},
    "ping": lambda chat: {"type": "ping"},
}


def test_every_frame_has_a_sample() -> None:
    assert {frame_type(f) for f in operator_dispatcher.declared()} == set(FRAME_SAMPLES)


def _works(kind: str, answers: list[dict[str, Any]]) -> bool:
    """The usual answer of an allowed frame (sent in this order: the chat is accepted first)."""
    types = [f.get("type") for f in answers]
    errors = [f for f in answers if f.get("type") == "error"]
    if kind == "status":
        return {"type": "status", "status": "away"} in answers
    if kind == "accept":
        return any(f.get("type") == "chat" and f["conversation"]["status"] == "active" for f in answers)
    if kind == "transfer":  # to a department that does not exist: the loader's usual answer
        return [(e["code"], e["message"]) for e in errors] == [("not_found", "department not found")]
    if kind == "close":
        return any(f.get("type") == "chat" and f["conversation"]["status"] == "closed" for f in answers)
    if kind == "history":
        return "history" in types
    return errors == []  # message (its ack follows the commit), typing, read, ping


@pytest.mark.parametrize("role_key", list(BUILT_IN_ROLES))
async def test_role_against_every_operator_frame(live: Live, rt: Runtime, world: World, role_key: str) -> None:
    """Allowed: the frame gets its usual answer; denied: the permission error frame, and nothing
    changed in the database."""
    role = BUILT_IN_ROLES[role_key]
    async with wsclient.http(live=live) as client:
        queued_chat, _ = await role_scene(rt, client, world)
    ws, _, _ = await wsclient.operator_connect(live=live, email=email_of(role))
    declared = operator_dispatcher.declared()
    denied = []
    try:
        for frame, access in declared.items():
            kind = frame_type(frame)
            body = FRAME_SAMPLES[kind](queued_chat)
            before = await snapshot(rt)
            if kind != "ping":  # the barrier below is itself a ping
                await wsclient.send(ws=ws, frame=body)
            answers = await wsclient.frames_until_pong(ws=ws)
            label = f"{role.key} {kind}"
            if allowed(access, role):
                assert _works(kind, answers), (label, answers)
                if kind == "message":
                    await wsclient.recv_until(ws=ws, type="ack", where=wsclient.has(client_id="m-1"))
            else:
                denied.append(kind)
                expected = {"type": "error", "code": "not_found", "message": DENIED_FRAME_MESSAGE}
                if "client_id" in body:
                    expected["ref"] = body["client_id"]
                assert [f for f in answers if f.get("type") == "error"] == [expected], (label, answers)
                assert await snapshot(rt) == before, f"{label}: a denied frame changed the database"
    finally:
        await wsclient.close_all()
    chatting = any(p.value == "chats.participate" for p in role.permissions)
    assert (denied == []) == chatting, denied


# ---- data-subject rights (issue 8, ADR 0026): find a person, their export and its e-mailed link
async def _chat_visitor(ctx: Ctx) -> str:
    async with ctx.rt.db.unit_of_work(readonly=True) as uow:
        return str((await uow.session.execute(
            text("select visitor_id from conversations where id = :id"), {"id": ctx.queued_chat})).scalar_one())


plain("GET", "/app/subjects")
plain("POST", "/app/subjects", data={"by": "email", "value": "ana@example.com"})
plain("POST", "/api/v1/subjects/find", json={"by": "email", "value": "ana@example.com"})
_keyed("GET", "/subject-export/{token}", "/subject-export/no-such-token")
_keyed("POST", "/subject-export/{token}", "/subject-export/no-such-token", data={"code": "aaaaa-bbbbb"})


@sample("POST", "/api/v1/subjects/export")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/api/v1/subjects/export", "json": {"visitor_ids": [await _chat_visitor(ctx)]}}


@sample("POST", "/api/v1/subjects/send")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/api/v1/subjects/send", "json": {"visitor_ids": [await _chat_visitor(ctx)]}}


@sample("POST", "/app/subjects/export")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/app/subjects/export", "data": {"visitor_ids": await _chat_visitor(ctx), "fmt": "json"}}


@sample("POST", "/app/subjects/send")
async def _(ctx: Ctx) -> dict[str, Any]:
    return {"url": "/app/subjects/send", "data": {"visitor_ids": await _chat_visitor(ctx), "fmt": "json"}}
# ---- end data-subject rights
