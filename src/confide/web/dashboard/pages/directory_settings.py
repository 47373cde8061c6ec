"""Settings → Security → Directory & SSO (``Permission.SETTINGS_MANAGE``): the workspace's LDAP /
Active Directory and its OpenID Connect providers. Secrets are never shown back: a password or
client secret field left empty keeps the stored one. A form that does not validate is shown
again with what was typed (secrets excepted) and why."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from confide.auth.actors import OperatorActor
from confide.auth.providers import ldap
from confide.core.errors import DomainError
from confide.identity import service as identity
from confide.identity.schemas import LdapSettingsIn, OidcProviderIn
from confide.permissions.policy import Permission as P
from confide.web.api.deps import StateDep, operator_unit
from confide.web.dashboard.auth import PageOperator
from confide.web.dashboard.forms import errors, sentence, text
from confide.web.dashboard.templating import error_page, render
from confide.web.permits import needs
from confide.web.state import State
from confide.workspaces import service as workspaces

router = APIRouter(include_in_schema=False)
PATH = "/app/settings/security/directory"

SAVED = {
    "ldap": "Directory settings saved.",
    "oidc": "Sign-in provider saved.",
    "oidc-new": "Sign-in provider added.",
    "oidc-deleted": "Sign-in provider deleted.",
}
TEST_RESULTS = {
    None: "The directory answered: the service account can bind and read the user base.",
    "bad_credentials": "The service account's DN or password was refused.",
    "unreachable": "No directory server answered.",
    "timeout": "The directory did not answer in time.",
    "tls_failed": "TLS could not be set up: check the CA certificate and the server's name.",
    "base_not_found": "The user base DN does not exist.",
}


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace(",\n", "\n").splitlines() if line.strip()]


def _words(value: str) -> list[str]:
    return [w.strip() for w in value.replace(",", " ").split() if w.strip()]


def _mapping(value: str, what: str) -> list[tuple[str, str]]:
    """Lines of ``group => value``."""
    out = []
    for line in _lines(value):
        group, sep, right = line.rpartition("=>")
        if not sep or not group.strip() or not right.strip():
            raise ValueError(f"{what}: “{line[:60]}” is not a line like “group => value”")
        out.append((group.strip(), right.strip()))
    return out


def _mapping_text(rows: list[dict[str, Any]], key: str, names: dict[str, str] | None = None) -> str:
    return "\n".join(f"{r.get('group', '')} => {(names or {}).get(str(r.get(key)), r.get(key))}" for r in rows)


def _departments_by_name(departments: list[dict[str, Any]]) -> dict[str, str]:
    return {d["name"].casefold(): d["id"] for d in departments}


def _group_departments(value: str, departments: list[dict[str, Any]]) -> list[dict[str, str]]:
    by_name = _departments_by_name(departments)
    out = []
    for group, name in _mapping(value, "Group → department"):
        dept_id = by_name.get(name.casefold())
        if dept_id is None:
            raise ValueError(f"Group → department: there is no department named “{name[:60]}”")
        out.append({"group": group, "department_id": dept_id})
    return out


def _shared_shape(form: FormData) -> dict[str, Any]:
    return {
        "group_roles_text": text(form, "group_roles"),
        "group_departments_text": text(form, "group_departments"),
        "default_role": text(form, "default_role") or "operator",
        "auto_create": text(form, "auto_create") == "1",
    }


def _ldap_shape(form: FormData) -> dict[str, Any]:
    return {
        **_shared_shape(form),
        "enabled": text(form, "enabled") == "1",
        "server_urls_text": text(form, "server_urls"),
        "tls_mode": text(form, "tls_mode") or "starttls",
        "ca_cert_pem": text(form, "ca_cert_pem"),
        "bind_dn": text(form, "bind_dn").strip(),
        "user_base_dn": text(form, "user_base_dn").strip(),
        "user_filter": text(form, "user_filter").strip(),
        "attr_email": text(form, "attr_email").strip() or "mail",
        "attr_name": text(form, "attr_name").strip() or "cn",
        "attr_groups": text(form, "attr_groups").strip() or "memberOf",
        "required_groups_text": text(form, "required_groups"),
        "login_domains_text": text(form, "login_domains"),
        "timeout_s": text(form, "timeout_s").strip() or "5",
        "recheck_interval_s": text(form, "recheck_interval_s").strip() or "300",
    }


def _ldap_payload(shape: dict[str, Any], password: str, departments: list[dict[str, Any]]) -> LdapSettingsIn:
    return LdapSettingsIn.model_validate(
        {
            "enabled": shape["enabled"],
            "server_urls": _lines(shape["server_urls_text"]),
            "tls_mode": shape["tls_mode"],
            "ca_cert_pem": shape["ca_cert_pem"] or None,
            "bind_dn": shape["bind_dn"],
            "bind_password": password or None,
            "user_base_dn": shape["user_base_dn"],
            "user_filter": shape["user_filter"],
            "attr_email": shape["attr_email"],
            "attr_name": shape["attr_name"],
            "attr_groups": shape["attr_groups"],
            "group_roles": [{"group": g, "role": r} for g, r in _mapping(shape["group_roles_text"], "Group → role")],
            "group_departments": _group_departments(shape["group_departments_text"], departments),
            "required_groups": _lines(shape["required_groups_text"]),
            "default_role": shape["default_role"],
            "auto_create": shape["auto_create"],
            "login_domains": _words(shape["login_domains_text"]),
            "timeout_s": shape["timeout_s"],
            "recheck_interval_s": shape["recheck_interval_s"],
        }
    )


def _oidc_shape(form: FormData) -> dict[str, Any]:
    return {
        **_shared_shape(form),
        "name": text(form, "name").strip(),
        "enabled": text(form, "enabled") == "1",
        "issuer": text(form, "issuer").strip(),
        "client_id": text(form, "client_id").strip(),
        "scopes": text(form, "scopes").strip() or "openid email profile",
        "email_claim": text(form, "email_claim").strip() or "email",
        "require_email_verified": text(form, "require_email_verified") == "1",
        "group_claim": text(form, "group_claim").strip(),
        "allowed_domains_text": text(form, "allowed_domains"),
    }


def _oidc_payload(shape: dict[str, Any], secret: str, departments: list[dict[str, Any]]) -> OidcProviderIn:
    return OidcProviderIn.model_validate(
        {
            "name": shape["name"],
            "enabled": shape["enabled"],
            "issuer": shape["issuer"],
            "client_id": shape["client_id"],
            "client_secret": secret or None,
            "scopes": shape["scopes"],
            "email_claim": shape["email_claim"],
            "require_email_verified": shape["require_email_verified"],
            "group_claim": shape["group_claim"],
            "group_roles": [{"group": g, "role": r} for g, r in _mapping(shape["group_roles_text"], "Group → role")],
            "group_departments": _group_departments(shape["group_departments_text"], departments),
            "default_role": shape["default_role"],
            "allowed_domains": _words(shape["allowed_domains_text"]),
            "auto_create": shape["auto_create"],
        }
    )


def _ldap_form(view: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {
        **view,
        "server_urls_text": "\n".join(view["server_urls"]),
        "group_roles_text": _mapping_text(view["group_roles"], "role"),
        "group_departments_text": _mapping_text(view["group_departments"], "department_id", names),
        "required_groups_text": "\n".join(view["required_groups"]),
        "login_domains_text": " ".join(view["login_domains"]),
        "ca_cert_pem": view["ca_cert_pem"] or "",
        "errors": [],
        "open": False,
    }


def _oidc_form(view: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {
        **view,
        "group_roles_text": _mapping_text(view["group_roles"], "role"),
        "group_departments_text": _mapping_text(view["group_departments"], "department_id", names),
        "allowed_domains_text": " ".join(view["allowed_domains"]),
        "errors": [],
        "open": False,
    }


NEW_PROVIDER = {
    "id": "new",
    "name": "",
    "enabled": True,
    "issuer": "",
    "client_id": "",
    "has_secret": False,
    "scopes": "openid email profile",
    "email_claim": "email",
    "require_email_verified": True,
    "group_claim": "groups",
    "group_roles_text": "",
    "group_departments_text": "",
    "default_role": "operator",
    "allowed_domains_text": "",
    "auto_create": False,
    "errors": [],
    "open": False,
}


async def _page(
    request: Request,
    state: State,
    actor: OperatorActor,
    *,
    failed: tuple[str, dict[str, Any], list[str]] | None = None,
    status_code: int = 200,
    test_result: tuple[bool, str] | None = None,
) -> Response:
    try:
        async with operator_unit(request, write=False) as (uow, actor):
            data = await identity.directory_settings(uow, actor)
            departments = [workspaces.department_view(d) for d in await workspaces.list_departments(uow, actor)]
    except DomainError as exc:
        if exc.status == 403:
            return render(request, "admin_only.html", actor, status_code=403, nav="directory")
        return error_page(request, actor, exc.status, sentence(exc.message), nav="directory")
    names = {d["id"]: d["name"] for d in departments}
    ldap_form = _ldap_form(data["ldap"], names)
    provider_forms = [_oidc_form(p, names) for p in data["providers"]]
    new_provider = dict(NEW_PROVIDER)
    if failed is not None:
        form_id, values, problems = failed
        merged = {**values, "errors": problems, "open": True}
        if form_id == "ldap":
            ldap_form = {**ldap_form, **merged}
        elif form_id == "oidc-new":
            new_provider = {**new_provider, **merged}
        else:
            provider_forms = [{**f, **merged} if f"oidc-{f['id']}" == form_id else f for f in provider_forms]
    base = (state.rt.settings.public_url or str(request.base_url)).rstrip("/")
    flash = SAVED.get(request.query_params.get("saved", "")) if failed is None else None
    flash_kind = "success"
    if test_result is not None:
        flash, flash_kind = test_result[1], "success" if test_result[0] else "error"
    return render(
        request,
        "settings_directory.html",
        actor,
        status_code=status_code,
        nav="directory",
        flash=flash,
        flash_kind=flash_kind,
        ldap_form=ldap_form,
        provider_forms=provider_forms,
        new_provider=new_provider,
        roles=data["roles"],
        base_url=base,
        departments=departments,
    )


async def _departments(request: Request) -> list[dict[str, Any]]:
    async with operator_unit(request, write=False) as (uow, actor):
        return [workspaces.department_view(d) for d in await workspaces.list_departments(uow, actor)]


@router.get(PATH, dependencies=[needs(P.SETTINGS_MANAGE)])
async def directory_page(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _page(request, state, actor)


@router.post(f"{PATH}/ldap", dependencies=[needs(P.SETTINGS_MANAGE)])
async def directory_save(request: Request, actor: PageOperator, state: StateDep) -> Response:
    form = await request.form()
    shape = _ldap_shape(form)
    try:
        body = _ldap_payload(shape, text(form, "bind_password"), await _departments(request))
        async with operator_unit(request, write=True) as (uow, actor):
            await identity.save_ldap(state.rt, uow, actor, body)
    except (ValueError, ValidationError, DomainError) as exc:
        if isinstance(exc, DomainError) and exc.status == 403:
            return render(request, "admin_only.html", actor, status_code=403, nav="directory")
        return await _page(request, state, actor, failed=("ldap", shape, errors(exc)), status_code=422)
    return RedirectResponse(f"{PATH}?saved=ldap#ldap", status_code=303)


@router.post(f"{PATH}/ldap/test", dependencies=[needs(P.SETTINGS_MANAGE)])
async def directory_test(request: Request, actor: PageOperator, state: StateDep) -> Response:
    """Three steps, like a log-in: read the settings, ask the directory with no unit open, audit."""
    try:
        async with operator_unit(request, write=False) as (uow, actor):
            config = await identity.ldap_test_config(state.rt, uow, actor)
    except DomainError as exc:
        if exc.status == 403:
            return render(request, "admin_only.html", actor, status_code=403, nav="directory")
        return await _page(request, state, actor, test_result=(False, sentence(exc.message)), status_code=exc.status)
    code: str | None = None
    try:
        await ldap.test_connection(config)
    except ldap.LdapRefused as exc:
        code = exc.code
    async with operator_unit(request, write=True) as (uow, actor):
        await identity.record_ldap_test(state.rt, uow, actor, code)
    message = TEST_RESULTS.get(code, f"The directory refused the test ({code}).")
    return await _page(request, state, actor, test_result=(code is None, message))


@router.post(f"{PATH}/oidc", dependencies=[needs(P.SETTINGS_MANAGE)])
async def provider_create(request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _save_provider(request, actor, state, None)


@router.post(f"{PATH}/oidc/{{provider_id}}", dependencies=[needs(P.SETTINGS_MANAGE)])
async def provider_update(provider_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    return await _save_provider(request, actor, state, provider_id)


async def _save_provider(request: Request, actor: OperatorActor, state: State, provider_id: str | None) -> Response:
    form = await request.form()
    shape = _oidc_shape(form)
    try:
        body = _oidc_payload(shape, text(form, "client_secret"), await _departments(request))
        async with operator_unit(request, write=True) as (uow, actor):
            row = await identity.save_oidc_provider(state.rt, uow, actor, body, provider_id)
    except (ValueError, ValidationError, DomainError) as exc:
        if isinstance(exc, DomainError) and exc.status in (403, 404):
            if exc.status == 403:
                return render(request, "admin_only.html", actor, status_code=403, nav="directory")
            return error_page(request, actor, 404, sentence(exc.message), nav="directory")
        form_id = f"oidc-{provider_id}" if provider_id else "oidc-new"
        return await _page(request, state, actor, failed=(form_id, shape, errors(exc)), status_code=422)
    saved = "oidc" if provider_id else "oidc-new"
    return RedirectResponse(f"{PATH}?saved={saved}#oidc-{row.id}", status_code=303)


@router.post(f"{PATH}/oidc/{{provider_id}}/delete", dependencies=[needs(P.SETTINGS_MANAGE)])
async def provider_delete(provider_id: str, request: Request, actor: PageOperator, state: StateDep) -> Response:
    try:
        async with operator_unit(request, write=True) as (uow, actor):
            await identity.delete_oidc_provider(state.rt, uow, actor, provider_id)
    except DomainError as exc:
        if exc.status == 403:
            return render(request, "admin_only.html", actor, status_code=403, nav="directory")
        return error_page(request, actor, exc.status, sentence(exc.message), nav="directory")
    return RedirectResponse(f"{PATH}?saved=oidc-deleted", status_code=303)
