"""First run: the demo workspace, site, department, canned replies and the administrator."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from confide.core import crypto
from confide.core.db import UnitOfWork
from confide.core.runtime import Runtime
from confide.users import accounts as user_accounts
from confide.users.models import Operator
from confide.users.schemas import OperatorIn
from confide.workspaces import service as workspaces
from confide.workspaces.models import CannedReply, Site, Workspace
from confide.workspaces.schemas import PrechatField, Purpose, SiteIn


@dataclass(frozen=True)
class DemoResult:
    site_key: str
    admin_email: str
    admin_password: str | None  # only when the account was created now with a generated password
    created: bool


async def create_demo(
    rt: Runtime, uow: UnitOfWork, *, admin_email: str, admin_password: str | None, base_url: str
) -> DemoResult:
    """Idempotent: an existing demo is left as it is (its origins are extended to ``base_url``)."""
    session = uow.session
    site = await session.scalar(select(Site).order_by(Site.created_at).limit(1))
    origins = sorted({base_url.rstrip("/").lower(), base_url.rstrip("/").lower().replace("127.0.0.1", "localhost")})
    if site is not None:
        site.allowed_origins = sorted(set(site.allowed_origins) | set(origins))
        return DemoResult(site.site_key, admin_email, None, created=False)
    ws = await workspaces.create_workspace(uow, name="Demo company")
    site = await workspaces.create_site(
        uow,
        workspace_id=ws.id,
        data=SiteIn(
            name="Demo shop",
            allowed_origins=origins,
            greeting="Hi! How can we help you today?",
            privacy_policy_url=f"{base_url.rstrip('/')}/demo#privacy",
            prechat_fields=[
                PrechatField(key="name", label="Your name", type="text", required=True),
                PrechatField(key="email", label="E-mail", type="email", required=True),
                PrechatField(key="phone", label="Phone", type="tel", required=False),
                PrechatField(key="order", label="Order number", type="text", required=False),
            ],
            # ---- consent: the widget offers the workspace's marketing_email purpose (its notice text)
            purposes=[Purpose(key="marketing_email", label="Send me news and offers by e-mail", version="1")],
        ),
    )
    support = await workspaces.create_department(
        uow, workspace_id=ws.id, site_id=site.id, name="Support", strategy="round_robin"
    )
    for shortcut, title, text in (
        ("hello", "Greeting", "Hello! Thanks for reaching out. How can I help?"),
        ("wait", "One moment", "Let me check that for you; one moment please."),
        ("bye", "Goodbye", "Thank you for chatting with us. Have a great day!"),
    ):
        session.add(
            CannedReply(
                id=crypto.new_id(),
                workspace_id=ws.id,
                department_id=None,
                shortcut=shortcut,
                title=title,
                text=text,
                created_at=ws.created_at,
            )
        )
    generated = None
    existing = await session.scalar(select(Operator).where(Operator.email == admin_email.casefold()))
    if existing is None:
        password = admin_password or crypto.random_token(12)
        generated = None if admin_password else password
        await user_accounts.create_operator(
            rt,
            uow,
            workspace_id=ws.id,
            data=OperatorIn(
                email=admin_email,
                name="Admin",
                password=password,
                role="admin",
                max_chats=10,
                department_ids=[support.id],
            ),
            must_change_password=generated is not None,  # a one-time password (accounts, ADR 0012)
        )
    return DemoResult(site.site_key, admin_email, generated, created=True)


async def create_admin(rt: Runtime, uow: UnitOfWork, *, email: str, name: str, password: str) -> Operator:
    """An administrator in the first workspace (created if there is none)."""
    ws = await uow.session.scalar(select(Workspace).order_by(Workspace.created_at).limit(1))
    if ws is None:
        ws = await workspaces.create_workspace(uow, name="My company")
    return await user_accounts.create_operator(
        rt, uow, workspace_id=ws.id, data=OperatorIn(email=email, name=name, password=password, role="admin")
    )
