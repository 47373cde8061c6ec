"""Imports every ORM model so that ``Base.metadata`` knows every table (migrations, registry test)."""

from confide.audit.models import AuditEvent, AuditHead, AuditPrune
from confide.auth.models import LoginThrottle
from confide.chats.models import Conversation, ConversationTerm, Message
from confide.core.jobs import Job
from confide.core.keys import SubjectKey
from confide.identity.models import DirectoryAccount, LdapDirectory, OidcProvider
from confide.login_limits.models import LoginLimit
from confide.offline.models import OfflineRequest
from confide.redaction.models import RedactedOriginal, RedactionPolicy  # redaction (ADR 0021)
from confide.two_factor.models import (  # two-factor (ADR 0014)
    PasskeyCredential,
    RecoveryCode,
    TotpFactor,
    TwoFactorPolicy,
    TwoFactorTicket,
    WebAuthnChallenge,
)
from confide.users.account_models import AccountReview, OperatorInvite, ReviewPolicy
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
    "AccountReview",
    "AuditEvent",
    "AuditHead",
    "AuditPrune",
    "CannedReply",
    "Conversation",
    "ConversationTerm",
    "Department",
    "DirectoryAccount",
    "Job",
    "LdapDirectory",
    "LoginLimit",
    "LoginThrottle",
    "Message",
    "OfflineRequest",
    "OidcProvider",
    "Operator",
    "OperatorDepartment",
    "OperatorInvite",
    "OperatorSession",
    "PasskeyCredential",
    "PasswordHistory",
    "Presence",
    "RecoveryCode",
    "RedactedOriginal",
    "RedactionPolicy",
    "RefusedOrigin",
    "ReviewPolicy",
    "Role",
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
