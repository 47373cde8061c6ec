"""Imports every ORM model so that ``Base.metadata`` knows every table (migrations, registry test)."""

from confide.audit.models import AuditEvent, AuditHead, AuditPrune
from confide.auth.models import LoginThrottle
from confide.chats.models import Conversation, ConversationTerm, Message
from confide.consent import rules as _consent_rules  # noqa: F401 - the ledger's append-only triggers
from confide.consent.models import ConsentErasure, ConsentRecord, Notice, Purpose  # consent (ADR 0018)
from confide.core.jobs import Job
from confide.core.keys import SubjectKey
from confide.erasure.models import Certificate, ChatStat, Tombstone  # erasure (ADR 0028)
from confide.identity.models import DirectoryAccount, LdapDirectory, OidcProvider
from confide.login_limits.models import LoginLimit
from confide.offline.models import OfflineRequest
from confide.privacy_requests.models import PrivacyRequest, PrivacyRequestEvent, PrivacyRequestVisitor  # ADR 0029
from confide.prospects.models import ProfilingObjection, Prospect, ProspectSettings, ProspectTerm  # prospects
from confide.redaction.models import RedactedOriginal, RedactionPolicy  # redaction (ADR 0021)
from confide.restriction.models import Restriction  # restriction of processing (ADR 0031)
from confide.retention.models import LegalHold, RetentionPolicy  # retention (ADR 0030)
from confide.subjects.models import ExportLink  # subject exports (ADR 0026)
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
from confide.verified.models import IdentitySecret, VerifiedIdentity  # verified identity (ADR 0022)
from confide.visitor_activity.models import ActivitySettings, PageTerm, PageView  # visitor activity (ADR 0019)
from confide.visitors.models import Visitor, VisitorTerm
from confide.workspaces.models import CannedReply, Department, RefusedOrigin, Site, Workspace

__all__ = [
    "AccountPolicy",
    "AccountReview",
    "ActivitySettings",
    "AuditEvent",
    "AuditHead",
    "AuditPrune",
    "CannedReply",
    "Certificate",
    "ChatStat",
    "ConsentErasure",
    "ConsentRecord",
    "Conversation",
    "ConversationTerm",
    "Department",
    "DirectoryAccount",
    "ExportLink",  # subject exports (ADR 0026)
    "IdentitySecret",  # verified identity (ADR 0022)
    "Job",
    "LdapDirectory",
    "LegalHold",  # retention (ADR 0030)
    "LoginLimit",
    "LoginThrottle",
    "Message",
    "Notice",
    "OfflineRequest",
    "OidcProvider",
    "Operator",
    "OperatorDepartment",
    "OperatorInvite",
    "OperatorSession",
    "PageTerm",
    "PageView",
    "PasskeyCredential",
    "PasswordHistory",
    "Presence",
    "PrivacyRequest",
    "PrivacyRequestEvent",
    "PrivacyRequestVisitor",
    "ProfilingObjection",
    "Prospect",
    "ProspectSettings",
    "ProspectTerm",
    "Purpose",
    "RecoveryCode",
    "RedactedOriginal",
    "RedactionPolicy",
    "RefusedOrigin",
    "Restriction",  # restriction of processing (ADR 0031)
    "RetentionPolicy",
    "ReviewPolicy",
    "Role",
    "Site",
    "SubjectKey",
    "Tombstone",
    "TotpFactor",
    "TwoFactorPolicy",
    "TwoFactorTicket",
    "VerifiedIdentity",  # verified identity (ADR 0022)
    "Visitor",
    "VisitorTerm",
    "WebAuthnChallenge",
    "Workspace",
]
