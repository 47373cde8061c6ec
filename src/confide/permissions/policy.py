"""What each role may do: the permission catalogue and the built-in roles.

A permission names one capability of one module. A role is a set of permissions plus a scope: how
far the chat and offline-request permissions reach (every department of the workspace, the
operator's own departments, or only the operator's own and queued chats of those departments).
Nothing outside ``permissions/`` compares roles or permissions: callers ask ``require`` or
``allows`` (or one of the scoped loaders in ``access``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from confide.auth.actors import OperatorActor
from confide.core.errors import Forbidden


class Permission(StrEnum):
    # chats
    CHATS_READ = "chats.read"  # Stored Chats and transcripts, within the role's scope
    CHATS_PARTICIPATE = "chats.participate"  # the console: accept, reply, transfer, close
    CHATS_DELETE = "chats.delete"
    CHATS_VIEW_REDACTED = "chats.view_redacted"  # the originals of masked text (redaction), each view audited
    # visitors, offline requests, prospects
    VISITORS_READ = "visitors.read"  # Visitor Activity and the visitor panel
    OFFLINE_READ = "offline.read"
    OFFLINE_MANAGE = "offline.manage"  # mark handled, reassign, delete
    PROSPECTS_READ = "prospects.read"
    PROSPECTS_MANAGE = "prospects.manage"
    # data-subject rights and privacy
    SUBJECTS_VIEW = "subjects.view"
    SUBJECTS_EXPORT = "subjects.export"
    SUBJECTS_ERASE = "subjects.erase"
    SUBJECTS_RESTRICT = "subjects.restrict"  # restrict a person's processing (Art. 18) and lift it
    SUBJECTS_RECTIFY = "subjects.rectify"  # correct a person's details everywhere (Art. 16, ADR 0032)
    CONSENT_MANAGE = "consent.manage"
    RETENTION_MANAGE = "retention.manage"
    BREACHES_READ = "breaches.read"
    BREACHES_MANAGE = "breaches.manage"
    # administration
    USERS_READ = "users.read"
    USERS_MANAGE = "users.manage"
    ROLES_MANAGE = "roles.manage"
    SETTINGS_READ = "settings.read"
    SETTINGS_MANAGE = "settings.manage"
    AUDIT_READ = "audit.read"  # the Audit Report and its export
    ACCOUNTS_REVIEW = "accounts.review"  # the account review report
    ACCOUNTS_SIGN_OFF = "accounts.sign_off"  # sign a periodic account review off
    REPORTS_READ = "reports.read"
    INTEGRATIONS_MANAGE = "integrations.manage"


class Scope(StrEnum):
    """How far a role's chat and offline-request permissions reach."""

    WORKSPACE = "workspace"  # every department of the workspace
    DEPARTMENTS = "departments"  # every chat of the operator's departments
    OWN = "own"  # the operator's own chats, and the queued chats of their departments


@dataclass(frozen=True)
class BuiltInRole:
    key: str
    name: str
    description: str
    scope: Scope
    permissions: frozenset[Permission]


P = Permission

# Operators answer the offline requests of their departments (mark them handled), as before roles.
_OPERATOR = frozenset(
    {P.CHATS_READ, P.CHATS_PARTICIPATE, P.VISITORS_READ, P.OFFLINE_READ, P.OFFLINE_MANAGE, P.PROSPECTS_READ}
)
_SUPERVISOR = _OPERATOR | {P.PROSPECTS_MANAGE, P.USERS_READ, P.REPORTS_READ}
_PRIVACY_OFFICER = frozenset(
    {
        P.SUBJECTS_VIEW,
        P.SUBJECTS_EXPORT,
        P.SUBJECTS_ERASE,
        P.SUBJECTS_RESTRICT,
        P.SUBJECTS_RECTIFY,
        P.CONSENT_MANAGE,
        P.RETENTION_MANAGE,
        P.BREACHES_READ,
        P.BREACHES_MANAGE,
        P.AUDIT_READ,
    }
)
_AUDITOR = frozenset({P.AUDIT_READ, P.ACCOUNTS_REVIEW, P.SETTINGS_READ, P.USERS_READ})

