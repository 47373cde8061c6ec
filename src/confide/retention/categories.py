"""The categories of data a retention period applies to (data only: the service, the sweep, the
settings page and the record of processing all read this one table).

``setting`` names the configured default (``Settings``); ``overridable``: a workspace or site may
set its own period (the audit log is one chain for the whole installation, so its period is the
installation's); ``store``: something is swept (no file store exists yet: "files" is declared so
that its period is configured and shown, and the sweep has nothing to delete); ``classes``: the
registry's retention classes (``Personal.retention``) the period governs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    CHATS = "chats"
    OFFLINE = "offline"
    ACTIVITY = "activity"
    PROSPECTS = "prospects"
    FILES = "files"
    CONSENT = "consent"
    AUDIT = "audit"


@dataclass(frozen=True)
class Info:
    label: str
    counts_from: str
    setting: str
    overridable: bool = True
    store: bool = True
    classes: tuple[str, ...] = ()


INFO: dict[Category, Info] = {
    Category.CHATS: Info("Conversations and messages", "the chat's close", "retention_chats_days", classes=("chat",)),
    Category.OFFLINE: Info("Offline requests", "the request's receipt", "retention_offline_days",
                           classes=("offline_request",)),
    Category.ACTIVITY: Info("Visitor activity (page trail)", "the page view", "retention_activity_days",
                            classes=("visitor_activity",)),
    Category.PROSPECTS: Info("Prospects", "the prospect's last change", "retention_prospects_days",
                             classes=("prospect",)),
    Category.FILES: Info("Files", "the upload", "retention_files_days", store=False, classes=("file",)),
    Category.CONSENT: Info("Consent records (proof of consent)", "the person's last consent change",
                           "retention_consent_days", classes=("consent",)),
    Category.AUDIT: Info("Audit log", "the audited action", "audit_retention_days", overridable=False,
                         classes=("audit",)),
}

# Registry retention classes that no period governs, and what keeps them.
OTHER_CLASSES: dict[str, str] = {
    "account": "while the staff account exists (then anonymised)",
    "objection": "as long as the objection stands",
    "legal_hold": "until the hold is lifted",
    "privacy_request": "kept as proof of how the request was handled (Art. 5(2)); the requester's e-mail, "
                       "details and notes are cleared when the person is erased",
}

MAX_DAYS = 36500  # a hundred years: anything longer is "keep forever" (0)


def category_of_class(retention_class: str) -> Category | None:
    for category, info in INFO.items():
        if retention_class in info.classes:
            return category
    return None


def describe(days: int) -> str:
    if days <= 0:
        return "kept forever"
    if days % 365 == 0:
        years = days // 365
        return f"{years} year{'s' if years != 1 else ''} ({days} days)"
    return f"{days} day{'s' if days != 1 else ''}"
