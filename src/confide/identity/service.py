"""Directory settings, directory log-ins and their re-checks.

A directory log-in is split like the password one (``web/login_flow.password_login``) so that no
network call to a directory or a provider happens inside a transaction, and no ldap3 call on the
event loop: a read unit decides whether the directory applies and loads its settings (the plan),
the directory is asked with no unit open (``auth.providers``), then a short write unit records
the outcome: audits a refusal, or creates / matches / updates the account and returns its id for
``complete_login``.

Accounts are linked to their directory in ``directory_accounts``. An LDAP account with an open
session is looked up again every ``recheck_interval_s`` (the scheduler's ``directory_rechecked``
job, one node at a time): a user disabled, removed, or no longer in a required group loses every
session at once (``user_sessions.revoke_sessions`` and the "revoke" event, as ``user_passwords.reset_password``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import delete, exists, select, update
from sqlalchemy.exc import IntegrityError

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.auth.providers import ldap, oidc
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.errors import CommitAndRaise, Conflict, Invalid, NotFound, Unauthorized
from confide.core.runtime import Runtime
from confide.identity.models import DirectoryAccount, LdapDirectory, OidcProvider
from confide.identity.schemas import LdapSettingsIn, OidcProviderIn
from confide.permissions.policy import Permission, require
from confide.realtime import events
from confide.users import accounts as user_accounts
from confide.users import login as user_login
from confide.users import operators as user_operators
from confide.users import roles as user_roles
from confide.users import sessions as user_sessions
from confide.users.schemas import OperatorIn, check_email
from confide.workspaces import service as workspaces

log = structlog.get_logger(__name__)

LDAP, OIDC = "ldap", "oidc"
REFUSED = "wrong e-mail or password"
SSO_REFUSED = "single sign-on did not succeed; ask your administrator if this keeps happening"
# A password hash no password matches: directory accounts never log in with a local password.
NO_LOCAL_PASSWORD = "!directory"  # noqa: S105 - not a password: a hash nothing matches
RECHECK_BATCH = 50


def _stored_role(key: str) -> str:
    """The role key as operators store it: the canonical key (``administrator``, never the legacy
    ``admin``) or a custom role's id."""
    return user_roles.canonical(key)


async def _check_roles(uow: UnitOfWork, actor: OperatorActor, data: LdapSettingsIn | OidcProviderIn) -> None:
    """Every role a directory maps to must be one of the workspace's (built-in or custom): unknown
    is a 422. A custom role's row stays share-locked until the unit ends (``roles.checked_key``), so
    it cannot be deleted while the mapping is being stored."""

    async def checked(key: str) -> str:
        try:
            return await user_roles.checked_key(uow, actor.workspace_id, key)
        except Invalid:
            raise Invalid(f"“{key[:40]}” is not a role of this workspace") from None

    data.default_role = await checked(data.default_role)
    for mapping in data.group_roles:
        mapping.role = await checked(mapping.role)


async def roles_in_use(uow: UnitOfWork, workspace_id: str, role_key: str) -> bool:
    """Does the workspace's directory or one of its single sign-on providers map groups (or its
    default) to this role? (A role in use there cannot be deleted.)"""
    rows: list[LdapDirectory | OidcProvider] = [
        *(await uow.session.scalars(select(LdapDirectory).where(LdapDirectory.workspace_id == workspace_id))),
        *(await uow.session.scalars(select(OidcProvider).where(OidcProvider.workspace_id == workspace_id))),
    ]
    return any(
        row.default_role == role_key or any(str(m.get("role")) == role_key for m in row.group_roles) for row in rows
    )


async def _sync_role(rt: Runtime, uow: UnitOfWork, op: user_operators.Operator, role: str, *, source: str) -> None:
    """The role the directory's or the provider's groups map to, set on the account (audited; its
    open consoles reload who it is) when it differs."""
    if op.role == _stored_role(role):
        return
    op.role = _stored_role(role)
    events.publish(rt, uow, events.Refresh(op.id))
    await audit.record(
        rt,
        uow,
        "users.role_synced",
        actor_type="system",
        workspace_id=op.workspace_id,
        target_type="operator",
        target_id=op.id,
        detail={"source": source, "role": role},
    )


