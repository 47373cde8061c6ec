"""Imports every ORM model so that ``Base.metadata`` knows every table (migrations, registry test)."""

from confide.audit.models import AuditEvent, AuditHead
from confide.chats.models import Conversation, ConversationTerm, Message
from confide.core.keys import SubjectKey
from confide.login_limits.models import LoginLimit
from confide.offline.models import OfflineRequest
from confide.users.models import Operator, OperatorDepartment, OperatorSession, Presence
from confide.visitors.models import Visitor, VisitorTerm
from confide.workspaces.models import CannedReply, Department, RefusedOrigin, Site, Workspace

__all__ = [
    "AuditEvent",
    "AuditHead",
    "CannedReply",
    "Conversation",
    "ConversationTerm",
    "Department",
    "LoginLimit",
    "Message",
    "OfflineRequest",
    "Operator",
    "OperatorDepartment",
    "OperatorSession",
    "Presence",
    "RefusedOrigin",
    "Site",
    "SubjectKey",
    "Visitor",
    "VisitorTerm",
    "Workspace",
]
