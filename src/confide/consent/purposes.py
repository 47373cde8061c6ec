"""The purposes every workspace starts with, their keys (what other domains pass to
``consent.questions.may``) and their first notices. Data only: no database, no imports of services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

SUPPORT = "support"
MARKETING_EMAIL = "marketing_email"
NEWSLETTER = "newsletter"
PROFILING = "profiling"
ACTIVITY_TRACKING = "activity_tracking"

LawfulBasis = Literal["consent", "legitimate_interest", "contract"]
CONSENT: Final = "consent"
LEGITIMATE_INTEREST: Final = "legitimate_interest"
CONTRACT: Final = "contract"
LAWFUL_BASES: tuple[LawfulBasis, ...] = (CONSENT, LEGITIMATE_INTEREST, CONTRACT)
BASIS_LABELS = {
    CONSENT: "Consent (Art. 6(1)(a))",
    LEGITIMATE_INTEREST: "Legitimate interest (Art. 6(1)(f))",
    CONTRACT: "Steps at the visitor's request / contract (Art. 6(1)(b))",
}

# Where a choice was made (consent_records.source).
WIDGET, EMAIL_LINK, OPERATOR, API, IMPORT = "widget", "email_link", "operator", "api", "import"
SOURCES = (WIDGET, EMAIL_LINK, OPERATOR, API, IMPORT)
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class DefaultPurpose:
    key: str
    name: str
    lawful_basis: LawfulBasis
    description: str
    retention_class: str
    recipients: str
    notice: str
    required: bool = False  # processing the visitor cannot refuse (the chat itself)


DEFAULTS: tuple[DefaultPurpose, ...] = (
    DefaultPurpose(
        SUPPORT,
        "Support chat",
        CONTRACT,
        "Answering the visitor's questions in the chat and by e-mail when they leave a message.",
        "chat",
        "The business's support staff",
        "We use the details you give and what you write to answer your request.",
        required=True,
    ),
    DefaultPurpose(
        MARKETING_EMAIL,
        "Marketing e-mail",
        CONSENT,
        "Offers and news sent by e-mail to visitors who asked for them.",
        "consent",
        "The business's marketing staff and its mail provider",
        "Send me offers and news by e-mail. I can withdraw at any time with one click.",
    ),
    DefaultPurpose(
        NEWSLETTER,
        "Newsletter",
        CONSENT,
        "The business's newsletter.",
        "consent",
        "The business's marketing staff and its mail provider",
        "Send me the newsletter. I can unsubscribe at any time.",
    ),
    DefaultPurpose(
        PROFILING,
        "Prospect profiling",
        CONSENT,
        "Keeping the visitor's contact details as a sales prospect.",
        "prospect",
        "The business's sales staff",
        "You may keep my contact details to follow up on my interest in your products.",
    ),
    DefaultPurpose(
        ACTIVITY_TRACKING,
        "Visitor activity",
        CONSENT,
        "Recording the pages the visitor views while a chat is possible, shown to the operators.",
        "activity",
        "The business's support staff",
        "Show the operators which pages of this site I visit while I can chat.",
    ),
)
