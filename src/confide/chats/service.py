"""Conversations and messages: the write path (batched), history, read state, closing, rating,
and Stored Chats search over keyed blind indexes."""

from __future__ import annotations

import sqlite3
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from confide.auth.actors import OperatorActor, VisitorActor
from confide.chats.models import Conversation as Conversation  # re-exported: routing holds conversations
from confide.chats.models import ConversationTerm, Message
from confide.chats.schemas import Draft, StoredChatFilters
from confide.core import clock, crypto
from confide.core.crypto import DataKey
from confide.core.db import AfterCommitHooks, RawTransaction, UnitOfWork
from confide.core.errors import Conflict, DomainError, Invalid, NotFound
from confide.core.runtime import Runtime
from confide.permissions.access import access_conversation_by_id, conversation_scope
from confide.permissions.policy import Permission
from confide.users import service as users
from confide.visitors import service as visitors
from confide.visitors.service import Visitor
from confide.workspaces import service as workspaces
from confide.workspaces.service import Department, Site

_CONV = cast(Table, Conversation.__table__)
_MSG = cast(Table, Message.__table__)
_TERMS = cast(Table, ConversationTerm.__table__)


class IndexedTerms:
    """Which (conversation, term) pairs this node has indexed already, most recent conversations
    first: a chat repeats its words, and a known pair needs no write at all. Bounded; filled only
    after commit, so a rolled-back batch never hides a term. Another node's rows are harmless:
    inserts ignore duplicates."""

    def __init__(self, max_conversations: int = 20_000) -> None:
        self._seen: OrderedDict[str, set[str]] = OrderedDict()
        self._max = max_conversations

    def unknown(self, conversation_id: str, terms: Iterable[str]) -> list[str]:
        seen = self._seen.get(conversation_id)
        return [t for t in terms if t not in seen] if seen else list(terms)

    def remember(self, pairs: Iterable[tuple[str, str]]) -> None:
        for conversation_id, term in pairs:
            seen = self._seen.get(conversation_id)
            if seen is None:
                seen = self._seen[conversation_id] = set()
                if len(self._seen) > self._max:
                    self._seen.popitem(last=False)
            else:
                self._seen.move_to_end(conversation_id)
            seen.add(term)


def conv_topic(conversation_id: str) -> str:
    return f"conv:{conversation_id}"


def _aad(kind: str, row_id: str) -> str:
    return f"{kind}:{row_id}"


async def start_conversation(
    rt: Runtime, uow: UnitOfWork, *, site: Site, visitor: Visitor, department: Department, page_url: str | None
) -> Conversation:
    key = await rt.keyring.get(uow.session, visitor.id)
    conv_id = crypto.new_id()
    conv = Conversation(
        id=conv_id,
        workspace_id=site.workspace_id,
        site_id=site.id,
        department_id=department.id,
        visitor_id=visitor.id,
        operator_id=None,
        status="queued",
        seq=0,
        visitor_read_seq=0,
        operator_read_seq=0,
        page_url_enc=key.encrypt(page_url, _aad("conversations.page_url", conv_id)) if page_url else None,
        offered_history=[],
        created_at=clock.now(),
        queued_at=clock.now(),
    )
    uow.session.add(conv)
    await uow.session.flush()
    return conv


# ---------------------------------------------------------------- views
def message_view(
    *, message_id: str, seq: int, client_id: str, sender: str, sender_name: str | None, text: str, created_at: datetime
) -> dict[str, Any]:
    return {
        "id": message_id,
        "seq": seq,
        "client_id": client_id,
        "sender": sender,
        "sender_name": sender_name,
        "text": text,
        "created_at": clock.iso(created_at),
    }


async def queue_position(uow: UnitOfWork, conv: Conversation) -> int | None:
    if conv.status != "queued":
        return None
    ahead = await uow.session.scalar(
        select(func.count())
        .select_from(Conversation)
        .where(
            Conversation.department_id == conv.department_id,
            Conversation.status == "queued",
            Conversation.created_at < conv.created_at,
        )
    )
    return int(ahead or 0) + 1


async def visitor_view(uow: UnitOfWork, conv: Conversation) -> dict[str, Any]:
    operator = None
    if conv.operator_id and conv.status != "queued":
        operator = {"name": await users.operator_name(uow, conv.operator_id)}
    return {
        "id": conv.id,
        "status": conv.status,
        "queue_position": await queue_position(uow, conv),
        "operator": operator,
        "seq": conv.seq,
        "operator_read_seq": conv.operator_read_seq,
        "rating": conv.rating,
        "created_at": clock.iso(conv.created_at),
        "closed_at": clock.iso(conv.closed_at),
        "unanswered": unanswered_view(conv),
    }


