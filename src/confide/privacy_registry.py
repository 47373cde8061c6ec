"""The personal-data registry, assembled from every domain's ``privacy.py``.

Each package that defines tables declares them next to its models (``<package>/privacy.py``,
``TABLES``; the format is described in ``core/personal_data.py``). This module is the one place
that gathers them: above every declaration and below the services, so that export and erasure
can walk the registry (``rows_of``). ``tests/test_registry.py`` fails when a package defines a
table its ``privacy.py`` does not declare, or has no ``privacy.py`` listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

from sqlalchemy import ColumnElement, Select

import confide.models  # noqa: F401  (every table in Base.metadata)
from confide.audit import privacy as audit_privacy
from confide.auth import privacy as auth_privacy
from confide.chats import privacy as chats_privacy
from confide.consent import privacy as consent_privacy
from confide.core import personal_data
from confide.core import privacy as core_privacy
from confide.core.db import Base
from confide.core.personal_data import Personal, Subject, Table
from confide.erasure import privacy as erasure_privacy
from confide.identity import privacy as identity_privacy
from confide.login_limits import privacy as login_limits_privacy
from confide.offline import privacy as offline_privacy
from confide.privacy_requests import privacy as privacy_requests_privacy  # data-subject requests (ADR 0029)
from confide.prospects import privacy as prospects_privacy  # prospects
from confide.redaction import privacy as redaction_privacy
from confide.restriction import privacy as restriction_privacy  # restriction of processing (ADR 0031)
from confide.retention import privacy as retention_privacy
from confide.subjects import privacy as subjects_privacy
from confide.two_factor import privacy as two_factor_privacy
from confide.users import privacy as users_privacy
from confide.verified import privacy as verified_privacy
from confide.visitor_activity import privacy as visitor_activity_privacy
from confide.visitors import privacy as visitors_privacy
from confide.workspaces import privacy as workspaces_privacy

_MODULES: tuple[ModuleType, ...] = (
    audit_privacy,
    auth_privacy,
    chats_privacy,
    consent_privacy,
    core_privacy,
    erasure_privacy,
    identity_privacy,
    login_limits_privacy,
    offline_privacy,
    privacy_requests_privacy,
    prospects_privacy,
    redaction_privacy,
    restriction_privacy,
    retention_privacy,
    subjects_privacy,
    two_factor_privacy,
    users_privacy,
    verified_privacy,
    visitor_activity_privacy,
    visitors_privacy,
    workspaces_privacy,
)

# package ("confide.chats") -> the tables its privacy.py declares
DECLARED: dict[str, Mapping[str, Table]] = {m.__name__.rsplit(".", 1)[0]: m.TABLES for m in _MODULES}

REGISTRY: dict[str, Table] = personal_data.assemble(DECLARED)


def problems() -> list[str]:
    """Everything wrong with the assembled registry (empty: all good)."""
    defined = personal_data.defining_packages(Base.registry.mappers)
    return personal_data.check(REGISTRY, Base.metadata) + personal_data.check_owners(DECLARED, defined)


def personal_columns() -> list[tuple[str, str, Personal]]:
    return personal_data.personal_columns(REGISTRY)


def rows_of(subject: Subject) -> dict[str, Select[Any]]:
    """Per table, the select of exactly ``subject``'s rows (see core/personal_data.py)."""
    return personal_data.rows_of(REGISTRY, Base.metadata, subject)


def conditions_of(subject: Subject) -> dict[str, ColumnElement[bool]]:
    """Per table, the condition on ``subject``'s rows, for an UPDATE or DELETE."""
    return personal_data.conditions_of(REGISTRY, Base.metadata, subject)
