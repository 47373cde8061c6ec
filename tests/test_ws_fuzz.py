"""Property-based fuzzing of both WebSocket protocols against a real uvicorn (docs/protocol.md).

Whatever a client sends (deep nesting, numbers huge, negative or fractional, out-of-range dates,
lone surrogates, invalid UTF-8, wrong types, unknown and missing fields, oversized strings, binary
frames), every answer is a documented frame, every error carries a documented code (never
``internal``), the socket stays open unless a documented close applies (1009 for a frame over
16 KiB, 1007 for a text frame that is not UTF-8), and the server logs no traceback and no error.

Each example is a short sequence of frames sent on one authenticated socket, each followed by a
``ping``: every frame received before its ``pong`` is checked. A socket closed for a documented
reason is reopened for the next frame. The examples are bounded so that the suite stays fast.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from confide.app import create_app
from confide.core.runtime import Runtime
from confide.web.ws import dispatch
from tests import wsclient as wc
from tests.conftest import Live, World, free_port

VISITOR_TYPES = {"welcome", "resync", "ack", "message", "typing", "read", "status", "pong", "error"}
OPERATOR_TYPES = {"welcome", "queue", "offer", "offer_withdrawn", "chat", "chat_removed", "departments", "message",
                  "typing", "read", "history", "status", "ack", "pong", "error"}
ERROR_CODES = {"bad_frame", "unknown_type", "invalid", "not_found", "conflict", "rate_limited", "unauthorized"}
MAX_FRAME = 16 * 1024
# The one line a documented close leaves in the log: uvicorn's, for a text frame that is not UTF-8
# (closed with 1007; Confide strips the traceback uvicorn attaches to it).
KNOWN_WARNINGS = {"Invalid UTF-8 sequence received from client."}


def _known_warning(line: str) -> bool:
    return any(known in line for known in KNOWN_WARNINGS) and "Traceback" not in line
FUZZ = settings(max_examples=80, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ---------------------------------------------------------------- what is sent
@dataclass(frozen=True)
class Send:
    """One thing sent: a JSON value (encoded here), raw text, raw bytes, or bytes in a *text* frame."""

    kind: str  # json | text | binary | bad_utf8
    payload: Any

    def size(self) -> int:
        if self.kind == "json":
            return len(json.dumps(self.payload).encode())
        data = self.payload if isinstance(self.payload, bytes) else self.payload.encode("utf-8", "surrogatepass")
        return len(data)

    def expected_close(self) -> set[int]:
        """The documented closes this send may cause (none: the socket must stay open)."""
        if self.size() > MAX_FRAME:
            return {1009}
        if self.kind == "bad_utf8":
            return {1007}
        return set()


numbers = st.one_of(
    st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([-1, 0, 2**31, 2**53, 2**53 + 1, 2**63, -(2**63), 2**64, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0.5, -0.0, 1e308, 5e-324, 1.0, 4.0]),
)
dates = st.sampled_from(["0000-00-00T00:00:00Z", "9999-12-31T23:59:59Z", "-001000-01-01", "2026-02-30",
                         "1970-01-01T00:00:00+25:00", "275760-09-13T00:00:00.001Z"])
strings = st.one_of(
    st.text(max_size=40), dates, st.sampled_from(["", " ", "\n\t", "\x00", "\u202e", "\ufeff", "💬" * 10]),
    st.text(min_size=60, max_size=70), st.text(min_size=4000, max_size=4002, alphabet="ab "),
)
NASTY = ["\x00", "a\x00b", "c-\x00", "\x00" * 64, "\t\x00\n", "\x1f", "\x7f", "\u0085", "\u2028", "\ud7ff\ue000",
         "\U0010ffff", "é" * 64,
         "x" * 64, "x" * 65, "../../etc/passwd", "<script>alert(1)</script>", "'; DROP TABLE messages; --",
         "%00", "\\", '"', "null", "true", "0", "-1", "1e999", "NaN"]
nasty = st.sampled_from(NASTY)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings, nasty)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)


_MISSING = object()


def mutants(templates: list[dict[str, Any]], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Send]:
    """A valid frame whose fields are each kept, replaced by anything or dropped (``type`` is kept
    more often), with sometimes an unknown field added."""

    def one(template: dict[str, Any]) -> st.SearchStrategy[Send]:
        fields = {key: st.one_of(st.just(value), st.just(value), values, st.just(_MISSING))
                  for key, value in template.items()}
        fields["type"] = st.one_of(st.just(template["type"]), st.just(template["type"]), values)
        return st.builds(
            lambda chosen, extra: Send("json", {k: v for k, v in {**chosen, **extra}.items() if v is not _MISSING}),
            st.fixed_dictionaries(fields), st.dictionaries(st.text(max_size=8), values, max_size=1))

    return st.sampled_from(templates).flatmap(one)


def frames_of(types: list[str], fields: list[str], ids: list[str],
              templates: list[dict[str, Any]]) -> st.SearchStrategy[Send]:
    """Frames of the socket's own types, with its fields set to anything (or left out), plus extras."""
    field_values = st.one_of(nasty, nasty, nasty, json_values, st.sampled_from(ids))
    frame = st.builds(
        lambda kind, chosen, extra: {"type": kind, **chosen, **extra},
        st.one_of(st.sampled_from(types), strings, numbers, st.none()),
        st.dictionaries(st.sampled_from(fields), field_values, max_size=len(fields)),
        st.dictionaries(st.text(max_size=12), json_values, max_size=2),
    )
    depth = st.integers(min_value=30, max_value=8000)
    lone = st.sampled_from(["\\ud800", "\\udfff", "\\ud83d", "\\udc00x", "\\u0000"])
    return st.one_of(
        *[mutants(templates, field_values)] * 8,
        frame.map(lambda f: Send("json", f)),
        json_values.map(lambda v: Send("json", v)),
        st.builds(lambda t, n: Send("text", json.dumps({"type": t, "text": "x"})[:-1] + ',"deep":' + "[" * n
                                    + "]" * n + "}"), st.sampled_from(types), depth),
        depth.map(lambda n: Send("text", "{" * n)),
        depth.map(lambda n: Send("text", '{"type":"ping","a":' + '{"a":' * n + "1" + "}" * n + "}")),
        st.builds(lambda t, s: Send("text", f'{{"type":"{t}","client_id":"{s}","text":"{s}"}}'),
                  st.sampled_from(types), lone),
        st.builds(lambda t, n: Send("text", f'{{"type":"{t}","seq":1{"0" * n},"after_seq":-1{"0" * n},'
                                    f'"score":{"9" * n}}}'), st.sampled_from(types),
                  st.integers(min_value=15, max_value=5000)),
        st.text(max_size=60).map(lambda t: Send("text", t)),
        st.binary(max_size=64).map(lambda b: Send("binary", b)),
        st.sampled_from([b"\xff\xfe", b'{"type":"ping","x":"\xc3\x28"}', b"\xed\xa0\x80"]).map(
            lambda b: Send("bad_utf8", b)),
        st.sampled_from(types).map(lambda t: Send("json", {"type": t, "text": "y" * MAX_FRAME})),
        st.integers(min_value=MAX_FRAME - 64, max_value=MAX_FRAME + 64).map(lambda n: Send("binary", b"\0" * n)),
    )