def unanswered_view(conv: Conversation) -> dict[str, Any] | None:
    """Why nobody can answer this waiting chat now (the widget then offers to leave a message)."""
    if conv.status != "queued" or conv.unanswered_reason is None:
        return None
    return {"reason": conv.unanswered_reason, "since": clock.iso(conv.unanswered_since)}


async def publish_status(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> None:
    """The visitor's view only (queue position, unanswered), on the conversation topic."""
    rt.publish(
        uow,
        conv_topic(conv.id),
        {"type": "status", "conversation_id": conv.id, "conversation": await visitor_view(uow, conv)},
    )


async def operator_view(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> dict[str, Any]:
    session = uow.session
    visitor = await visitors.get_visitor(uow, conv.visitor_id)
    site = await workspaces.get_site(uow, conv.site_id)
    dept = await workspaces.get_department(uow, conv.department_id)
    key = await rt.keyring.get(session, conv.visitor_id)
    profile = await visitors.profile(rt, uow, visitor) if visitor else {}
    profile["page_url"] = (
        key.decrypt(conv.page_url_enc, _aad("conversations.page_url", conv.id)) if conv.page_url_enc else None
    )
    profile["field_labels"] = {f["key"]: f["label"] for f in site.prechat_fields} if site else {}
    # Unread: what the visitor wrote that the operator has not seen (not system lines, not own replies).
    unread = await session.scalar(
        select(func.count())
        .select_from(Message)
        .where(Message.conversation_id == conv.id, Message.sender == "visitor", Message.seq > conv.operator_read_seq)
    )
    return {
        "id": conv.id,
        "status": conv.status,
        "site": {"id": conv.site_id, "name": site.name if site else None},
        "department": {"id": conv.department_id, "name": dept.name if dept else None},
        "operator_id": conv.operator_id,
        "visitor": profile,
        "seq": conv.seq,
        "visitor_read_seq": conv.visitor_read_seq,
        "operator_read_seq": conv.operator_read_seq,
        "unread": int(unread or 0),
        "rating": conv.rating,
        "rating_comment": (
            key.decrypt(conv.rating_comment_enc, _aad("conversations.rating_comment", conv.id))
            if conv.rating_comment_enc
            else None
        ),
        "created_at": clock.iso(conv.created_at),
        "accepted_at": clock.iso(conv.accepted_at),
        "closed_at": clock.iso(conv.closed_at),
        "waiting_since": clock.iso(conv.created_at),
        "offered_to": conv.offered_to,
        "offer_expires_at": clock.iso(conv.offer_expires_at),
    }


async def publish_change(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> None:
    """After a status change: the visitor's view and the operators' view, on the conversation topic."""
    rt.publish(
        uow,
        conv_topic(conv.id),
        {"type": "status", "conversation_id": conv.id, "conversation": await visitor_view(uow, conv)},
    )
    rt.publish(
        uow,
        conv_topic(conv.id),
        {"type": "chat", "conversation_id": conv.id, "conversation": await operator_view(rt, uow, conv)},
    )


async def messages_after(
    rt: Runtime, uow: UnitOfWork, conv: Conversation, after_seq: int, limit: int = 1000
) -> list[dict[str, Any]]:
    key = await rt.keyring.get(uow.session, conv.visitor_id)
    found = (
        await uow.session.scalars(
            select(Message)
            .where(Message.conversation_id == conv.id, Message.seq > after_seq)
            .order_by(Message.seq)
            .limit(limit)
        )
    ).all()
    names = await users.operator_names(uow, {m.sender_id for m in found if m.sender == "operator"})
    rows = [(m, names.get(m.sender_id) if m.sender == "operator" else None) for m in found]
    return [
        message_view(
            message_id=m.id,
            seq=m.seq,
            client_id=m.client_id,
            sender=m.sender,
            sender_name=name,
            text=key.decrypt(m.body_enc, _aad("messages.body", m.id)),
            created_at=m.created_at,
        )
        for m, name in rows
    ]


# ---------------------------------------------------------------- the write path
async def store_messages(
    rt: Runtime, uow: UnitOfWork, drafts: list[Draft], indexed: IndexedTerms | None = None
) -> list[dict[str, Any] | DomainError]:
    """Store a batch of messages in the caller's transaction; one result per draft, in order.

    Idempotent per (conversation, sender, client_id): a retry gets the stored message back.
    Each draft is authorised against the conversation as it is now (sender, status).
    The committed messages are published after commit.
    """
    # Core statements on the unit's connection: this is the hot path, and the ORM's per-row
    # bookkeeping (identity map, update synchronisation) costs more than the database work.
    conn = await uow.session.connection()
    conv_ids = {d.conversation_id for d in drafts}
    # Row locks (PostgreSQL; SQLite has one writer) make the sequence numbers below safe across nodes.
    convs = {
        row.id: row
        for row in (
            await conn.execute(
                select(
                    _CONV.c.id,
                    _CONV.c.status,
                    _CONV.c.visitor_id,
                    _CONV.c.operator_id,
                    _CONV.c.workspace_id,
                    _CONV.c.seq,
                )
                .where(_CONV.c.id.in_(conv_ids))
                # Locked in id order (PostgreSQL locks rows as the sorted scan returns them), so two
                # nodes' writers storing batches for the same conversations can never deadlock.
                .order_by(_CONV.c.id)
                .with_for_update()
            )
        ).all()
    }
    # Retries: messages already stored under the same client ids, sought in the unique index
    # (conversation, sender, client_id), whatever the length of the conversations. PostgreSQL seeks
    # it for a row-value IN; SQLite (3.40) scans the whole table for one, but seeks it per OR term.
    idents = list({(d.conversation_id, d.sender_id, d.client_id) for d in drafts})
    if conn.dialect.name == "sqlite":
        found = or_(
            *(and_(_MSG.c.conversation_id == c, _MSG.c.sender_id == s, _MSG.c.client_id == k) for c, s, k in idents)
        )
    else:
        found = tuple_(_MSG.c.conversation_id, _MSG.c.sender_id, _MSG.c.client_id).in_(idents)
    stored = {
        (m.conversation_id, m.sender_id, m.client_id): m for m in (await conn.execute(select(_MSG).where(found))).all()
    }
    keys = {vid: await rt.keyring.get(uow.session, vid) for vid in {c.visitor_id for c in convs.values()}}
    batch = _MessageBatch(rt, drafts, convs, stored, keys, indexed)
    if batch.seq_rows:
        await conn.execute(
            update(_CONV)
            .where(_CONV.c.id == bindparam("b_id"))
            .values(seq=bindparam("b_seq"), last_message_at=batch.now),
            [{"b_id": conv_id, "b_seq": seq} for conv_id, seq in batch.seq_rows],
        )
    if batch.message_rows:
        await conn.execute(insert(_MSG), [dict(zip(_MSG_COLUMNS, row, strict=True)) for row in batch.message_rows])
    if batch.term_rows:
        await conn.execute(
            _insert_ignoring_duplicates(conn.dialect.name, _TERMS),
            [{"term": term, "conversation_id": conv_id} for term, conv_id in batch.term_rows],
        )
    for topic, payload in batch.events:
        rt.publish(uow, topic, payload)
    batch.remember_terms_after(uow)
    return batch.results


async def store_messages_sqlite(
    rt: Runtime, tx: RawTransaction, keys_uow: UnitOfWork, drafts: list[Draft], indexed: IndexedTerms | None = None
) -> list[dict[str, Any] | DomainError]:
    """``store_messages`` on the raw SQLite writer connection (``Database.raw_transaction``), for the
    message writer's batches: the same checks, rows and results, with plain ``sqlite3`` statements
    instead of SQLAlchemy's: the reads now, the writes queued to run with the commit (two calls into
    the writer thread in all), a few multi-row statements rather than one per row. ``keys_uow`` (a
    read-only unit) loads data keys the key ring has not cached. Events are published after commit
    by ``tx.release_events()``."""
    conv_ids = list({d.conversation_id for d in drafts})
    idents = list({(d.conversation_id, d.sender_id, d.client_id) for d in drafts})
    convs, stored = await tx.run(lambda conn: _sqlite_read(conn, conv_ids, idents))
    keys = {vid: await rt.keyring.get(keys_uow.session, vid) for vid in {c.visitor_id for c in convs.values()}}
    batch = _MessageBatch(rt, drafts, convs, stored, keys, indexed)
    now = _SQLITE_TIME(batch.now)
    seq_rows = [(seq, now, conv_id) for conv_id, seq in batch.seq_rows]
    message_rows = [(*row[:-1], now) for row in batch.message_rows]
    term_rows = batch.term_rows
    tx.at_commit(lambda conn: _sqlite_write(conn, seq_rows, message_rows, term_rows))
    events = batch.events
    if events:
        broker = rt.broker

        async def publish() -> None:
            for topic, payload in events:
                await broker.publish(topic, payload)

        tx.after_commit(publish)
    batch.remember_terms_after(tx)
    return batch.results


class _ConvRow(NamedTuple):
    id: str
    status: str
    visitor_id: str
    operator_id: str | None
    workspace_id: str
    seq: int


class _StoredRow(NamedTuple):
    id: str
    conversation_id: str
    seq: int
    sender: str
    sender_id: str
    client_id: str
    body_enc: bytes
    created_at: datetime


_MSG_COLUMNS = ("id", "conversation_id", "seq", "sender", "sender_id", "client_id", "body_enc", "created_at")
_SQLITE = sqlite.dialect()
# SQLAlchemy's own conversions of a UTC time to and from SQLite's column text, so both paths agree
_SQLITE_TIME = cast(Callable[[datetime], str], _MSG.c.created_at.type.dialect_impl(_SQLITE).bind_processor(_SQLITE))
_SQLITE_READ_TIME = cast(
    Callable[[str], datetime], _MSG.c.created_at.type.dialect_impl(_SQLITE).result_processor(_SQLITE, None)
)
_SQLITE_CHUNK = 300  # row values per IN list (3 parameters each)
_SQLITE_SELECT_CONVS = "SELECT id, status, visitor_id, operator_id, workspace_id, seq FROM conversations WHERE id IN "
# a join with the list of client ids seeks the unique index per id (a row-value IN would scan the table)
_SQLITE_SELECT_STORED = (
    "SELECT m.id, m.conversation_id, m.seq, m.sender, m.sender_id, m.client_id, m.body_enc, m.created_at"
    " FROM messages AS m JOIN (VALUES "
)
_SQLITE_SELECT_STORED_ON = (
    ") AS v ON m.conversation_id = v.column1 AND m.sender_id = v.column2 AND m.client_id = v.column3"
)
_SQLITE_UPDATE_SEQ = "UPDATE conversations SET seq = ?, last_message_at = ? WHERE id = ?"
_SQLITE_INSERT_MESSAGES = (
    "INSERT INTO messages (id, conversation_id, seq, sender, sender_id, client_id, body_enc, created_at) VALUES "
)
_SQLITE_INSERT_TERMS = "INSERT INTO conversation_terms (term, conversation_id) VALUES "
_SQLITE_ROWS = 250  # rows per multi-row INSERT: one statement step per chunk, not one per row


def _sqlite_read(
    conn: sqlite3.Connection, conv_ids: list[str], idents: list[tuple[str, str, str]]
) -> tuple[dict[str, _ConvRow], dict[tuple[str, str, str], _StoredRow]]:
    convs: dict[str, _ConvRow] = {}
    for i in range(0, len(conv_ids), _SQLITE_CHUNK):
        ids = conv_ids[i : i + _SQLITE_CHUNK]
        placeholders = "(" + ", ".join("?" * len(ids)) + ")"  # only placeholders are spliced in
        for row in conn.execute(_SQLITE_SELECT_CONVS + placeholders, ids):
            convs[row[0]] = _ConvRow(*row)
    stored: dict[tuple[str, str, str], _StoredRow] = {}
    for i in range(0, len(idents), _SQLITE_CHUNK):
        chunk = idents[i : i + _SQLITE_CHUNK]
        sql = _SQLITE_SELECT_STORED + ", ".join(["(?, ?, ?)"] * len(chunk)) + _SQLITE_SELECT_STORED_ON
        for r in conn.execute(sql, [value for ident in chunk for value in ident]):
            m = _StoredRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], _SQLITE_READ_TIME(r[7]))
            stored[(m.conversation_id, m.sender_id, m.client_id)] = m
    return convs, stored


def _sqlite_write(
    conn: sqlite3.Connection,
    seq_rows: list[tuple[int, str, str]],
    message_rows: list[tuple[Any, ...]],
    term_rows: list[tuple[str, str]],
) -> None:
    # Each statement step releases and takes back the GIL; taking it back waits while the event loop
    # runs (up to the interpreter's switch interval), so few steps matter more than few rows.
    if seq_rows:
        conn.executemany(_SQLITE_UPDATE_SEQ, seq_rows)
    _insert_rows(conn, _SQLITE_INSERT_MESSAGES, "(?, ?, ?, ?, ?, ?, ?, ?)", "", message_rows)  # a conflict fails
    _insert_rows(conn, _SQLITE_INSERT_TERMS, "(?, ?)", " ON CONFLICT DO NOTHING", term_rows)


def _insert_rows(conn: sqlite3.Connection, head: str, row: str, tail: str, rows: Sequence[tuple[Any, ...]]) -> None:
    for i in range(0, len(rows), _SQLITE_ROWS):
        chunk = rows[i : i + _SQLITE_ROWS]
        sql = head + ", ".join([row] * len(chunk)) + tail  # only placeholders are spliced in
        conn.execute(sql, [value for r in chunk for value in r])


class _MessageBatch:
    """What storing a batch means, whatever the connection: each draft authorised against its
    conversation as read, retries answered from the stored rows, the new rows (sequence numbers,
    encrypted bodies, blind-index terms not indexed yet), the results and the events."""

    __slots__ = ("events", "indexed", "message_rows", "now", "results", "seq_rows", "term_rows")

    def __init__(
        self,
        rt: Runtime,
        drafts: list[Draft],
        convs: dict[str, Any],
        stored: dict[tuple[str, str, str], Any],
        keys: dict[str, DataKey],
        indexed: IndexedTerms | None,
    ) -> None:
        self.indexed = indexed
        results: list[dict[str, Any] | DomainError | None] = [None] * len(drafts)
        accepted: dict[str, list[int]] = defaultdict(list)  # conversation -> indexes of drafts to insert
        first_of: dict[tuple[str, str, str], int] = {}
        for i, d in enumerate(drafts):
            conv = convs.get(d.conversation_id)
            ident = (d.conversation_id, d.sender_id, d.client_id)
            if conv is None:
                results[i] = NotFound("conversation not found")
                continue
            if ident in stored:
                m = stored[ident]
                results[i] = message_view(
                    message_id=m.id,
                    seq=m.seq,
                    client_id=m.client_id,
                    sender=m.sender,
                    sender_name=d.sender_name,
                    text=keys[conv.visitor_id].decrypt(m.body_enc, _aad("messages.body", m.id)),
                    created_at=m.created_at,
                )
                continue
            if ident in first_of:  # the same client id twice in one batch: one message
                continue
            if (d.sender == "visitor" and conv.visitor_id != d.sender_id) or (
                d.sender == "operator" and conv.operator_id != d.sender_id
            ):
                results[i] = NotFound("conversation not found")
            elif conv.status == "closed":
                results[i] = Conflict("this conversation is closed")
            elif d.sender == "operator" and conv.status != "active":
                results[i] = Conflict("accept the conversation first")
            else:
                first_of[ident] = i
                accepted[d.conversation_id].append(i)

        self.now = now = clock.now()
        created_at = clock.iso(now)
        self.message_rows: list[tuple[Any, ...]] = []  # in _MSG_COLUMNS order
        self.seq_rows: list[tuple[str, int]] = []  # (conversation, new seq)
        self.events: list[tuple[str, dict[str, Any]]] = []
        batch_terms: dict[str, set[str]] = defaultdict(set)
        text_terms = rt.bidx.text_terms
        ids = iter(crypto.new_ordered_ids(sum(len(indexes) for indexes in accepted.values())))
        for conv_id, indexes in accepted.items():
            conv = convs[conv_id]
            self.seq_rows.append((conv_id, conv.seq + len(indexes)))
            key = keys[conv.visitor_id]
            topic = conv_topic(conv_id)
            for offset, i in enumerate(indexes):
                d = drafts[i]
                msg_id = next(ids)
                seq = conv.seq + 1 + offset
                body = key.encrypt(d.text, _aad("messages.body", msg_id))
                self.message_rows.append((msg_id, conv_id, seq, d.sender, d.sender_id, d.client_id, body, now))
                if d.sender != "system":
                    batch_terms[conv_id].update(text_terms(conv.workspace_id, "msg", d.text))
                view = {
                    "id": msg_id,
                    "seq": seq,
                    "client_id": d.client_id,
                    "sender": d.sender,
                    "sender_name": d.sender_name,
                    "text": d.text,
                    "created_at": created_at,
                }  # = message_view(...), without a call and an ISO formatting per message
                results[i] = view
                self.events.append((topic, {"type": "message", "conversation_id": conv_id, "message": view}))
        # in key order: the index pages are then visited once each
        self.term_rows: list[tuple[str, str]] = sorted(
            (term, conv_id)
            for conv_id, terms in batch_terms.items()
            for term in (indexed.unknown(conv_id, terms) if indexed else terms)
        )
        # Duplicates inside the batch share their first's result.
        for i, d in enumerate(drafts):
            if results[i] is None:
                results[i] = results[first_of[(d.conversation_id, d.sender_id, d.client_id)]]
        self.results: list[dict[str, Any] | DomainError] = [r for r in results if r is not None]

    def remember_terms_after(self, unit: AfterCommitHooks) -> None:
        """Once committed, the new terms need no write again (``IndexedTerms``)."""
        indexed, rows = self.indexed, self.term_rows
        if indexed is not None and rows:
            unit.after_commit(lambda: indexed.remember((conv_id, term) for term, conv_id in rows))


def _insert_ignoring_duplicates(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


async def add_system_message(rt: Runtime, uow: UnitOfWork, conv: Conversation, text: str) -> None:
    """A line in the transcript from Confide itself (joined, transferred, closed)."""
    await uow.session.flush()
    draft = Draft(
        conversation_id=conv.id,
        sender="system",
        sender_id="system",
        sender_name=None,
        client_id=crypto.new_id(),
        text=text,
    )
    await store_messages(rt, uow, [draft])
    await uow.session.refresh(conv)


# ---------------------------------------------------------------- read, close, rate
async def mark_read(
    rt: Runtime, uow: UnitOfWork, actor: VisitorActor | OperatorActor, conversation_id: str, seq: object
) -> None:
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise Invalid("seq must be a non-negative integer")
    if isinstance(actor, VisitorActor):
        conv = await access_conversation_by_id(uow.session, actor, conversation_id, for_update=True)
        seq = min(seq, conv.seq)
        if seq <= conv.visitor_read_seq:
            return
        conv.visitor_read_seq = seq
        who = "visitor"
    else:
        conv = await access_conversation_by_id(uow.session, actor, conversation_id, assigned=True, for_update=True)
        seq = min(seq, conv.seq)
        if seq <= conv.operator_read_seq:
            return
        conv.operator_read_seq = seq
        who = "operator"
    rt.publish(uow, conv_topic(conv.id), {"type": "read", "conversation_id": conv.id, "from": who, "seq": seq})


_CLOSE_LINES = {
    "visitor": "The visitor ended the chat.",
    "operator": "The chat was closed.",
    "abandoned": "The visitor left.",
}


async def close(rt: Runtime, uow: UnitOfWork, conv: Conversation, *, by: str, line: str | None = None) -> None:
    """Close the chat with a system line. The caller holds the row lock (loaded ``for_update``)."""
    if conv.status == "closed":
        return
    was = conv.status
    await add_system_message(rt, uow, conv, line or _CLOSE_LINES.get(by, "The chat was closed."))
    conv.status = "closed"
    conv.closed_at = clock.now()
    conv.closed_by = by
    conv.offered_to = None
    conv.offer_expires_at = None
    conv.unanswered_reason = None
    conv.unanswered_since = None
    await publish_change(rt, uow, conv)
    if was == "queued":
        rt.publish(uow, f"dept:{conv.department_id}", {"type": "queue_changed"})


async def rate(
    rt: Runtime, uow: UnitOfWork, actor: VisitorActor, conversation_id: str, score: object, comment: object
) -> None:
    conv = await access_conversation_by_id(uow.session, actor, conversation_id, for_update=True)
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise Invalid("score must be a whole number from 1 to 5")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 1000):
        raise Invalid("comment must be text of at most 1000 characters")
    conv.rating = score
    if comment:
        key = await rt.keyring.get(uow.session, conv.visitor_id)
        conv.rating_comment_enc = key.encrypt(comment, _aad("conversations.rating_comment", conv.id))
    await publish_change(rt, uow, conv)


# ---------------------------------------------------------------- routing's questions and moves
# Routing decides who gets a chat; the conversation rows are this domain's, so routing asks here.
def _locked(stmt: Any, *, skip_locked: bool = False) -> Any:
    """``FOR UPDATE`` (PostgreSQL; SQLite serialises writers), rows read fresh into the session."""
    return stmt.with_for_update(skip_locked=skip_locked).execution_options(populate_existing=True)


async def lock_conversation(uow: UnitOfWork, conversation_id: str) -> Conversation | None:
    """For system sweeps (no actor): the row locked until the unit ends, or ``None`` when another
    unit holds it right now (``SKIP LOCKED``: it is being acted on; the next sweep looks again)."""
    found: Conversation | None = await uow.session.scalar(
        _locked(select(Conversation).where(Conversation.id == conversation_id), skip_locked=True)
    )
    return found


async def active_count(uow: UnitOfWork, operator_id: str) -> int:
    return int(
        await uow.session.scalar(
            select(func.count())
            .select_from(Conversation)
            .where(Conversation.operator_id == operator_id, Conversation.status == "active")
        )
        or 0
    )


async def slots_taken(uow: UnitOfWork, operator_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Per operator: (active chats, chats offered and waiting for their answer)."""
    out = {i: (0, 0) for i in operator_ids}
    if not operator_ids:
        return out
    active = await uow.session.execute(
        select(Conversation.operator_id, func.count())
        .where(Conversation.operator_id.in_(operator_ids), Conversation.status == "active")
        .group_by(Conversation.operator_id)
    )
    for op_id, n in active.all():
        if op_id is not None:
            out[op_id] = (int(n), out[op_id][1])
    pending = await uow.session.execute(
        select(Conversation.offered_to, func.count())
        .where(Conversation.offered_to.in_(operator_ids), Conversation.status == "queued")
        .group_by(Conversation.offered_to)
    )
    for op_id, n in pending.all():
        if op_id is not None:
            out[op_id] = (out[op_id][0], int(n))
    return out


async def waiting_unoffered(uow: UnitOfWork, department_id: str, limit: int = 50) -> list[Conversation]:
    """Queued chats of the department offered to nobody, oldest first; rows another unit holds
    (being accepted or closed right now) are skipped rather than waited for."""
    stmt = (
        select(Conversation)
        .where(
            Conversation.department_id == department_id,
            Conversation.status == "queued",
            Conversation.offered_to.is_(None),
        )
        .order_by(Conversation.created_at)
        .limit(limit)
    )
    return list((await uow.session.scalars(_locked(stmt, skip_locked=True))).all())


async def departments_waiting(uow: UnitOfWork, limit: int = 200) -> list[str]:
    """Departments with a queued chat that nobody is being offered."""
    stmt = (
        select(Conversation.department_id)
        .where(Conversation.status == "queued", Conversation.offered_to.is_(None))
        .group_by(Conversation.department_id)
        .limit(limit)
    )
    return list((await uow.session.scalars(stmt)).all())


async def expired_offers(uow: UnitOfWork, limit: int = 200) -> list[Conversation]:
    stmt = (
        select(Conversation)
        .where(
            Conversation.status == "queued",
            Conversation.offered_to.is_not(None),
            Conversation.offer_expires_at <= clock.now(),
        )
        .order_by(Conversation.offer_expires_at)
        .limit(limit)
    )
    return list((await uow.session.scalars(_locked(stmt, skip_locked=True))).all())


async def queued_conversations(
    uow: UnitOfWork, *, limit: int = 500, lock: bool = False, department_ids: list[str] | None = None
) -> list[Conversation]:
    stmt = select(Conversation).where(Conversation.status == "queued").order_by(Conversation.created_at).limit(limit)
    if department_ids is not None:
        stmt = stmt.where(Conversation.department_id.in_(department_ids))
    return list((await uow.session.scalars(_locked(stmt, skip_locked=True) if lock else stmt)).all())


async def queued_in_department(uow: UnitOfWork, department_id: str, limit: int = 200) -> list[Conversation]:
    stmt = (
        select(Conversation)
        .where(Conversation.department_id == department_id, Conversation.status == "queued")
        .order_by(Conversation.created_at)
        .limit(limit)
    )
    return list((await uow.session.scalars(stmt)).all())


async def open_created_before(uow: UnitOfWork, before: datetime, limit: int = 500) -> list[str]:
    """Ids of queued or active chats older than ``before`` (candidates for "the visitor left")."""
    stmt = (
        select(Conversation.id)
        .where(Conversation.status.in_(("queued", "active")), Conversation.created_at < before)
        .order_by(Conversation.created_at)
        .limit(limit)
    )
    return list((await uow.session.scalars(stmt)).all())


async def queue_of(uow: UnitOfWork, actor: OperatorActor) -> list[Conversation]:
    stmt = conversation_scope(actor, select(Conversation), Permission.CHATS_PARTICIPATE).where(
        Conversation.status == "queued"
    )
    return list((await uow.session.scalars(stmt.order_by(Conversation.created_at).limit(200))).all())


async def active_of(uow: UnitOfWork, operator_id: str) -> list[Conversation]:
    stmt = (
        select(Conversation)
        .where(Conversation.operator_id == operator_id, Conversation.status == "active")
        .order_by(Conversation.accepted_at)
    )
    return list((await uow.session.scalars(stmt)).all())


def offer(conv: Conversation, operator_id: str, expires_at: datetime) -> None:
    conv.offered_to = operator_id
    conv.offer_expires_at = expires_at
    conv.offered_history = [*(conv.offered_history or []), operator_id]


def withdraw_offer(conv: Conversation, *, new_round: bool = False) -> None:
    conv.offered_to = None
    conv.offer_expires_at = None
    if new_round:
        conv.offered_history = []


async def assign(rt: Runtime, uow: UnitOfWork, conv: Conversation, operator_id: str, line: str) -> None:
    """The chat becomes the operator's (accepted, or transferred to them), with a system line."""
    await add_system_message(rt, uow, conv, line)
    conv.status = "active"
    conv.operator_id = operator_id
    conv.accepted_at = conv.accepted_at or clock.now()
    conv.offered_to = None
    conv.offer_expires_at = None
    conv.unanswered_reason = None
    conv.unanswered_since = None
    await uow.session.flush()


async def requeue(rt: Runtime, uow: UnitOfWork, conv: Conversation, department_id: str, line: str) -> None:
    """The chat goes back to a queue (transferred to a department): offered afresh."""
    await add_system_message(rt, uow, conv, line)
    conv.status = "queued"
    conv.operator_id = None
    conv.department_id = department_id
    conv.offered_to = None
    conv.offer_expires_at = None
    conv.offered_history = []
    conv.queued_at = clock.now()
    conv.unanswered_reason = None
    conv.unanswered_since = None
    await uow.session.flush()


def set_unanswered(conv: Conversation, reason: str | None) -> bool:
    """Record why nobody can answer; True when that changed (the visitor is then told)."""
    if conv.unanswered_reason == reason:
        return False
    conv.unanswered_reason = reason
    conv.unanswered_since = clock.now() if reason else None
    return True


async def page_url(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> str | None:
    if not conv.page_url_enc:
        return None
    key = await rt.keyring.get(uow.session, conv.visitor_id)
    return key.decrypt(conv.page_url_enc, _aad("conversations.page_url", conv.id))


async def visitor_text(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> str:
    """What the visitor wrote in this chat, in order, one message a line."""
    return "\n".join(m["text"] for m in await messages_after(rt, uow, conv, 0) if m["sender"] == "visitor")


# ---------------------------------------------------------------- Stored Chats
async def search(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, filters: StoredChatFilters
) -> tuple[list[dict[str, Any]], int]:
    stmt = conversation_scope(actor, select(Conversation))
    ws = actor.workspace_id
    if filters.date_from:
        stmt = stmt.where(Conversation.created_at >= filters.date_from)
    if filters.date_to:
        stmt = stmt.where(Conversation.created_at <= filters.date_to)
    for column, value in (
        (Conversation.site_id, filters.site_id),
        (Conversation.department_id, filters.department_id),
        (Conversation.operator_id, filters.operator_id),
        (Conversation.rating, filters.rating),
        (Conversation.status, filters.status),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.visitor:
        stmt = stmt.where(Conversation.visitor_id.in_(visitors.visitor_ids_matching(rt, ws, filters.visitor)))
    if filters.text:
        terms = list(dict.fromkeys(rt.bidx.text_terms(ws, "msg", filters.text)))
        if not terms:
            raise Invalid("search for words of at least two letters")
        matching = (
            select(ConversationTerm.conversation_id)
            .where(ConversationTerm.term.in_(terms))
            .group_by(ConversationTerm.conversation_id)
            .having(func.count() == len(terms))
        )
        stmt = stmt.where(Conversation.id.in_(matching))
    total = int(await uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = (
        await uow.session.scalars(
            stmt.order_by(Conversation.created_at.desc(), Conversation.id)
            .offset((filters.page - 1) * filters.per_page)
            .limit(filters.per_page)
        )
    ).all()
    return [await summary_view(rt, uow, conv) for conv in rows], total


async def summary_view(rt: Runtime, uow: UnitOfWork, conv: Conversation) -> dict[str, Any]:
    view = await operator_view(rt, uow, conv)
    operator_name = None
    if conv.operator_id:
        operator_name = await users.operator_name(uow, conv.operator_id)
    view["operator_name"] = operator_name
    view["message_count"] = int(
        await uow.session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.conversation_id == conv.id, Message.sender != "system")
        )
        or 0
    )
    return view


async def transcript(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, conversation_id: str) -> dict[str, Any]:
    conv = await access_conversation_by_id(uow.session, actor, conversation_id)
    view = await summary_view(rt, uow, conv)
    view["messages"] = await messages_after(rt, uow, conv, 0, limit=100_000)
    return view
