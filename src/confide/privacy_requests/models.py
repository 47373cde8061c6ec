"""Data-subject requests (Art. 12-22): the request, the visitors it was linked to, and its timeline.

The requester's e-mail address and details, and every free-text note of the timeline (reasons,
outcome), are encrypted under a data key of the request's own (``wrapped_key``, wrapped under the
master key with the request id as associated data, like a job's payload in ``core/jobs.py``):
a request often comes from someone who is no visitor (a letter, a phone call), so there is no
subject key to use. The e-mail also has a blind index (``email_bidx``) so that the request is found
from a visitor with the same address, and a visitor from the request.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from confide.core.db import Base


class PrivacyRequest(Base):
    __tablename__ = "privacy_requests"
    __table_args__ = (
        Index("ix_privacy_requests_ws_state_due", "workspace_id", "state", "due_at"),
        Index("ix_privacy_requests_ws_received", "workspace_id", "received_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(String(20))  # schemas.TYPES: access, portability, ...
    channel: Mapped[str] = mapped_column(String(10))  # widget | web | email | phone | letter | other
    state: Mapped[str] = mapped_column(String(12))  # received | verifying | in_progress | done | refused
    email_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_bidx: Mapped[str | None] = mapped_column(String(32), index=True)
    details_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[datetime]
    due_at: Mapped[datetime]
    extended_months: Mapped[int] = mapped_column(Integer, default=0)
    assignee_id: Mapped[str | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    created_by: Mapped[str | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    # Identity verification: a code's keyed digest, its expiry and the attempts left on it.
    verified_at: Mapped[datetime | None]
    verified_by: Mapped[str | None] = mapped_column(String(32))  # an operator's id; None: by the e-mailed code
    code_digest: Mapped[str | None] = mapped_column(String(64))
    code_expires_at: Mapped[datetime | None]
    code_attempts: Mapped[int] = mapped_column(Integer, default=0)
    codes_sent: Mapped[int] = mapped_column(Integer, default=0)
    closed_at: Mapped[datetime | None]
    # The completion's links to the subjects helper's export and the erasure helper's certificate.
    export_id: Mapped[str | None] = mapped_column(String(32))
    certificate_id: Mapped[str | None] = mapped_column(String(32))
    # Reminders: the due date each was sent for (a conditional update sends each once, on any node).
    reminded_soon_for: Mapped[datetime | None]
    reminded_overdue_for: Mapped[datetime | None]


class PrivacyRequestVisitor(Base):
    """A visitor the request is about: the widget's own visitor, or the visitors whose e-mail blind
    index matches the request's once the requester proved they hold the address."""

    __tablename__ = "privacy_request_visitors"

    request_id: Mapped[str] = mapped_column(ForeignKey("privacy_requests.id", ondelete="CASCADE"), primary_key=True)
    visitor_id: Mapped[str] = mapped_column(ForeignKey("visitors.id", ondelete="CASCADE"), primary_key=True,
                                            index=True)


class PrivacyRequestEvent(Base):
    """One step of a request's timeline (the audit log holds the same steps, by id only)."""

    __tablename__ = "privacy_request_events"
    __table_args__ = (UniqueConstraint("request_id", "seq"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("privacy_requests.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # the timeline's order (the request's row is locked while it grows)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(30))
    actor_type: Mapped[str] = mapped_column(String(10))  # operator | requester | system
    actor_id: Mapped[str | None] = mapped_column(String(32))
    note_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # a reason or an outcome, under the request's key