def _aad(table: str, column: str, row_id: str) -> str:
    return f"{table}.{column}:{row_id}"


async def _encrypt(rt: Runtime, uow: UnitOfWork, workspace_id: str, row_id: str, aad: str, value: str) -> bytes:
    try:
        key = await rt.keyring.get(uow.session, row_id)
    except NotFound:
        key = await rt.keyring.create(uow.session, workspace_id=workspace_id, subject_id=row_id)
    return key.encrypt(value, aad)


async def _decrypt(rt: Runtime, uow: UnitOfWork, row_id: str, aad: str, blob: bytes | None) -> str | None:
    if not blob:
        return None
    key = await rt.keyring.get(uow.session, row_id)
    return key.decrypt(blob, aad)


def _first_role(mapping: Sequence[dict[str, Any]], groups: set[str], default: str) -> str:
    for row in mapping:
        if str(row.get("group", "")) in groups:
            return str(row.get("role", default))
    return default


def _departments(mapping: Sequence[dict[str, Any]], groups: set[str]) -> list[str]:
    return list(dict.fromkeys(str(r["department_id"]) for r in mapping if str(r.get("group", "")) in groups))


def _domain_of(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower()


async def _end_directory_sessions(
    rt: Runtime, uow: UnitOfWork, *, source: str, provider_id: str, workspace_id: str, reason: str
) -> int:
    """The directory or provider ``provider_id`` was deleted or turned off: every session that
    logged in through it ends now (its sockets close on every node: the ``revoke`` event), audited
    per operator. Sessions the same people opened otherwise (a local password) are kept. Returns
    how many sessions ended."""
    operator_ids = list(
        await uow.session.scalars(
            select(DirectoryAccount.operator_id)
            .where(DirectoryAccount.source == source, DirectoryAccount.provider_id == provider_id)
            .order_by(DirectoryAccount.operator_id)
        )
    )
    total = 0
    for operator_id in operator_ids:
        ended = await user_sessions.revoke_sessions(uow, operator_id, reason=reason[:16], method=source)
        if not ended:
            continue
        total += len(ended)
        user_sessions.publish_revoked(rt, uow, operator_id, ended)
        await audit.record(
            rt,
            uow,
            "auth.sessions_revoked",
            actor_type="system",
            workspace_id=workspace_id,
            target_type="operator",
            target_id=operator_id,
            detail={"method": source, "reason": reason, "sessions": len(ended)},
        )
    return total


# ---------------------------------------------------------------- settings (Settings → Security → Directory & SSO)
async def get_ldap(uow: UnitOfWork, workspace_id: str) -> LdapDirectory | None:
    return await uow.session.scalar(select(LdapDirectory).where(LdapDirectory.workspace_id == workspace_id))


def ldap_view(row: LdapDirectory | None) -> dict[str, Any]:
    """The settings as the page shows them: never the password, only whether one is stored."""
    data = (
        LdapSettingsIn().model_dump()
        if row is None
        else {
            "enabled": row.enabled,
            "server_urls": list(row.server_urls),
            "tls_mode": row.tls_mode,
            "ca_cert_pem": row.ca_cert_pem,
            "bind_dn": row.bind_dn,
            "user_base_dn": row.user_base_dn,
            "user_filter": row.user_filter,
            "attr_email": row.attr_email,
            "attr_name": row.attr_name,
            "attr_groups": row.attr_groups,
            "group_roles": list(row.group_roles),
            "group_departments": list(row.group_departments),
            "required_groups": list(row.required_groups),
            "default_role": row.default_role,
            "auto_create": row.auto_create,
            "login_domains": list(row.login_domains),
            "timeout_s": row.timeout_s,
            "recheck_interval_s": row.recheck_interval_s,
        }
    )
    data.pop("bind_password", None)
    data["has_password"] = bool(row is not None and row.bind_password_enc)
    return data


async def _check_departments(uow: UnitOfWork, actor: OperatorActor, rows: Sequence[Any]) -> None:
    for row in rows:
        dept = await workspaces.get_department(uow, row.department_id)
        if dept is None or dept.workspace_id != actor.workspace_id:
            raise Invalid("a group is mapped to a department that does not exist")


async def directory_settings(uow: UnitOfWork, actor: OperatorActor) -> dict[str, Any]:
    require(actor, Permission.SETTINGS_MANAGE)
    providers = (
        await uow.session.scalars(
            select(OidcProvider)
            .where(OidcProvider.workspace_id == actor.workspace_id)
            .order_by(OidcProvider.created_at)
        )
    ).all()
    return {
        "ldap": ldap_view(await get_ldap(uow, actor.workspace_id)),
        "providers": [oidc_view(p) for p in providers],
        "roles": await user_roles.role_names(uow, actor.workspace_id),  # what a group may map to
    }


async def save_ldap(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, data: LdapSettingsIn) -> LdapDirectory:
    require(actor, Permission.SETTINGS_MANAGE)
    await _check_departments(uow, actor, data.group_departments)
    await _check_roles(uow, actor, data)
    row = await uow.session.scalar(
        select(LdapDirectory).where(LdapDirectory.workspace_id == actor.workspace_id).with_for_update()
    )
    created = row is None
    was_enabled = row is not None and row.enabled
    if row is None:
        row = LdapDirectory(id=crypto.new_id(), workspace_id=actor.workspace_id, updated_at=clock.now())
        uow.session.add(row)
    values = data.model_dump(exclude={"bind_password"})
    values["group_roles"] = [g.model_dump() for g in data.group_roles]
    values["group_departments"] = [g.model_dump() for g in data.group_departments]
    for key, value in values.items():
        setattr(row, key, value)
    password_changed = bool(data.bind_password)
    if data.bind_password:
        aad = _aad("ldap_directories", "bind_password", row.id)
        row.bind_password_enc = await _encrypt(rt, uow, actor.workspace_id, row.id, aad, data.bind_password)
    if data.enabled and not row.bind_password_enc:
        raise Invalid("to turn the directory on, give the service account's password")
    row.updated_at = clock.now()
    await uow.session.flush()
    ended = 0
    if was_enabled and not row.enabled:  # turned off: its log-ins end now, not at the next re-check
        ended = await _end_directory_sessions(
            rt, uow, source=LDAP, provider_id=row.id, workspace_id=row.workspace_id, reason="directory_off"
        )
    await audit.record(
        rt,
        uow,
        "settings.directory_changed",
        actor=actor,
        target_type="ldap_directory",
        target_id=row.id,
        detail={
            "created": created,
            "enabled": row.enabled,
            "password_changed": password_changed,
            "tls": row.tls_mode,
            "auto_create": row.auto_create,
            "sessions_ended": ended,
        },
    )
    return row


async def ldap_config(rt: Runtime, uow: UnitOfWork, row: LdapDirectory) -> ldap.LdapConfig:
    password = await _decrypt(rt, uow, row.id, _aad("ldap_directories", "bind_password", row.id), row.bind_password_enc)
    return ldap.LdapConfig(
        urls=tuple(row.server_urls),
        tls=row.tls_mode,  # type: ignore[arg-type]  # checked by LdapSettingsIn
        ca_pem=row.ca_cert_pem,
        bind_dn=row.bind_dn,
        bind_password=password or "",
        base_dn=row.user_base_dn,
        user_filter=row.user_filter,
        attr_email=row.attr_email,
        attr_name=row.attr_name,
        attr_groups=row.attr_groups,
        timeout_s=float(row.timeout_s),
    )


async def ldap_test_config(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> ldap.LdapConfig:
    """Step 1 of "test connection" (a read unit): the stored settings."""
    require(actor, Permission.SETTINGS_MANAGE)
    row = await get_ldap(uow, actor.workspace_id)
    if row is None or not row.server_urls:
        raise Invalid("save the directory's settings first")
    return await ldap_config(rt, uow, row)


async def record_ldap_test(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, code: str | None) -> None:
    """Step 3 of "test connection" (step 2 asks the directory with no unit open)."""
    require(actor, Permission.SETTINGS_MANAGE)
    await audit.record(
        rt,
        uow,
        "settings.directory_tested",
        actor=actor,
        target_type="ldap_directory",
        outcome="ok" if code is None else "failed",
        detail={"reason": code},
    )


def oidc_view(row: OidcProvider) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "enabled": row.enabled,
        "issuer": row.issuer,
        "client_id": row.client_id,
        "has_secret": bool(row.client_secret_enc),
        "scopes": row.scopes,
        "email_claim": row.email_claim,
        "require_email_verified": row.require_email_verified,
        "group_claim": row.group_claim,
        "group_roles": list(row.group_roles),
        "group_departments": list(row.group_departments),
        "default_role": row.default_role,
        "allowed_domains": list(row.allowed_domains),
        "auto_create": row.auto_create,
    }


async def save_oidc_provider(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, data: OidcProviderIn, provider_id: str | None = None
) -> OidcProvider:
    require(actor, Permission.SETTINGS_MANAGE)
    await _check_departments(uow, actor, data.group_departments)
    await _check_roles(uow, actor, data)
    now = clock.now()
    if provider_id is None:
        row = OidcProvider(id=crypto.new_id(), workspace_id=actor.workspace_id, created_at=now, updated_at=now)
        uow.session.add(row)
    else:
        found = await uow.session.scalar(select(OidcProvider).where(OidcProvider.id == provider_id).with_for_update())
        if found is None or found.workspace_id != actor.workspace_id:
            raise NotFound("provider not found")
        row = found
    was_enabled = provider_id is not None and row.enabled
    values = data.model_dump(exclude={"client_secret"})
    values["group_roles"] = [g.model_dump() for g in data.group_roles]
    values["group_departments"] = [g.model_dump() for g in data.group_departments]
    for key, value in values.items():
        setattr(row, key, value)
    if data.client_secret:
        aad = _aad("oidc_providers", "client_secret", row.id)
        row.client_secret_enc = await _encrypt(rt, uow, actor.workspace_id, row.id, aad, data.client_secret)
    row.updated_at = now
    await uow.session.flush()
    ended = 0
    if was_enabled and not row.enabled:  # turned off: the sessions it opened end now
        ended = await _end_directory_sessions(
            rt, uow, source=OIDC, provider_id=row.id, workspace_id=row.workspace_id, reason="provider_off"
        )
    await audit.record(
        rt,
        uow,
        "settings.sso_provider_changed",
        actor=actor,
        target_type="oidc_provider",
        target_id=row.id,
        detail={
            "created": provider_id is None,
            "enabled": row.enabled,
            "secret_changed": bool(data.client_secret),
            "auto_create": row.auto_create,
            "sessions_ended": ended,
        },
    )
    return row


async def delete_oidc_provider(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, provider_id: str) -> None:
    require(actor, Permission.SETTINGS_MANAGE)
    row = (
        await uow.session.scalar(select(OidcProvider).where(OidcProvider.id == provider_id).with_for_update())
        if isinstance(provider_id, str) and len(provider_id) <= 32
        else None
    )
    if row is None or row.workspace_id != actor.workspace_id:
        raise NotFound("provider not found")
    ended = await _end_directory_sessions(
        rt, uow, source=OIDC, provider_id=row.id, workspace_id=row.workspace_id, reason="provider_deleted"
    )
    await uow.session.execute(
        delete(DirectoryAccount).where(DirectoryAccount.source == OIDC, DirectoryAccount.provider_id == row.id)
    )
    await rt.keyring.destroy(uow.session, row.id)
    await uow.session.delete(row)
    await audit.record(
        rt,
        uow,
        "settings.sso_provider_deleted",
        actor=actor,
        target_type="oidc_provider",
        target_id=provider_id,
        detail={"sessions_ended": ended},
    )


# ---------------------------------------------------------------- LDAP log-in
_NO_CONFIG = ldap.LdapConfig((), "none", None, "", "", "", "{login}")


@dataclass(frozen=True)
class LdapPlan:
    """Step 1's answer: which directory to ask, and about which account."""

    workspace_id: str
    directory_id: str
    config: ldap.LdapConfig = field(default_factory=lambda: _NO_CONFIG)
    operator_id: str | None = None  # an existing directory account; None: created at first login
    refused: str | None = None  # a reason to refuse without asking (directory turned off)


async def ldap_plan(rt: Runtime, uow: UnitOfWork, *, email: str) -> LdapPlan | None:
    """Step 1 (a read unit). None: the directory does not apply, the local password does.

    It applies when the e-mail's account is an LDAP account, or when no account has this e-mail
    and exactly one workspace's directory is on with "create accounts at first login" (and, when
    it names login domains, this e-mail's domain is one of them): a password typed for one
    workspace is never sent to another workspace's directory."""
    try:
        email = check_email(email)
    except ValueError:
        return None
    op = await user_operators.operator_by_email(uow, email)
    if op is not None:
        link = await uow.session.get(DirectoryAccount, op.id)
        if link is None or link.source != LDAP:
            return None
        row = await get_ldap(uow, op.workspace_id)
        if row is None or not row.enabled or row.id != link.provider_id:
            return LdapPlan(op.workspace_id, link.provider_id, operator_id=op.id, refused="directory_off")
        return LdapPlan(row.workspace_id, row.id, await ldap_config(rt, uow, row), operator_id=op.id)
    rows = (
        await uow.session.scalars(
            select(LdapDirectory).where(LdapDirectory.enabled.is_(True), LdapDirectory.auto_create.is_(True))
        )
    ).all()
    domain = _domain_of(email)
    candidates = [r for r in rows if not r.login_domains or domain in r.login_domains]
    named = [r for r in candidates if r.login_domains]
    chosen = named if named else candidates
    if len(chosen) != 1:
        return None
    return LdapPlan(chosen[0].workspace_id, chosen[0].id, await ldap_config(rt, uow, chosen[0]))


async def ldap_check(plan: LdapPlan, *, login: str, password: str) -> ldap.DirectoryEntry | str:
    """Step 2, with no unit open: the directory's entry, or the refusal's reason code."""
    if plan.refused is not None:
        return plan.refused
    try:
        return await ldap.authenticate(plan.config, login, password)
    except ldap.LdapRefused as exc:
        return exc.code


async def _refuse_login(
    rt: Runtime,
    uow: UnitOfWork,
    *,
    method: str,
    workspace_id: str | None,
    operator_id: str | None,
    reason: str,
    message: str = REFUSED,
) -> CommitAndRaise:
    """Audit a refused directory log-in (the one shape of every failed log-in,
    ``user_login.record_login_failure``) and build the 401 to raise once the row is committed."""
    await user_login.record_login_failure(
        rt, uow, method=method, reason=reason, operator_id=operator_id, workspace_id=workspace_id
    )
    return CommitAndRaise(Unauthorized(message))


async def record_ldap_login(
    rt: Runtime, uow: UnitOfWork, plan: LdapPlan, outcome: ldap.DirectoryEntry | str, *, email: str
) -> str:
    """Step 3 (a write unit): the operator id to finish the log-in with, or ``Unauthorized`` (its
    audit row committed). The reason code is audited, never the typed login."""

    async def refuse(reason: str) -> CommitAndRaise:
        return await _refuse_login(
            rt, uow, method=LDAP, workspace_id=plan.workspace_id, operator_id=plan.operator_id, reason=reason
        )

    if isinstance(outcome, str):
        raise await refuse(outcome)
    row = await uow.session.get(LdapDirectory, plan.directory_id)
    if row is None or not row.enabled:
        raise await refuse("directory_off")
    groups = set(outcome.groups)
    if row.required_groups and not ldap.member_of_any(outcome, row.required_groups):
        raise await refuse("not_in_groups")
    mapping = [{**m, "group": ldap.normalise_dn(str(m.get("group", "")))} for m in row.group_roles]
    role = _first_role(mapping, groups, row.default_role)
    now = clock.now()
    if plan.operator_id is not None:
        link = await uow.session.get(DirectoryAccount, plan.operator_id, with_for_update=True)
        op = await user_operators.get_operator(uow, plan.operator_id)
        if link is None or link.source != LDAP or op is None or op.disabled:
            raise await refuse("account_disabled")
        link.external_id, link.checked_at = outcome.dn, now
        if row.group_roles:  # the directory's groups decide the role of its accounts
            await _sync_role(rt, uow, op, role, source=LDAP)
        await uow.session.flush()
        return op.id
    # First log-in: create the account (the directory's e-mail when it has a valid one).
    account_email = email
    if outcome.email:
        try:
            account_email = check_email(outcome.email)
        except ValueError:
            account_email = email
    if await user_operators.operator_by_email(uow, account_email) is not None:
        raise await refuse("email_taken")
    if await uow.session.scalar(
        select(DirectoryAccount.operator_id).where(
            DirectoryAccount.source == LDAP,
            DirectoryAccount.provider_id == row.id,
            DirectoryAccount.external_id == outcome.dn,
        )
    ):
        raise await refuse("dn_taken")
    dept_map = [{**m, "group": ldap.normalise_dn(str(m.get("group", "")))} for m in row.group_departments]
    op_id = await _create_account(
        rt,
        uow,
        workspace_id=row.workspace_id,
        email=account_email,
        name=outcome.name or account_email.split("@")[0],
        role=role,
        department_ids=_departments(dept_map, groups),
        source=LDAP,
        provider_id=row.id,
        external_id=outcome.dn,
    )
    return op_id


async def _create_account(
    rt: Runtime,
    uow: UnitOfWork,
    *,
    workspace_id: str,
    email: str,
    name: str,
    role: str,
    department_ids: list[str],
    source: str,
    provider_id: str,
    external_id: str,
) -> str:
    depts = []
    for dept_id in department_ids:
        dept = await workspaces.get_department(uow, dept_id)
        if dept is not None and dept.workspace_id == workspace_id:
            depts.append(dept_id)
    data = OperatorIn(email=email, name=name[:200] or "Operator", password=crypto.random_token(), department_ids=depts)
    try:
        # A savepoint: two first log-ins of one person at once (on PostgreSQL the second insert
        # waits for the first and then breaks the unique e-mail) end in a refusal, not a 500.
        async with uow.session.begin_nested():
            op = await user_accounts.create_operator(
                rt, uow, workspace_id=workspace_id, data=data, password_hash=NO_LOCAL_PASSWORD
            )
    except (Conflict, IntegrityError):
        raise await _refuse_login(
            rt, uow, method=source, workspace_id=workspace_id, operator_id=None, reason="email_taken"
        ) from None
    op.role = _stored_role(role)
    now = clock.now()
    uow.session.add(
        DirectoryAccount(
            operator_id=op.id,
            workspace_id=workspace_id,
            source=source,
            provider_id=provider_id,
            external_id=external_id,
            created_at=now,
            checked_at=now,
        )
    )
    await uow.session.flush()
    await audit.record(
        rt,
        uow,
        "users.created",
        actor_type="system",
        workspace_id=workspace_id,
        target_type="operator",
        target_id=op.id,
        detail={"source": source, "role": role, "departments": len(depts)},
    )
    return op.id


# ---------------------------------------------------------------- OpenID Connect log-in
@dataclass(frozen=True)
class OidcPlan:
    provider_id: str
    workspace_id: str
    name: str
    issuer: str
    client_id: str
    client_secret: str | None
    scopes: str


async def oidc_plan(rt: Runtime, uow: UnitOfWork, provider_id: str) -> OidcPlan:
    """The provider of a "Sign in with …" button (a read unit); NotFound when absent or turned off."""
    row = await uow.session.get(OidcProvider, provider_id) if len(provider_id) <= 32 else None
    if row is None or not row.enabled:
        raise NotFound("this sign-in option does not exist")
    secret = await _decrypt(rt, uow, row.id, _aad("oidc_providers", "client_secret", row.id), row.client_secret_enc)
    return OidcPlan(row.id, row.workspace_id, row.name, row.issuer, row.client_id, secret, row.scopes)


async def sso_buttons(uow: UnitOfWork) -> list[dict[str, str]]:
    """The log-in page's "Sign in with …" buttons: every enabled provider (id and label only)."""
    rows = await uow.session.execute(
        select(OidcProvider.id, OidcProvider.name).where(OidcProvider.enabled.is_(True)).order_by(OidcProvider.name)
    )
    return [{"id": r.id, "name": r.name} for r in rows]


async def record_oidc_refusal(rt: Runtime, uow: UnitOfWork, plan: OidcPlan | None, reason: str) -> CommitAndRaise:
    return await _refuse_login(
        rt,
        uow,
        method=OIDC,
        workspace_id=plan.workspace_id if plan else None,
        operator_id=None,
        reason=reason,
        message=SSO_REFUSED,
    )


async def record_oidc_login(rt: Runtime, uow: UnitOfWork, plan: OidcPlan, claims: dict[str, Any]) -> str:
    """The operator id for these verified ID token claims: the account linked to (provider, sub),
    or the account with this verified e-mail in the provider's workspace (linked now), or a new
    account when the provider creates them. Otherwise ``Unauthorized`` (audited)."""

    async def refuse(reason: str, operator_id: str | None = None) -> CommitAndRaise:
        return await _refuse_login(
            rt,
            uow,
            method=OIDC,
            workspace_id=plan.workspace_id,
            operator_id=operator_id,
            reason=reason,
            message=SSO_REFUSED,
        )

    row = await uow.session.get(OidcProvider, plan.provider_id)
    if row is None or not row.enabled:
        raise await refuse("provider_off")
    sub = str(claims["sub"])
    raw_email = claims.get(row.email_claim or "email")
    verified = claims.get("email_verified")
    if row.require_email_verified and verified is not True and str(verified).lower() != "true":
        raise await refuse("email_not_verified")
    try:
        email = check_email(raw_email) if isinstance(raw_email, str) else None
    except ValueError:
        email = None
    if email is None:
        raise await refuse("no_email")
    if row.allowed_domains and _domain_of(email) not in row.allowed_domains:
        raise await refuse("domain_not_allowed")
    groups = {g.lower() for g in oidc.claim_values(claims, row.group_claim)}
    mapping = [{**m, "group": str(m.get("group", "")).lower()} for m in row.group_roles]
    role = _first_role(mapping, groups, row.default_role)
    link = await uow.session.scalar(
        select(DirectoryAccount)
        .where(
            DirectoryAccount.source == OIDC, DirectoryAccount.provider_id == row.id, DirectoryAccount.external_id == sub
        )
        .with_for_update()
    )
    now = clock.now()
    op = await user_operators.get_operator(uow, link.operator_id) if link is not None else None
    if op is None:
        op = await user_operators.operator_by_email(uow, email)
        if op is not None:
            if op.workspace_id != row.workspace_id:
                raise await refuse("other_workspace")
            existing = await uow.session.get(DirectoryAccount, op.id)
            if existing is not None and (existing.source != OIDC or existing.provider_id != row.id):
                raise await refuse("linked_elsewhere", op.id)
            if existing is not None:  # the same provider under another subject: never re-pointed silently
                raise await refuse("subject_changed", op.id)
            uow.session.add(
                DirectoryAccount(
                    operator_id=op.id,
                    workspace_id=row.workspace_id,
                    source=OIDC,
                    provider_id=row.id,
                    external_id=sub,
                    created_at=now,
                    checked_at=now,
                )
            )
            await audit.record(
                rt,
                uow,
                "users.directory_linked",
                actor_type="system",
                workspace_id=op.workspace_id,
                target_type="operator",
                target_id=op.id,
                detail={"source": OIDC},
            )
    if op is None:
        if not row.auto_create:
            raise await refuse("no_account")
        dept_map = [{**m, "group": str(m.get("group", "")).lower()} for m in row.group_departments]
        name = claims.get("name") if isinstance(claims.get("name"), str) else None
        return await _create_account(
            rt,
            uow,
            workspace_id=row.workspace_id,
            email=email,
            name=name or email.split("@")[0],
            role=role,
            department_ids=_departments(dept_map, groups),
            source=OIDC,
            provider_id=row.id,
            external_id=sub,
        )
    if op.disabled:
        raise await refuse("account_disabled", op.id)
    if link is not None:
        link.checked_at = now
    if row.group_roles:
        await _sync_role(rt, uow, op, role, source=OIDC)
    await uow.session.flush()
    return op.id


# ---------------------------------------------------------------- periodic re-check of LDAP accounts
@dataclass(frozen=True)
class _Due:
    operator_id: str
    workspace_id: str
    dn: str
    config: ldap.LdapConfig
    required_groups: tuple[str, ...]


async def recheck_directory_accounts(rt: Runtime, uow: UnitOfWork) -> int:
    """The scheduler's job (one node at a time): claims the LDAP accounts with an open session that
    were not checked for their directory's ``recheck_interval_s`` (their ``checked_at`` moves on, so
    no other tick takes them again), and asks the directory about them after this unit commits:
    no directory call holds a transaction (or SQLite's writer) open. Returns how many it claimed."""
    now = clock.now()
    open_session = user_sessions.has_open_session(DirectoryAccount.operator_id)
    rows = (
        await uow.session.execute(
            select(DirectoryAccount, LdapDirectory)
            .join(LdapDirectory, LdapDirectory.id == DirectoryAccount.provider_id)
            .where(DirectoryAccount.source == LDAP, open_session)
            .order_by(DirectoryAccount.checked_at)
            .limit(RECHECK_BATCH * 4)
        )
    ).all()
    due: list[_Due] = []
    for link, row in rows:
        if len(due) >= RECHECK_BATCH:
            break
        if link.checked_at > now - timedelta(seconds=row.recheck_interval_s):
            continue
        claimed = await uow.session.execute(
            update(DirectoryAccount)
            .where(DirectoryAccount.operator_id == link.operator_id, DirectoryAccount.checked_at == link.checked_at)
            .values(checked_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            continue
        if not row.enabled:
            due.append(
                _Due(
                    link.operator_id,
                    link.workspace_id,
                    link.external_id,
                    ldap.LdapConfig((), "none", None, "", "", "", "{login}"),
                    ("!off",),
                )
            )
            continue
        due.append(
            _Due(
                link.operator_id,
                link.workspace_id,
                link.external_id,
                await ldap_config(rt, uow, row),
                tuple(row.required_groups),
            )
        )
    if due:

        async def check() -> None:
            try:
                await _recheck(rt, due)
            except Exception:  # a failing directory must not break the scheduler's tick
                log.exception("directory_recheck_failed")

        uow.after_commit(check)
    return len(due)


async def _verdict(item: _Due) -> str | None:
    """None: still allowed. Otherwise the reason to end their sessions. A directory that cannot be
    asked ends nothing (an outage must not log everyone out); it is logged and asked next time."""
    if item.required_groups == ("!off",):
        return "directory_off"
    try:
        entry = await ldap.lookup(item.config, item.dn)
    except ldap.LdapRefused as exc:
        log.warning("directory_recheck_unreachable", reason=exc.code, operator_id=item.operator_id)
        return None
    if entry is None:
        return "removed"
    if entry.disabled:
        return "disabled"
    if item.required_groups and not ldap.member_of_any(entry, item.required_groups):
        return "not_in_groups"
    return None


async def _recheck(rt: Runtime, due: list[_Due]) -> None:
    refused = [(item, reason) for item in due if (reason := await _verdict(item)) is not None]
    if not refused:
        return
    async with rt.db.unit_of_work() as uow:
        for item, reason in refused:
            await user_sessions.revoke_sessions(uow, item.operator_id)
            events.publish(rt, uow, events.Revoke(item.operator_id))
            await audit.record(
                rt,
                uow,
                "auth.sessions_revoked",
                actor_type="system",
                workspace_id=item.workspace_id,
                target_type="operator",
                target_id=item.operator_id,
                detail={"method": LDAP, "reason": reason},
            )


async def is_directory_account(uow: UnitOfWork, operator_id: str) -> bool:
    return bool(await uow.session.scalar(select(exists().where(DirectoryAccount.operator_id == operator_id))))
