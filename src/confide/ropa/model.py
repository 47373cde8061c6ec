"""The record of processing activities (Art. 30(1)) and the data map, as plain data (ADR 0030).

Nothing here is written by hand: the processing activities are the registry's classifications
(``privacy_registry.REGISTRY``) grouped by purpose and lawful basis, with the categories of data
and of subjects, the retention classes and how each is stored; the periods come from the
configuration and the workspace's overrides (``retention``); recipients and security measures are
read from the settings that are on (the mail server, the purposes' declared recipients, TLS,
encryption, blind indexes, the audit chain, two-factor). A column added to the registry is a new
row of the data map and, if its purpose, category or class is new, a change in the activities.

``gather`` reads the workspace (async, one read unit); ``build`` is pure, so the record of any
registry can be computed (tests add a column). ``render.py`` turns the result into Markdown, CSV
and the title + blocks a PDF is drawn from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confide import privacy_registry
from confide.auth.actors import OperatorActor
from confide.config import Settings
from confide.consent import notices as consent_notices
from confide.core import clock
from confide.core.db import UnitOfWork
from confide.core.errors import Forbidden, NotFound
from confide.core.personal_data import Personal, Table
from confide.core.runtime import Runtime
from confide.permissions.policy import Permission, allows_any
from confide.retention import service as retention
from confide.retention.categories import INFO, OTHER_CLASSES, Category, category_of_class, describe
from confide.two_factor import service as two_factor
from confide.workspaces import service as workspaces

SCHEMA = "confide.ropa/1"
SUBJECT_NAMES = {"visitor": "Website visitors (chat users, senders of offline requests, prospects)",
                 "operator": "Staff (operators and administrators)"}


@dataclass
class Inputs:
    workspace_id: str
    workspace_name: str
    sites: list[tuple[str, str]]  # (id, name)
    overrides: dict[tuple[str, Category], int]
    purposes: list[dict[str, str]] = field(default_factory=list)  # the workspace's consent purposes
    two_factor_required: str = "not required"


async def gather(uow: UnitOfWork, workspace_id: str) -> Inputs:
    ws = await workspaces.get_workspace(uow, workspace_id)
    if ws is None:
        raise NotFound("workspace not found")
    sites = [(s.id, s.name) for s in await workspaces.sites_of(uow, workspace_id)]
    purposes = [
        {"key": p.key, "name": p.name, "lawful_basis": p.lawful_basis, "recipients": p.recipients or "",
         "retention_class": p.retention_class or ""}
        for p in await consent_notices.list_purposes(uow, workspace_id)
        if p.enabled
    ]
    policy = await two_factor.get_policy(uow, workspace_id)
    required = "required of every staff account" if policy.require_all else (
        f"required of the roles {', '.join(sorted(policy.roles))}" if policy.roles else "available, not required"
    )
    return Inputs(ws.id, ws.name, sites, await retention.overrides(uow, workspace_id), purposes, required)


def _period(settings: Settings, inputs: Inputs, retention_class: str) -> str:
    category = category_of_class(retention_class)
    if category is None:
        return OTHER_CLASSES.get(retention_class, "not set")
    days, source = retention.resolve(settings, inputs.overrides, None, category)
    text = f"{describe(days)} after {INFO[category].counts_from}"
    sites = {
        name: retention.resolve(settings, inputs.overrides, site_id, category)
        for site_id, name in inputs.sites
    }
    differing = sorted(f"{name}: {describe(d)}" for name, (d, src) in sites.items() if src == "site")
    if source == "workspace":
        text += " (this workspace's setting)"
    if differing:
        text += "; " + "; ".join(differing)
    return text


def _recipients(settings: Settings, inputs: Inputs) -> list[dict[str, str]]:
    out = [{
        "recipient": "Mail server (SMTP relay)" if settings.smtp_host else "No mail server (mail kept in local files)",
        "what": "e-mail addresses and the messages sent to them (transcripts, verification codes, links)",
        "where": settings.smtp_host or str(settings.data_dir / "mail"),
    }]
    for p in inputs.purposes:
        if p["recipients"].strip():
            out.append({"recipient": p["recipients"].strip(), "what": f"data processed for {p['name']}",
                        "where": f"consent purpose {p['key']}"})
    out.append({"recipient": "Integrations", "what": "none configured (this build has no outgoing integrations)",
                "where": "-"})
    return out


def _security(settings: Settings, inputs: Inputs) -> list[dict[str, str]]:
    tls = "on (built-in TLS)" if settings.tls_cert is not None else (
        "on (behind a TLS proxy; secure cookies, HSTS)" if settings.https else "off: serve behind TLS in production"
    )
    return [
        {"measure": "Encryption at rest", "state": "on: AES-256-GCM under a per-subject data key, wrapped by a "
                                                   "master key kept outside the database (crypto-shredding)"},
        {"measure": "Blind indexes", "state": "on: keyed HMAC for look-ups by e-mail, phone and words; no plaintext "
                                              "search columns"},
        {"measure": "Transport encryption (TLS)", "state": tls},
        {"measure": "Two-factor authentication for staff", "state": inputs.two_factor_required},
        {"measure": "Audit log", "state": "on: append-only, hash-chained (confide audit verify); kept "
                                          f"{describe(settings.audit_retention_days)}"},
        {"measure": "Log privacy",
         "state": f"no personal data in logs; client addresses: {settings.log_client_address}"},
        {"measure": "Log-in throttling", "state": f"on: delays after {settings.login_free_failures} failures, "
                                                  f"sessions expire after {settings.session_idle_timeout_s // 60} "
                                                  "idle minutes"},
        {"measure": "Legal holds and retention sweep", "state": "on: past-period data deleted in batches, held "
                                                               "data kept"},
    ]


def build(registry: Mapping[str, Table], settings: Settings, inputs: Inputs) -> dict[str, Any]:
    """The record as plain data (JSON-able): activities, data map, retention, recipients, security."""
    data_map: list[dict[str, Any]] = []
    activities: dict[tuple[str, str], dict[str, Any]] = {}
    for table in sorted(registry):
        for column, kind in registry[table].columns.items():
            if not isinstance(kind, Personal):
                continue
            period = _period(settings, inputs, kind.retention)
            data_map.append({
                "table": table, "column": column, "subject": kind.subject, "category": kind.category.value,
                "purpose": kind.purpose, "lawful_basis": kind.lawful_basis, "retention_class": kind.retention,
                "period": period, "storage": kind.storage.value, "erasure": kind.erasure.value,
                "exported": kind.exported, "note": kind.note,
            })
            act = activities.setdefault((kind.purpose, kind.lawful_basis), {
                "purpose": kind.purpose, "lawful_basis": kind.lawful_basis, "subjects": set(),
                "categories": set(), "retention": {}, "storage": set(), "tables": set(),
            })
            act["subjects"].add(kind.subject)
            act["categories"].add(kind.category.value)
            act["retention"][kind.retention] = period
            act["storage"].add(kind.storage.value)
            act["tables"].add(table)
    retention_rows = []
    for category, info in INFO.items():
        ws_days, source = retention.resolve(settings, inputs.overrides, None, category)
        retention_rows.append({
            "category": category.value, "label": info.label, "counts_from": info.counts_from,
            "default": describe(retention.default_days(settings, category)),
            "workspace": describe(ws_days) + (" (set here)" if source == "workspace" else ""),
            "sites": {name: describe(retention.resolve(settings, inputs.overrides, site_id, category)[0])
                      for site_id, name in inputs.sites},
            "swept": info.store,
        })
    return {
        "schema": SCHEMA,
        "generated_at": clock.iso(clock.now()),
        "controller": {"workspace_id": inputs.workspace_id, "name": inputs.workspace_name},
        "activities": [
            {
                "purpose": a["purpose"],
                "lawful_basis": a["lawful_basis"],
                "subjects": [SUBJECT_NAMES.get(s, s) for s in sorted(a["subjects"])],
                "categories": sorted(a["categories"]),
                "retention": [f"{cls}: {text}" for cls, text in sorted(a["retention"].items())],
                "storage": sorted(a["storage"]),
                "tables": sorted(a["tables"]),
            }
            for _, a in sorted(activities.items())
        ],
        "purposes": inputs.purposes,
        "data_map": data_map,
        "retention": retention_rows,
        "recipients": _recipients(settings, inputs),
        "transfers": "none outside the installation's own servers unless a recipient above says otherwise",
        "security": _security(settings, inputs),
    }


async def of_workspace(rt: Runtime, uow: UnitOfWork, workspace_id: str) -> dict[str, Any]:
    """The record of one workspace, from the assembled registry (the CLI's; no actor)."""
    return build(privacy_registry.REGISTRY, rt.settings, await gather(uow, workspace_id))


async def for_actor(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> dict[str, Any]:
    """The record of the actor's workspace (``consent.manage``, the privacy role's, or
    ``settings.read``, the auditor's: it describes configuration and holds no personal data)."""
    if not allows_any(actor, Permission.CONSENT_MANAGE, Permission.SETTINGS_READ):
        raise Forbidden("you do not have permission to do this")
    return await of_workspace(rt, uow, actor.workspace_id)
