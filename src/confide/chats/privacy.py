"""Personal-data registry entries of the tables of confide.chats (see core/personal_data.py for the format)."""

from __future__ import annotations

from confide.core.personal_data import (
    NOT_PERSONAL,
    Category,
    Export,
    Out,
    Storage,
    Table,
    out,
    reach,
    sealed,
    visitor_data,
)

_N = NOT_PERSONAL

TABLES: dict[str, Table] = {
    "conversations": Table(
        {
            "id": _N,
            "workspace_id": _N,
            "site_id": _N,
            "department_id": _N,
            "visitor_id": _N,
            "operator_id": _N,
            "status": _N,
            "seq": _N,
            "visitor_read_seq": _N,
            "operator_read_seq": _N,
            "offered_to": _N,
            "offer_expires_at": _N,
            "offered_history": _N,
            "created_at": _N,
            "accepted_at": _N,
            "closed_at": _N,
            "closed_by": _N,
            "last_message_at": _N,
            "queued_at": _N,
            "unanswered_reason": _N,
            "unanswered_since": _N,
            "page_url_enc": visitor_data(Category.BEHAVIOUR),
            "rating": visitor_data(Category.BEHAVIOUR, Storage.PLAIN, note="an integer 1-5, needed for reports"),
            "rating_comment_enc": visitor_data(Category.CONTENT),
        },
        reach=reach("visitor", "visitor_id"),
        export=Export(
            "Conversations",
            20,
            {
                **out("id"),
                "site_id": Out("site"),
                "status": Out("status"),
                "created_at": Out("started_at"),
                "closed_at": Out("closed_at"),
                **sealed("conversations", "page_url"),
                "rating": Out("rating"),
                **sealed("conversations", "rating_comment"),
            },
        ),
    ),
    "messages": Table(
        {
            "id": _N,
            "conversation_id": _N,
            "seq": _N,
            "sender": _N,
            "sender_id": _N,
            "client_id": _N,
            "created_at": _N,
            "body_enc": visitor_data(Category.CONTENT),
        },
        reach=reach("visitor", "conversation_id -> conversations.visitor_id"),
        # Also given, message by message, in the package's transcripts (subjects/export.py).
        export=Export(
            "Messages",
            30,
            {
                **out("id"),
                "conversation_id": Out("conversation"),
                "seq": Out("seq"),
                "sender": Out("sender"),
                "created_at": Out("sent_at"),
                **sealed("messages", "body", name="text"),
            },
        ),
    ),
    "conversation_terms": Table(
        {
            "conversation_id": _N,
            "term": visitor_data(Category.PSEUDONYMOUS, Storage.BLIND_INDEX, exported=False),
        },
        reach=reach("visitor", "conversation_id -> conversations.visitor_id"),
    ),
}
