"""Imports every ORM model so that ``Base.metadata`` knows every table (migrations, registry test)."""

from confide.audit.models import AuditEvent, AuditHead
from confide.chats.models import Conversation, ConversationTerm, Message
from confide.core.keys import SubjectKey
from confide.offline.models import OfflineRequest
from confide.two_factor.models import (  # two-factor (ADR 0014)
    PasskeyCredential,
    RecoveryCode,
    TotpFactor,
    TwoFactorPolicy,
    TwoFactorTicket,
    WebAuthnChallenge,
)
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
    "Message",
    "OfflineRequest",
    "Operator",
    "OperatorDepartment",
    "OperatorSession",
    "PasskeyCredential",
    "Presence",
    "RecoveryCode",
    "RefusedOrigin",
    "Site",
    "SubjectKey",
    "TotpFactor",
    "TwoFactorPolicy",
    "TwoFactorTicket",
    "Visitor",
    "VisitorTerm",
    "WebAuthnChallenge",
    "Workspace",
]
