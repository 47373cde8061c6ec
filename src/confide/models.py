"""Imports every ORM model so that ``Base.metadata`` knows every table (migrations, registry test)."""

from confide.audit.models import AuditEvent, AuditHead, AuditPrune
from confide.auth.models import LoginThrottle
from confide.chats.models import Conversation, ConversationTerm, Message
from confide.core.keys import SubjectKey
from confide.offline.models import OfflineRequest
from confide.users.models import (
    AccountPolicy,
    Operator,
    OperatorDepartment,
    OperatorSession,
    PasswordHistory,
    Presence,
    Role,
)
from confide.visitors.models import Visitor, VisitorTerm
from confide.workspaces.models import CannedReply, Department, RefusedOrigin, Site, Workspace

__all__ = [
    "AccountPolicy",
    "AuditEvent",
    "AuditHead",
    "AuditPrune",
    "CannedReply",
    "Conversation",
    "ConversationTerm",
    "Department",
    "LoginThrottle",
    "Message",
    "OfflineRequest",
    "Operator",
    "OperatorDepartment",
    "OperatorSession",
    "PasswordHistory",
    "Presence",
    "RefusedOrigin",
    "Role",
    "Site",
    "SubjectKey",
    "Visitor",
    "VisitorTerm",
    "Workspace",
]
