from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_ws_status", "workspace_id", "status"),
        Index("ix_conversations_ws_created", "workspace_id", "created_at"),
        # A waiting visitor's queue position counts the queued chats of its department created
        # before it (chats.queue_position): an index range scan instead of the department's rows.
        Index("ix_conversations_queue", "department_id", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"), index=True)
    visitor_id: Mapped[str] = mapped_column(ForeignKey("visitors.id", ondelete="CASCADE"), index=True)
    operator_id: Mapped[str | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(10))  # queued | active | closed
    seq: Mapped[int] = mapped_column(Integer, default=0)
    visitor_read_seq: Mapped[int] = mapped_column(Integer, default=0)
    operator_read_seq: Mapped[int] = mapped_column(Integer, default=0)
    page_url_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_comment_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Routing: the operator currently offered this chat, until when, and who was offered it already.
    offered_to: Mapped[str | None] = mapped_column(String(32), index=True)
    offer_expires_at: Mapped[datetime | None]
    offered_history: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(10))  # visitor | operator | abandoned
    # When the chat (re)joined the queue, and why nobody can answer it now (shown to the visitor).
    queued_at: Mapped[datetime | None]
    unanswered_reason: Mapped[str | None] = mapped_column(String(16))  # no_operator | no_answer | closed_hours
    unanswered_since: Mapped[datetime | None]
    last_message_at: Mapped[datetime | None]


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq"),
        UniqueConstraint("conversation_id", "sender_id", "client_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(10))  # visitor | operator | system
    sender_id: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[str] = mapped_column(String(64))
    body_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class ConversationTerm(Base):
    """Keyed blind index of the words said in a conversation: Stored Chats filter by text without
    any plaintext copy. One row per distinct word per conversation (search finds conversations);
    the primary key is the search index itself, and rows go with their conversation (cascade).
    """

    __tablename__ = "conversation_terms"
    # The table is its primary key: no separate rowid tree to maintain on every insert.
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012

    term: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True, index=True
    )
