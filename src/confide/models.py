"""Imports every ORM model so that ``Base.metadata`` knows every table (migrations, registry test)."""

from confide.audit.models import AuditEvent, AuditHead
from confide.chats.models import Conversation, ConversationTerm, Message
from confide.core.jobs import Job
from confide.core.keys import SubjectKey
from confide.offline.models import OfflineRequest
from confide.users.account_models import AccountReview, OperatorInvite, ReviewPolicy
from confide.users.models import Operator, OperatorDepartment, OperatorSession, Presence
from confide.visitors.models import Visitor, VisitorTerm
from confide.workspaces.models import CannedReply, Department, RefusedOrigin, Site, Workspace

__all__ = [
    "AccountReview",
    "AuditEvent",
    "AuditHead",
    "CannedReply",
    "Conversation",
    "ConversationTerm",
    "Department",
    "Job",
    "Message",
    "OfflineRequest",
    "Operator",
    "OperatorDepartment",
    "OperatorInvite",
    "OperatorSession",
    "Presence",
    "RefusedOrigin",
    "ReviewPolicy",
    "Site",
    "SubjectKey",
    "Visitor",
    "VisitorTerm",
    "Workspace",
]
