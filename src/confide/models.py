"""Imports every ORM model so that ``Base.metadata`` knows every table (migrations, registry test)."""

from confide.audit.models import AuditEvent, AuditHead
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
)
from confide.visitors.models import Visitor, VisitorTerm
from confide.workspaces.models import CannedReply, Department, RefusedOrigin, Site, Workspace

__all__ = [
    "AccountPolicy",
    "AuditEvent",
    "AuditHead",
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
    "Site",
    "SubjectKey",
    "Visitor",
    "VisitorTerm",
    "Workspace",
]
