"""The message write path: a batch of drafts stored in the caller's transaction (authorised against
each conversation as it is now, idempotent per client id, sequence numbers from the locked rows,
bodies encrypted, blind-index terms written once), on a unit of work (PostgreSQL, system lines) or
on the raw SQLite writer connection (the message writer's batches, ADR 9). The committed messages
are published after commit (``MessageStored``). Reading, views and the rest of the conversation's
life are in ``chats.service``."""

from __future__ import annotations

import sqlite3
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, and_, bindparam, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from confide.chats.models import Conversation, ConversationTerm, Message
from confide.chats.schemas import Draft
from confide.core import clock, crypto
from confide.core.crypto import DataKey
from confide.core.db import AfterCommitHooks, RawTransaction, UnitOfWork
from confide.core.errors import Conflict, DomainError, NotFound
from confide.core.runtime import Runtime
from confide.realtime import events
from confide.realtime.events import MessageStored
from confide.redaction import service as redaction
from confide.redaction.detectors import Redaction, Redactor

_CONV = cast(Table, Conversation.__table__)
_MSG = cast(Table, Message.__table__)
_TERMS = cast(Table, ConversationTerm.__table__)


def aad(kind: str, row_id: str) -> str:
    """The associated data binding a ciphertext to its column and row."""
    return f"{kind}:{row_id}"


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
                    _CONV.c.site_id,
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
    # The keys as their rows hold them now, under a shared lock taken after the conversations' (a
    # key rotation takes them in the same order, ADR 0032): never a key a rotation has replaced.
    keys = await rt.keyring.for_write(uow.session, {c.visitor_id for c in convs.values()})
    redactors = await redaction.redactors_for(conn, {c.site_id for c in convs.values()})
    batch = _MessageBatch(rt, drafts, convs, stored, keys, indexed, redactors)
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
    await redaction.insert_originals(conn, batch.original_rows)
    for event in batch.events:
        events.publish(rt, uow, event)
    batch.remember_terms_after(uow)
    return batch.results


async def store_messages_sqlite(
    rt: Runtime, tx: RawTransaction, drafts: list[Draft], indexed: IndexedTerms | None = None
) -> list[dict[str, Any] | DomainError]:
    """``store_messages`` on the raw SQLite writer connection (``Database.raw_transaction``), for the
    message writer's batches: the same checks, rows and results, with plain ``sqlite3`` statements
    instead of SQLAlchemy's: the reads now, the writes queued to run with the commit (two calls into
    the writer thread in all), a few multi-row statements rather than one per row. The subjects'
    wrapped keys are read with the rest, in the same write transaction (``KeyRing.from_rows``: a
    rotation committed before it is seen, ADR 0032), not through a second connection. Events are
    published after commit by ``tx.release_events()``."""
    conv_ids = list({d.conversation_id for d in drafts})
    idents = list({(d.conversation_id, d.sender_id, d.client_id) for d in drafts})
    convs, stored, redactors, key_rows = await tx.run(lambda conn: _sqlite_read(conn, conv_ids, idents))
    keys = rt.keyring.from_rows({c.visitor_id for c in convs.values()}, key_rows)
    batch = _MessageBatch(rt, drafts, convs, stored, keys, indexed, redactors)
    now = _SQLITE_TIME(batch.now)
    seq_rows = [(seq, now, conv_id) for conv_id, seq in batch.seq_rows]
    message_rows = [(*row[:-1], now) for row in batch.message_rows]
    term_rows = batch.term_rows
    original_rows = batch.original_rows
    tx.at_commit(lambda conn: _sqlite_write(conn, seq_rows, message_rows, term_rows, original_rows, now))
    committed = batch.events
    if committed:
        broker = rt.broker

        async def publish() -> None:
            for event in committed:
                await broker.publish(event.topic, event.payload())

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
    site_id: str


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
_SQLITE_SELECT_CONVS = (
    "SELECT id, status, visitor_id, operator_id, workspace_id, seq, site_id FROM conversations WHERE id IN "
)
# a join with the list of client ids seeks the unique index per id (a row-value IN would scan the table)
_SQLITE_SELECT_STORED = (
    "SELECT m.id, m.conversation_id, m.seq, m.sender, m.sender_id, m.client_id, m.body_enc, m.created_at"
    " FROM messages AS m JOIN (VALUES "
)
_SQLITE_SELECT_STORED_ON = (
    ") AS v ON m.conversation_id = v.column1 AND m.sender_id = v.column2 AND m.client_id = v.column3"
)
_SQLITE_SELECT_KEYS = "SELECT subject_id, wrapped_key FROM subject_keys WHERE subject_id IN "
_SQLITE_UPDATE_SEQ = "UPDATE conversations SET seq = ?, last_message_at = ? WHERE id = ?"
_SQLITE_INSERT_MESSAGES = (
    "INSERT INTO messages (id, conversation_id, seq, sender, sender_id, client_id, body_enc, created_at) VALUES "
)
_SQLITE_INSERT_TERMS = "INSERT INTO conversation_terms (term, conversation_id) VALUES "
_SQLITE_ROWS = 250  # rows per multi-row INSERT: one statement step per chunk, not one per row