VISITOR_TEMPLATES: list[dict[str, Any]] = [
    {"type": "message", "client_id": "c-1", "text": "hello"}, {"type": "typing", "on": True},
    {"type": "read", "seq": 1}, {"type": "rate", "score": 4, "comment": "ok", "client_id": "r-1"},
    {"type": "end"}, {"type": "ping", "client_id": "p-1"},
    {"type": "hello", "token": "t", "conversation_id": "c", "last_seq": 0}]
VISITOR_SENDS = frames_of(["hello", "message", "typing", "read", "end", "rate", "ping", "leave_message"],
                          ["client_id", "text", "on", "seq", "score", "comment", "token", "conversation_id",
                           "last_seq"], ["c-1", "x" * 64, "x" * 65], VISITOR_TEMPLATES)
OPERATOR_FIELDS = ["conversation_id", "client_id", "text", "on", "seq", "status", "operator_id", "department_id",
                   "after_seq"]
OPERATOR_TYPES_IN = ["status", "accept", "message", "typing", "read", "transfer", "close", "history", "ping"]


def operator_templates(cid: str, world: World | None, department_id: str = "",
                       operator_id: str = "") -> list[dict[str, Any]]:
    """Valid operator frames about the chat ``cid`` (transfers to the admin or back to its department)."""
    if world is not None:
        department_id, operator_id = world.department_id, world.admin_id
    return [
        {"type": "message", "conversation_id": cid, "client_id": "o-1", "text": "hi"},
        {"type": "typing", "conversation_id": cid, "on": False}, {"type": "read", "conversation_id": cid, "seq": 1},
        {"type": "history", "conversation_id": cid, "after_seq": 0, "client_id": "h-1"},
        {"type": "status", "status": "online"}, {"type": "accept", "conversation_id": cid},
        {"type": "transfer", "conversation_id": cid, "department_id": department_id},
        {"type": "transfer", "conversation_id": cid, "operator_id": operator_id}, {"type": "ping"}]