BUILT_IN_ROLES: dict[str, BuiltInRole] = {
    role.key: role
    for role in (
        BuiltInRole(
            "administrator", "Administrator", "Everything, in every department.", Scope.WORKSPACE, frozenset(P)
        ),
        BuiltInRole(
            "supervisor",
            "Supervisor",
            "Every chat of their departments; no settings.",
            Scope.DEPARTMENTS,
            _SUPERVISOR,
        ),
        BuiltInRole(
            "operator", "Operator", "Their own and the queued chats of their departments.", Scope.OWN, _OPERATOR
        ),
        BuiltInRole(
            "privacy_officer",
            "Privacy officer",
            "Subject requests, consent, retention and breaches; no chatting.",
            Scope.WORKSPACE,
            _PRIVACY_OFFICER,
        ),
        BuiltInRole(
            "auditor",
            "Auditor",
            "Read-only: the audit report, account review and settings.",
            Scope.WORKSPACE,
            _AUDITOR,
        ),
    )
}

# The roles stored on operators before roles existed.
LEGACY_ROLE_KEYS = {"admin": "administrator", "operator": "operator"}


def built_in(key: str) -> BuiltInRole:
    return BUILT_IN_ROLES[LEGACY_ROLE_KEYS.get(key, key)]


def is_built_in(key: str) -> bool:
    return LEGACY_ROLE_KEYS.get(key, key) in BUILT_IN_ROLES


def parse_permissions(values: object) -> frozenset[Permission]:
    """Stored or submitted permission names -> permissions; unknown names are dropped (a permission
    removed from the catalogue grants nothing any more)."""
    if not isinstance(values, list | tuple | set | frozenset):
        return frozenset()
    known = {p.value for p in Permission}
    return frozenset(Permission(v) for v in values if isinstance(v, str) and v in known)


def allows(actor: OperatorActor, permission: Permission | str) -> bool:
    """``permission`` may be a permission's name (templates: ``can(me, "settings.read")``)."""
    return str(permission) in actor.permissions


def holds(actor: OperatorActor, role_key: str) -> bool:
    """Is this the role the actor holds (e.g. a role editor changing their own role)?"""
    return LEGACY_ROLE_KEYS.get(actor.role, actor.role) == LEGACY_ROLE_KEYS.get(role_key, role_key)


def grants(role: BuiltInRole, permission: Permission) -> bool:
    """Does this role (built-in or custom) grant ``permission``?"""
    return permission in role.permissions


def allows_any(actor: OperatorActor, *permissions: Permission) -> bool:
    return any(allows(actor, p) for p in permissions)


_SCOPE_REACH = {Scope.OWN: 0, Scope.DEPARTMENTS: 1, Scope.WORKSPACE: 2}


def scope_of(actor: OperatorActor) -> Scope:
    try:
        return Scope(actor.scope)
    except ValueError:
        return Scope.OWN  # an unknown stored scope reaches the least


def may_grant(actor: OperatorActor, permissions: frozenset[Permission], scope: Scope) -> bool:
    """Nobody hands out more than they hold: a role (or an operator's role) may carry only
    permissions the actor holds, with a scope no wider than the actor's."""
    return {p.value for p in permissions} <= actor.permissions and _SCOPE_REACH[scope] <= _SCOPE_REACH[scope_of(actor)]


def may_take_chats(permissions: frozenset[str], scope: str, *, member: bool) -> bool:
    """May an operator with this role be handed a chat of a department (a transfer to them)?"""
    return Permission.CHATS_PARTICIPATE.value in permissions and (member or scope == Scope.WORKSPACE.value)


def require(actor: OperatorActor, permission: Permission) -> None:
    """Raise ``Forbidden`` unless the actor holds ``permission`` (pages and actions that are not
    the load of one object; a denied load of an object looks like "not found" instead)."""
    if not allows(actor, permission):
        raise Forbidden("you do not have permission to do this")