def _sqlite_read(
    conn: sqlite3.Connection, conv_ids: list[str], idents: list[tuple[str, str, str]]
) -> tuple[
    dict[str, _ConvRow], dict[tuple[str, str, str], _StoredRow], dict[str, Redactor], list[tuple[str, bytes | None]]
]:
    convs: dict[str, _ConvRow] = {}
    for i in range(0, len(conv_ids), _SQLITE_CHUNK):
        ids = conv_ids[i : i + _SQLITE_CHUNK]
        placeholders = "(" + ", ".join("?" * len(ids)) + ")"  # only placeholders are spliced in
        for row in conn.execute(_SQLITE_SELECT_CONVS + placeholders, ids):
            convs[row[0]] = _ConvRow(*row)
    subjects = list({c.visitor_id for c in convs.values()})
    key_rows: list[tuple[str, bytes | None]] = []
    for i in range(0, len(subjects), _SQLITE_CHUNK):
        ids = subjects[i : i + _SQLITE_CHUNK]
        key_rows += conn.execute(_SQLITE_SELECT_KEYS + "(" + ", ".join("?" * len(ids)) + ")", ids).fetchall()
    stored: dict[tuple[str, str, str], _StoredRow] = {}
    for i in range(0, len(idents), _SQLITE_CHUNK):
        chunk = idents[i : i + _SQLITE_CHUNK]
        sql = _SQLITE_SELECT_STORED + ", ".join(["(?, ?, ?)"] * len(chunk)) + _SQLITE_SELECT_STORED_ON
        for r in conn.execute(sql, [value for ident in chunk for value in ident]):
            m = _StoredRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], _SQLITE_READ_TIME(r[7]))
            stored[(m.conversation_id, m.sender_id, m.client_id)] = m
    return convs, stored, redaction.redactors_for_sqlite(conn, {c.site_id for c in convs.values()}), key_rows


def _sqlite_write(
    conn: sqlite3.Connection,
    seq_rows: list[tuple[int, str, str]],
    message_rows: list[tuple[Any, ...]],
    term_rows: list[tuple[str, str]],
    original_rows: list[dict[str, Any]],
    now: str,
) -> None:
    # Each statement step releases and takes back the GIL; taking it back waits while the event loop
    # runs (up to the interpreter's switch interval), so few steps matter more than few rows.
    if seq_rows:
        conn.executemany(_SQLITE_UPDATE_SEQ, seq_rows)
    _insert_rows(conn, _SQLITE_INSERT_MESSAGES, "(?, ?, ?, ?, ?, ?, ?, ?)", "", message_rows)  # a conflict fails
    _insert_rows(conn, _SQLITE_INSERT_TERMS, "(?, ?)", " ON CONFLICT DO NOTHING", term_rows)
    redaction.insert_originals_sqlite(conn, original_rows, now)