# ---------------------------------------------------------------- the server's log
class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_log(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Iterator[Any]:
    """Everything the in-process server logs: structlog (Confide, through the root logger), uvicorn's loggers (their
    handlers replaced by a collector for the test), anything else through the root logger or on
    stderr. Canaries through each channel prove the capture sees them before the fuzzing starts."""
    caplog.set_level(logging.WARNING)
    uvicorn_records = _Records()
    uvicorn = logging.getLogger("uvicorn")
    saved = uvicorn.handlers[:], uvicorn.propagate
    uvicorn.handlers, uvicorn.propagate = [uvicorn_records], False
    dispatch.log.warning("fuzz_canary_structlog")
    logging.getLogger("uvicorn.error").warning("fuzz_canary_uvicorn")
    logging.getLogger("asyncio").warning("fuzz_canary_root")
    out, err = capfd.readouterr()
    assert "fuzz_canary_structlog" in out + err + caplog.text  # structlog renders through the root logger
    assert [r.getMessage() for r in uvicorn_records.records] == ["fuzz_canary_uvicorn"]
    assert "fuzz_canary_root" in caplog.text
    uvicorn_records.records.clear()
    caplog.clear()

    def check() -> None:
        out, err = capfd.readouterr()
        lines = [line for line in (out + err).splitlines() if line.strip() and not _known_warning(line)]
        assert not lines, "\n".join(lines[:20])  # the server runs at log level warning
        records = uvicorn_records.records + caplog.records
        assert not [(r.levelname, r.getMessage()) for r in records
                    if r.levelno >= logging.ERROR or r.exc_info or r.getMessage() not in KNOWN_WARNINGS]

    yield check
    uvicorn.handlers, uvicorn.propagate = saved


@pytest.fixture
async def live(server_log: Any, rt: Runtime) -> AsyncIterator[Live]:
    """conftest's ``live``, with uvicorn's own logging set-up left out (``log_config=None``), so
    that its records reach the collector of ``server_log`` and nothing else."""
    application = create_app(runtime=rt)
    port = free_port()
    config = uvicorn.Config(application, host="127.0.0.1", port=port, ws="websockets-sansio",
                            ws_per_message_deflate=False, ws_max_size=rt.settings.max_frame_bytes,
                            log_level="warning", lifespan="on", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield Live(base=f"http://127.0.0.1:{port}", ws=f"ws://127.0.0.1:{port}", app=application)
    server.should_exit = True
    await asyncio.wait_for(task, 10)


# ---------------------------------------------------------------- driving a socket
async def _send(ws: ClientConnection, item: Send) -> None:
    if item.kind == "json":
        await ws.send(json.dumps(item.payload))
    elif item.kind in ("text", "binary"):
        await ws.send(item.payload)
    else:
        await ws.send(item.payload, text=True)  # bytes sent as a text frame, unchecked by the client


def _answer_key(item: Send) -> str | None:
    """A ``message`` frame with a client id is answered after the writer's commit (an ``ack``, or an
    error echoing it), possibly after the pong: remember to wait for that answer too."""
    frame = item.payload
    if item.kind != "json" or not isinstance(frame, dict) or frame.get("type") != "message":
        return None
    ref = frame.get("client_id")
    return ref if isinstance(ref, str) and len(ref) <= 64 else None


class Socket:
    """A socket of the fuzzed protocol, reopened after a documented close."""

    def __init__(self, opener: Any, documented: set[str]) -> None:
        self._open = opener
        self.documented = documented
        self.ws: ClientConnection | None = None
        self.closes: list[int | None] = []
        self.awaiting: list[str] = []  # client ids of messages whose answer has not arrived yet

    async def get(self) -> ClientConnection:
        if self.ws is None or self.ws.close_code is not None:
            self.ws = await self._open()
        return self.ws

    def _check(self, raw: str | bytes) -> dict[str, Any]:
        assert isinstance(raw, str), f"binary frame from the server: {raw!r}"
        frame = json.loads(raw)
        assert isinstance(frame, dict), frame
        assert frame.get("type") in self.documented, frame
        if frame["type"] == "error":
            assert frame["code"] in ERROR_CODES, frame
            assert isinstance(frame["message"], str)
            assert 0 < len(frame["message"]) <= 200, frame
            assert "validation error" not in frame["message"].lower(), frame  # a sentence, not a dump
            assert "ref" not in frame or (isinstance(frame["ref"], str) and len(frame["ref"]) <= 64), frame
        answered = frame.get("client_id") if frame["type"] == "ack" else frame.get("ref")
        if frame["type"] in ("ack", "error") and answered in self.awaiting:
            self.awaiting.remove(answered)
        return frame

    async def _exchange(self, ws: ClientConnection, item: Send) -> int | None:
        """Send ``item`` then a ping; check what comes back before the pong. Returns the close code
        when the server closed the socket (the caller checks it was a documented close)."""
        try:
            await _send(ws, item)
            key = _answer_key(item)
            if key is not None:
                self.awaiting.append(key)
            await ws.send(json.dumps({"type": "ping"}))
            while True:
                frame = self._check(await asyncio.wait_for(ws.recv(), wc.TIMEOUT_S))
                if frame["type"] == "pong" and not item.expected_close():
                    return None
                # A documented close is awaited even after the pong: uvicorn may still hand the ping that
                # followed a bad UTF-8 frame in the same read to the app before its close goes out.
        except ConnectionClosed:
            self.awaiting.clear()
            await ws.wait_closed()
            return ws.close_code if ws.close_code is not None else -1  # -1: closed without a close frame

    async def _answers(self, ws: ClientConnection) -> None:
        """Every message sent gets its answer (ack or error) from the writer, checked like the rest."""
        while self.awaiting:
            self._check(await asyncio.wait_for(ws.recv(), wc.TIMEOUT_S))

    async def play(self, sends: list[Send]) -> None:
        """Every example starts on an open socket, whatever the last one did (shrinking replays)."""
        try:
            for item in sends:
                code = await self._exchange(await self.get(), item)
                if code is not None or item.expected_close():
                    assert code in item.expected_close(), (item.kind, item.size(), code)
                    self.closes.append(code)
                    self.ws = None
            if self.ws is not None:
                await self._answers(self.ws)
        except BaseException:
            self.awaiting.clear()
            if self.ws is not None:
                await self.ws.close()
            self.ws = None
            raise


# ---------------------------------------------------------------- visitor
@pytest.fixture
async def fuzz_visitor(rt: Runtime, world: World, live: Live) -> AsyncIterator[Socket]:
    a = await wc.active_chat(live=live, world=world)

    async def reopen() -> ClientConnection:
        ws, _ = await wc.visitor_hello(live=live, chat=a.chat)
        return ws

    sock = Socket(reopen, VISITOR_TYPES)
    sock.ws = a.visitor
    yield sock
    await wc.close_all()


@FUZZ
@given(sends=st.lists(VISITOR_SENDS, min_size=1, max_size=4))
async def test_fuzz_visitor_protocol(fuzz_visitor: Socket, server_log: Any, sends: list[Send]) -> None:
    await fuzz_visitor.play(sends)
    server_log()


# ---------------------------------------------------------------- operator
@pytest.fixture
async def fuzz_operator(rt: Runtime, world: World, live: Live) -> AsyncIterator[tuple[Socket, list[str]]]:
    a = await wc.active_chat(live=live, world=world)
    ids = [a.chat.conversation_id, world.department_id, world.operator_id, world.admin_id, "x" * 64, "x" * 65,
           "no-such-id", "online"]

    async def reopen() -> ClientConnection:
        ws, _, _ = await wc.operator_connect(live=live, cookie=a.cookie)
        return ws

    sock = Socket(reopen, OPERATOR_TYPES)
    sock.ws = a.operator
    yield sock, ids
    await wc.close_all()


@FUZZ
@given(data=st.data())
async def test_fuzz_operator_protocol(fuzz_operator: tuple[Socket, list[str]], server_log: Any,
                                      data: st.DataObject) -> None:
    sock, ids = fuzz_operator
    templates = operator_templates(ids[0], world=None, department_id=ids[1], operator_id=ids[3])
    sends = data.draw(st.lists(frames_of(OPERATOR_TYPES_IN, OPERATOR_FIELDS, ids, templates), min_size=1,
                               max_size=4))
    await sock.play(sends)
    server_log()


# ---------------------------------------------------------------- every nasty value in every field
def _every_field_nasty(templates: list[dict[str, Any]]) -> list[Send]:
    """Each template with each field (and one unknown field) set to each nasty value in turn."""
    values: list[Any] = [*NASTY, None, True, 1.5, -1, 2**31 - 1, 2**31, 2**53, 2**63, [], {}, [[["deep"]]],
                         {"a": {"b": None}}]
    return [Send("json", {**t, key: value}) for t in templates for key in [*t, "unknown"] if key != "type"
            for value in values]


async def test_every_field_of_every_visitor_frame(rt: Runtime, world: World, live: Live, server_log: Any) -> None:
    a = await wc.active_chat(live=live, world=world)

    async def reopen() -> ClientConnection:
        ws, _ = await wc.visitor_hello(live=live, chat=a.chat)
        return ws

    sock = Socket(reopen, VISITOR_TYPES)
    sock.ws = a.visitor
    sends = _every_field_nasty([t for t in VISITOR_TEMPLATES if t["type"] != "end"])
    assert len(sends) > 300
    await sock.play(sends)
    server_log()
    await wc.close_all()


async def test_every_field_of_every_operator_frame(rt: Runtime, world: World, live: Live, server_log: Any) -> None:
    a = await wc.active_chat(live=live, world=world)

    async def reopen() -> ClientConnection:
        ws, _, _ = await wc.operator_connect(live=live, cookie=a.cookie)
        return ws

    sock = Socket(reopen, OPERATOR_TYPES)
    sock.ws = a.operator
    sends = _every_field_nasty(operator_templates(a.chat.conversation_id, world))
    assert len(sends) > 500
    await sock.play(sends)
    server_log()
    await wc.close_all()


# ---------------------------------------------------------------- the closes are real
async def test_documented_closes_happen(rt: Runtime, world: World, live: Live) -> None:
    """The fuzz tests accept 1007 and 1009 only where documented: check those closes do happen."""
    a = await wc.active_chat(live=live, world=world)
    await a.visitor.send(b'{"type":"ping"}\xff', text=True)
    code, _ = await wc.expect_close(ws=a.visitor)
    assert code == 1007
    ws, _ = await wc.visitor_hello(live=live, chat=a.chat)
    await ws.send(json.dumps({"type": "message", "client_id": "c", "text": "x" * MAX_FRAME}))
    code, _ = await wc.expect_close(ws=ws)
    assert code == 1009
    ws, _ = await wc.visitor_hello(live=live, chat=a.chat)
    await wc.send(ws=ws, frame={"type": "ping"})
    assert await wc.recv(ws=ws) == {"type": "pong"}
    await wc.close_all()