def _insert_rows(conn: sqlite3.Connection, head: str, row: str, tail: str, rows: Sequence[tuple[Any, ...]]) -> None:
    for i in range(0, len(rows), _SQLITE_ROWS):
        chunk = rows[i : i + _SQLITE_ROWS]
        sql = head + ", ".join([row] * len(chunk)) + tail  # only placeholders are spliced in
        conn.execute(sql, [value for r in chunk for value in r])


class _MessageBatch:
    """What storing a batch means, whatever the connection: each draft authorised against its
    conversation as read, retries answered from the stored rows, the new rows (sequence numbers,
    encrypted bodies, blind-index terms not indexed yet), the results and the events. Text is
    masked first by its site's redactor, if any (``redaction``): what is stored, indexed, answered
    and fanned out is the masked text; the original is kept only where the site keeps them."""

    __slots__ = ("events", "indexed", "message_rows", "now", "original_rows", "results", "seq_rows", "term_rows")

    def __init__(
        self,
        rt: Runtime,
        drafts: list[Draft],
        convs: dict[str, Any],
        stored: dict[tuple[str, str, str], Any],
        keys: dict[str, DataKey],
        indexed: IndexedTerms | None,
        redactors: dict[str, Redactor] | None = None,
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
                    text=keys[conv.visitor_id].decrypt(m.body_enc, aad("messages.body", m.id)),
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
        self.events: list[MessageStored] = []
        self.original_rows: list[dict[str, Any]] = []
        batch_terms: dict[str, set[str]] = defaultdict(set)
        text_terms = rt.bidx.text_terms
        masked = _masked(drafts, accepted, convs, redactors) if redactors else {}
        ids = iter(crypto.new_ordered_ids(sum(len(indexes) for indexes in accepted.values())))
        for conv_id, indexes in accepted.items():
            conv = convs[conv_id]
            self.seq_rows.append((conv_id, conv.seq + len(indexes)))
            key = keys[conv.visitor_id]
            redactor = redactors.get(conv.site_id) if redactors else None
            for offset, i in enumerate(indexes):
                d = drafts[i]
                msg_id = next(ids)
                seq = conv.seq + 1 + offset
                text = d.text
                if redactor is not None:
                    found = masked.get(i)
                    if found is not None:
                        if redactor.keep_originals:
                            self.original_rows.append(
                                redaction.original_row(
                                    key,
                                    redaction.Original("message", msg_id, text, found.kinds),
                                    workspace_id=conv.workspace_id,
                                    site_id=conv.site_id,
                                    subject_id=conv.visitor_id,
                                    conversation_id=conv_id,
                                    now=now,
                                )
                            )
                        text = found.text
                body = key.encrypt(text, aad("messages.body", msg_id))
                self.message_rows.append((msg_id, conv_id, seq, d.sender, d.sender_id, d.client_id, body, now))
                if d.sender != "system":
                    batch_terms[conv_id].update(text_terms(conv.workspace_id, "msg", text))
                view = {
                    "id": msg_id,
                    "seq": seq,
                    "client_id": d.client_id,
                    "sender": d.sender,
                    "sender_name": d.sender_name,
                    "text": text,
                    "created_at": created_at,
                }  # = message_view(...), without a call and an ISO formatting per message
                results[i] = view
                self.events.append(MessageStored(conv_id, view))
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


def _masked(
    drafts: list[Draft], accepted: dict[str, list[int]], convs: dict[str, Any], redactors: dict[str, Redactor]
) -> dict[int, Redaction]:
    """The batch's texts masked by their sites' redactors, site by site (one screen per site for
    the whole batch, ``redaction.apply_many``): draft index -> masking, for the texts masked only.
    System messages are Confide's own words and are not masked."""
    by_site: dict[str, list[int]] = defaultdict(list)
    for conv_id, indexes in accepted.items():
        site_id = convs[conv_id].site_id
        if site_id in redactors:
            by_site[site_id].extend(i for i in indexes if drafts[i].sender != "system")
    out: dict[int, Redaction] = {}
    for site_id, indexes in by_site.items():
        found = redaction.apply_many(redactors[site_id], [drafts[i].text for i in indexes], site_id=site_id)
        out.update((i, f) for i, f in zip(indexes, found, strict=True) if f is not None)
    return out


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
