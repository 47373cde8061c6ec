"""Load generator process: speaks the Confide protocol (docs/protocol.md) to a server.

Run as ``python -m bench.loadgen``. It reads one JSON command per line on stdin and answers
each with one JSON line on stdout (``{"event": "done", "cmd": ...}`` or
``{"event": "error", ...}``); diagnostics go to stderr. The orchestrator (bench/run.py) can
start several of these processes and send them the same phase command at the same moment.

Commands:

* ``setup``: ``host``, ``port``, ``origin``, ``site_key``, ``operators`` (list of
  ``{email, password}``), ``text_bytes``; logs the operators in, opens their sockets, sets
  them ``online``.
* ``create``: ``count``, ``concurrency``, ``accept``: creates conversations (POST
  .../conversations); with ``accept`` (and operators), operator ``i % n`` accepts conversation
  ``i`` as soon as it is created, so the waiting queue never grows beyond ``concurrency``
  (Confide sends every operator socket the whole queue on every change).
* ``open``: ``count``, ``concurrency``: opens that many visitor sockets (``hello`` →
  ``welcome``) for created conversations.
* ``rate``: ``rate``, ``warmup``, ``duration``, ``drain``, ``max_messages``: open-loop load at
  a fixed rate spread round-robin over the open visitors.
* ``saturate``: ``window``, ``warmup``, ``duration``, ``drain``, ``max_messages``: each visitor
  keeps ``window`` messages in flight (sent, not yet seen by its operator).
* ``close_visitors``: closes every open visitor socket.
* ``stats``: counters; ``quit``.

Latency is measured inside one process: the send time (``perf_counter_ns``) travels in the
message's ``client_id`` (``"<visitor>.<seq>.<ns>"``) and is read back from the ``message``
frame the operator socket receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import sys
import time
from collections import Counter
from typing import Any

import httpx

from bench.servers import HARNESS_ERRORS
from bench.stats import Histogram
from bench.wsclient import WSClient, connect

perf_ns = time.perf_counter_ns


def log(*args: object) -> None:
    print("[loadgen]", *args, file=sys.stderr, flush=True)


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class AcceptError(Exception):
    pass


class Visitor:
    __slots__ = ("alive", "conv_id", "gen", "idx", "inflight", "prefix", "seq", "token", "welcome", "ws")

    def __init__(self, gen: Generator, idx: int, conv_id: str, token: str) -> None:
        self.gen = gen
        self.idx = idx
        self.conv_id = conv_id
        self.token = token
        self.ws: WSClient | None = None
        self.seq = 0
        self.inflight = 0
        self.alive = False
        self.prefix = '{"type":"message","client_id":"' + f"{idx}."
        self.welcome: asyncio.Future[dict[str, Any]] | None = None

    async def open(self) -> None:
        gen = self.gen
        self.welcome = asyncio.get_running_loop().create_future()
        ws = await connect(gen.host, gen.port, f"/ws/visitor?site={gen.site_key}",
                           {"Origin": gen.origin}, on_text=self._on_first)
        self.ws = ws
        ws.on_close = self._on_close
        ws.send_text(json.dumps({"type": "hello", "token": self.token,
                                 "conversation_id": self.conv_id, "last_seq": 0}))
        try:
            await asyncio.wait_for(self.welcome, 15)
        except BaseException:
            ws.close()
            raise
        ws.on_text = self._on_text
        self.alive = True

    def _on_first(self, payload: bytes) -> None:
        d = json.loads(payload)
        t = d.get("type")
        fut = self.welcome
        if fut is None or fut.done():
            return
        if t in ("welcome", "resync"):
            fut.set_result(d)
        elif t == "error":
            fut.set_exception(RuntimeError(f"hello refused: {d.get('code')}: {d.get('message')}"))

    def _on_close(self, ws: WSClient) -> None:
        gen = self.gen
        if self.welcome is not None and not self.welcome.done():
            self.welcome.set_exception(ConnectionError(f"closed before welcome ({ws.close_code})"))
        if self.alive and not gen.closing:
            gen.closes[f"visitor:{ws.close_code}"] += 1
        self.alive = False

    def _on_text(self, p: bytes) -> None:
        gen = self.gen
        if b'"ack"' in p:
            gen.acks += 1
        elif b'"error"' in p:
            self._on_error(json.loads(p))
        else:
            gen.visitor_other += 1

    def _on_error(self, d: dict[str, Any]) -> None:
        gen = self.gen
        if d.get("type") != "error":
            gen.visitor_frames[str(d.get("type"))] += 1
            return
        gen.errors[f"visitor:{d.get('code')}"] += 1
        ref = d.get("ref")
        if isinstance(ref, str) and ref.count(".") == 2:
            # the message was refused: it will never reach the operator
            self.inflight -= 1
            gen.inflight -= 1
            gen.refused += 1
            if gen.inflight <= 0:
                gen.drained.set()
            if gen.saturating:
                asyncio.get_running_loop().call_later(0.05, self.send)

    def frame(self, seq: int, t: int, text: str) -> str:
        return f'{self.prefix}{seq}.{t}","text":"{text}"}}'

    def send(self) -> None:
        gen = self.gen
        if not self.alive or self.ws is None:
            return
        if gen.sent >= gen.max_messages:
            gen.capped = True
            return
        self.seq += 1
        self.inflight += 1
        gen.inflight += 1
        gen.sent += 1
        t = perf_ns()
        if gen.window_start <= t < gen.window_end:
            gen.sent_in_window += 1
        self.ws.send_text(self.frame(self.seq, t, gen.next_text()))


class Operator:
    def __init__(self, gen: Generator, email: str, password: str) -> None:
        self.gen = gen
        self.email = email
        self.password = password
        self.ws: WSClient | None = None
        self.welcome: asyncio.Future[dict[str, Any]] | None = None
        self.status: asyncio.Future[str] | None = None

    async def open(self) -> None:
        gen = self.gen
        loop = asyncio.get_running_loop()
        r = await gen.http.post("/api/v1/auth/login", json={"email": self.email, "password": self.password},
                                headers={"Origin": gen.origin})
        if r.status_code >= 300:
            raise RuntimeError(f"login {self.email}: HTTP {r.status_code} {r.text[:200]}")
        cookie = r.cookies.get("confide_session")
        if not cookie:
            raise RuntimeError(f"login {self.email}: no confide_session cookie")
        self.welcome = loop.create_future()
        self.status = loop.create_future()
        self.ws = await connect(gen.host, gen.port, "/ws/operator",
                                {"Origin": gen.origin, "Cookie": f"confide_session={cookie}"},
                                on_text=self._on_text)
        self.ws.on_close = self._on_close
        await asyncio.wait_for(self.welcome, 15)
        self.ws.send_text(json.dumps({"type": "status", "status": "online"}))
        try:
            await asyncio.wait_for(self.status, 5)
        except TimeoutError:
            log(f"operator {self.email}: no status frame after going online; continuing")

    def send_accept(self, conv_id: str) -> None:
        if self.ws is not None:
            self.ws.send_text(json.dumps({"type": "accept", "conversation_id": conv_id,
                                          "client_id": f"acc:{conv_id}"}))

    def _on_close(self, ws: WSClient) -> None:
        if not self.gen.closing:
            self.gen.closes[f"operator:{ws.close_code}"] += 1

    def _on_text(self, p: bytes) -> None:
        self._on_frame(json.loads(p))

    def _on_frame(self, d: dict[str, Any]) -> None:
        gen = self.gen
        t = d.get("type")
        if t == "message":
            m = d.get("message") or {}
            if m.get("sender") == "visitor":
                gen.on_delivered(m.get("client_id") or "")
            return
        gen.operator_frames[str(t)] += 1
        if t == "welcome":
            if self.welcome is not None and not self.welcome.done():
                self.welcome.set_result(d)
        elif t == "status":
            if self.status is not None and not self.status.done():
                self.status.set_result(str(d.get("status")))
        elif t == "chat":
            conv = d.get("conversation") or {}
            gen.accepted_ids.add(str(conv.get("id")))
            fut = gen.pending_accept.get(str(conv.get("id")))
            if fut is not None and not fut.done():
                fut.set_result(conv)
        elif t == "error":
            ref = d.get("ref")
            gen.errors[f"operator:{d.get('code')}"] += 1
            if isinstance(ref, str) and ref.startswith("acc:"):
                fut = gen.pending_accept.get(ref[4:])
                if fut is not None and not fut.done():
                    fut.set_exception(AcceptError(f"{d.get('code')}: {d.get('message')}"))


# -- Socket.IO (bench/socketio_relay.py) -------------------------------------------------------
# Engine.IO v4 / Socket.IO v5 text packets over a plain WebSocket: the server opens with
# ``0{...}``, the client connects the default namespace with ``40{auth}`` (answered ``40{...}``
# or ``44{...}``), events are ``42["name",data]``, an event with an acknowledgement id N is
# ``42N["name",data]`` and is answered ``43N[data]``; the server pings ``2``, the client
# answers ``3``. No polling, no binary packets, no namespaces but ``/``.
SIO_PATH = "/socket.io/?EIO=4&transport=websocket"


def _sio_event(name: str, data: dict[str, Any]) -> str:
    return "42" + json.dumps([name, data], separators=(",", ":"))


class SioVisitor(Visitor):
    __slots__ = ("eio_open",)

    def __init__(self, gen: Generator, idx: int, conv_id: str, token: str) -> None:
        super().__init__(gen, idx, conv_id, token)
        self.prefix = f'["message",{{"client_id":"{idx}.'
        self.eio_open = False  # the Engine.IO open packet came (it may come with the handshake)

    def _connect_namespace(self) -> None:
        if self.ws is not None:
            self.ws.send_text("40" + json.dumps({"token": self.token, "conversation_id": self.conv_id}))

    async def open(self) -> None:
        gen = self.gen
        self.welcome = asyncio.get_running_loop().create_future()
        ws = await connect(gen.host, gen.port, SIO_PATH, {"Origin": gen.origin}, on_text=self._on_first)
        self.ws = ws
        ws.on_close = self._on_close
        if self.eio_open:
            self._connect_namespace()
        try:
            await asyncio.wait_for(self.welcome, 15)
        except BaseException:
            ws.close()
            raise
        ws.on_text = self._on_text
        self.alive = True

    def _on_first(self, payload: bytes) -> None:
        fut = self.welcome
        if fut is None or fut.done():
            return
        if payload[:1] == b"0":  # Engine.IO open
            self.eio_open = True
            self._connect_namespace()
        elif payload[:2] == b"40":
            fut.set_result({})
        elif payload[:2] == b"44":
            fut.set_exception(RuntimeError(f"connect refused: {payload[2:200]!r}"))

    def _on_text(self, p: bytes) -> None:
        gen = self.gen
        head = p[:2]
        if head == b"43":
            gen.acks += 1
        elif p == b"2":
            if self.ws is not None:
                self.ws.send_text("3")
        elif head == b"42" and b'"error"' in p:
            self._on_error(json.loads(p[2:])[1])
        else:
            gen.visitor_other += 1

    def frame(self, seq: int, t: int, text: str) -> str:
        return f'42{seq}{self.prefix}{seq}.{t}","text":"{text}"}}]'


class SioOperator(Operator):
    async def open(self) -> None:
        gen = self.gen
        loop = asyncio.get_running_loop()
        self.welcome = loop.create_future()
        self.status = loop.create_future()
        self.eio_open = False
        self.ws = await connect(gen.host, gen.port, SIO_PATH, {"Origin": gen.origin}, on_text=self._on_text)
        self.ws.on_close = self._on_close
        if self.eio_open:  # the open packet came with the handshake, before self.ws was set
            self.ws.send_text('40{"role":"operator"}')
        await asyncio.wait_for(self.welcome, 15)
        self.ws.send_text(_sio_event("status", {"status": "online"}))
        try:
            await asyncio.wait_for(self.status, 5)
        except TimeoutError:
            log(f"operator {self.email}: no status event after going online; continuing")

    def send_accept(self, conv_id: str) -> None:
        if self.ws is not None:
            self.ws.send_text(_sio_event("accept", {"conversation_id": conv_id, "client_id": f"acc:{conv_id}"}))

    def _on_text(self, p: bytes) -> None:
        head = p[:2]
        if head == b"42":
            self._on_frame(json.loads(p[2:])[1])
        elif p == b"2":
            if self.ws is not None:
                self.ws.send_text("3")
        elif head == b"40":
            if self.welcome is not None and not self.welcome.done():
                self.welcome.set_result({})
        elif p[:1] == b"0":  # Engine.IO open: connect the namespace
            self.eio_open = True
            if self.ws is not None:
                self.ws.send_text('40{"role":"operator"}')
        elif head == b"44" and self.welcome is not None and not self.welcome.done():
            self.welcome.set_exception(RuntimeError(f"connect refused: {p[2:200]!r}"))


# Realistic chat text: distinct words from a vocabulary (the server indexes every word of every
# message for search, so a single repeated token would understate its work).
_VOCAB = (
    "hello thanks please order delivery invoice refund account password shipping parcel tracking number "
    "today tomorrow monday friday price discount coupon size colour blue black return exchange warranty "
    "broken missing address change cancel subscription plan upgrade payment card bank transfer receipt "
    "question help support agent store opening hours phone email website login error page checkout basket "
    "product item stock available weeks days morning evening great perfect sorry problem issue solved"
).split()


def chat_texts(size: int, count: int = 512) -> list[str]:
    rnd = random.Random(7)
    texts = []
    for _ in range(count):
        words: list[str] = []
        while len(" ".join(words)) < size:
            words.append(rnd.choice(_VOCAB))
        texts.append(" ".join(words)[:size].rstrip())
    return texts


class Generator:
    def next_text(self) -> str:
        self._text_index = (self._text_index + 1) % len(self.texts)
        return self.texts[self._text_index]

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.origin = ""
        self.site_key = ""
        self.protocol = "confide"
        self.visitor_cls: type[Visitor] = Visitor
        self.texts = chat_texts(80)
        self._text_index = 0
        self.http: httpx.AsyncClient = httpx.AsyncClient()
        self.operators: list[Operator] = []
        self.visitors: list[Visitor] = []
        self.created: list[tuple[str, str]] = []  # (conversation_id, token), in creation order
        self.n_opened = 0
        self.pending_accept: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.closing = False
        self.errors: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()
        self.operator_frames: Counter[str] = Counter()
        self.visitor_frames: Counter[str] = Counter()
        self.prechat: dict[str, Any] = {}
        self.drained = asyncio.Event()
        self.accepted_ids: set[str] = set()
        self._reset_phase()

    def _reset_phase(self) -> None:
        self.window_start = 0
        self.window_end = 0
        self.hist = Histogram()
        self.sent = 0
        self.sent_in_window = 0
        self.delivered = 0
        self.delivered_in_window = 0
        self.inflight = 0
        self.acks = 0
        self.refused = 0
        self.foreign = 0
        self.visitor_other = 0
        self.saturating = False
        self.max_messages = 0
        self.capped = False
        for v in self.visitors:
            v.inflight = 0

    # -- measurement ---------------------------------------------------------------------
    def on_delivered(self, client_id: str) -> None:
        now = perf_ns()
        parts = client_id.split(".")
        if len(parts) != 3:
            self.foreign += 1
            return
        v = self.visitors[int(parts[0])]
        v.inflight -= 1
        self.inflight -= 1
        self.delivered += 1
        if self.inflight <= 0:
            self.drained.set()
        if self.window_start <= now < self.window_end:
            self.hist.add(now - int(parts[2]))
            self.delivered_in_window += 1
        if self.saturating:
            v.send()

    # -- setup ---------------------------------------------------------------------------
    async def setup(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.host, self.port = cmd["host"], int(cmd["port"])
        self.protocol = str(cmd.get("protocol", "confide"))
        if self.protocol not in ("confide", "socketio"):
            raise ValueError(f"unknown protocol {self.protocol!r}")
        sio = self.protocol == "socketio"
        self.visitor_cls, operator_cls = (SioVisitor, SioOperator) if sio else (Visitor, Operator)
        self.origin, self.site_key = cmd["origin"], cmd["site_key"]
        self.texts = chat_texts(int(cmd.get("text_bytes", 80)))
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self.http = httpx.AsyncClient(base_url=f"http://{self.host}:{self.port}", timeout=30, limits=limits)
        r = await self.http.get(f"/api/v1/widget/{self.site_key}/config", headers={"Origin": self.origin})
        self.prechat = r.json() if r.status_code == 200 else {}
        for op in cmd.get("operators", []):
            o = operator_cls(self, op["email"], op["password"])
            await o.open()
            self.operators.append(o)
        return {"operators": len(self.operators), "nofile": raise_nofile()}

    def _conversation_body(self, i: int) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for f in (self.prechat.get("prechat_form") or {}).get("fields", []):
            if not f.get("required"):
                continue
            kind, key = f.get("type"), f["key"]
            fields[key] = {
                "email": f"bench{i}@example.com", "tel": "+15550100", "checkbox": True,
                "select": (f.get("options") or ["x"])[0],
            }.get(kind, f"Bench {i}")
        fields.setdefault("name", f"Bench {i}")
        fields.setdefault("email", f"bench{i}@example.com")
        consents = {p["key"]: False for p in self.prechat.get("purposes", []) if "key" in p}
        return {"fields": fields, "consents": consents, "department_id": None,
                "page_url": f"{self.origin}/bench"}

    async def create(self, count: int, concurrency: int, accept: bool) -> dict[str, Any]:
        sem = asyncio.Semaphore(concurrency)
        statuses: Counter[str] = Counter()
        accept_retries: Counter[str] = Counter()
        url = f"/api/v1/widget/{self.site_key}/conversations"
        base = len(self.created)
        accept = accept and bool(self.operators)
        t0 = time.perf_counter()

        async def one(i: int) -> None:
            async with sem:
                for attempt in range(5):
                    try:
                        r = await self.http.post(url, json=self._conversation_body(i),
                                                 headers={"Origin": self.origin})
                    except httpx.HTTPError as exc:
                        statuses[type(exc).__name__] += 1
                        await asyncio.sleep(0.2 * (attempt + 1))
                        continue
                    statuses[str(r.status_code)] += 1
                    if r.status_code == 201:
                        d = r.json()
                        self.created.append((d["conversation_id"], d["token"]))
                        if accept:
                            op = self.operators[i % len(self.operators)]
                            await self._accept(op, d["conversation_id"], accept_retries)
                        return
                    if r.status_code not in (409, 429, 500, 502, 503):
                        if statuses[str(r.status_code)] <= 3:
                            log(f"create conversation: HTTP {r.status_code} {r.text[:300]}")
                        return
                    await asyncio.sleep(0.2 * (attempt + 1))

        await asyncio.gather(*(one(base + i) for i in range(count)))
        return {"created": len(self.created) - base, "total": len(self.created),
                "accepted": len(self.accepted_ids), "seconds": round(time.perf_counter() - t0, 3),
                "http_statuses": dict(statuses), "accept_retries": dict(accept_retries)}

    async def _accept(self, op: Operator, conv_id: str, retries: Counter[str]) -> None:
        """``accept`` from ``op``; wait (patiently: the server may be slow) for the ``chat`` frame."""
        loop = asyncio.get_running_loop()
        for _attempt in range(20):
            if conv_id in self.accepted_ids:
                return
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            self.pending_accept[conv_id] = fut
            op.send_accept(conv_id)
            try:
                await asyncio.wait_for(fut, 60)
                return
            except AcceptError as exc:
                retries[str(exc).split(":")[0]] += 1
                await asyncio.sleep(0.1)
            finally:
                self.pending_accept.pop(conv_id, None)
        if conv_id not in self.accepted_ids:
            raise AcceptError(f"could not accept {conv_id}")

    async def open(self, count: int, concurrency: int) -> dict[str, Any]:
        todo = self.created[self.n_opened:self.n_opened + count]
        self.n_opened += len(todo)
        sem = asyncio.Semaphore(concurrency)
        failures: Counter[str] = Counter()
        t0 = time.perf_counter()

        async def one(conv_id: str, token: str) -> None:
            async with sem:
                v = self.visitor_cls(self, len(self.visitors), conv_id, token)
                self.visitors.append(v)
                try:
                    await v.open()
                except (OSError, RuntimeError) as exc:  # refused, closed, timed out (OSError), hello refused
                    failures[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1

        await asyncio.gather(*(one(c, t) for c, t in todo))
        alive = sum(1 for v in self.visitors if v.alive)
        return {"opened": len(todo) - sum(failures.values()), "alive": alive,
                "seconds": round(time.perf_counter() - t0, 3), "failures": dict(failures)}

    # -- load phases ---------------------------------------------------------------------
    def _live(self) -> list[Visitor]:
        live = [v for v in self.visitors if v.alive]
        if not live:
            raise RuntimeError("no open visitor sockets")
        return live

    def _set_window(self, warmup: float, duration: float) -> None:
        self.window_start = perf_ns() + int(warmup * 1e9)
        self.window_end = self.window_start + int(duration * 1e9)

    async def _window(self) -> tuple[float, float]:
        """Sleep through warm-up and measurement; return (cpu seconds, wall seconds) of the window."""
        await asyncio.sleep(max(0.0, (self.window_start - perf_ns()) / 1e9))
        c0, w0 = cpu_seconds(), time.perf_counter()
        await asyncio.sleep(max(0.0, (self.window_end - perf_ns()) / 1e9))
        return cpu_seconds() - c0, time.perf_counter() - w0

    async def _drain(self, drain: float) -> float:
        t0 = time.perf_counter()
        self.drained.clear()
        if self.inflight > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), drain)
        return time.perf_counter() - t0

    def _result(self, duration: float, cpu: float, wall: float, drain_s: float) -> dict[str, Any]:
        return {
            "window_s": duration, "visitors": sum(1 for v in self.visitors if v.alive),
            "sent": self.sent, "sent_in_window": self.sent_in_window, "delivered": self.delivered,
            "delivered_in_window": self.delivered_in_window,
            "msgs_per_s": round(self.delivered_in_window / duration, 1),
            "acks": self.acks, "refused": self.refused, "undelivered_after_drain": self.inflight,
            "drain_s": round(drain_s, 3), "capped": self.capped, "foreign": self.foreign,
            "cpu_s": round(cpu, 3), "cpu_util": round(cpu / wall, 3) if wall else None,
            "hist": self.hist.to_json(), "latency": self.hist.summary(),
            "errors": dict(self.errors), "closes": dict(self.closes),
        }

    async def rate(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self._reset_phase()
        live = self._live()
        rate = float(cmd["rate"])
        warmup, duration = float(cmd.get("warmup", 2)), float(cmd.get("duration", 10))
        self.max_messages = int(cmd.get("max_messages", rate * (warmup + duration) + 10))
        per_visitor_cap = int(cmd.get("max_inflight_per_visitor", 200))
        interval = 1e9 / rate
        lag = Histogram()
        skipped = 0
        self._set_window(warmup, duration)
        window = asyncio.ensure_future(self._window())
        t0 = perf_ns()
        end = self.window_end
        i = 0
        n = len(live)
        while True:
            now = perf_ns()
            if now >= end or self.capped:
                break
            due = int((now - t0) / interval) + 1
            while i < due:
                v = live[i % n]
                lag.add(max(1, now - int(t0 + i * interval)))
                if v.inflight >= per_visitor_cap:
                    skipped += 1
                else:
                    v.send()
                i += 1
            await asyncio.sleep(max(0.0, (t0 + i * interval - perf_ns()) / 1e9))
        cpu, wall = await window
        drain_s = await self._drain(float(cmd.get("drain", 5)))
        out = self._result(duration, cpu, wall, drain_s)
        out.update({"offered_per_s": rate, "skipped": skipped, "schedule_lag": lag.summary()})
        return out

    async def saturate(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self._reset_phase()
        live = self._live()
        window = int(cmd.get("window", 4))
        warmup, duration = float(cmd.get("warmup", 2)), float(cmd.get("duration", 10))
        self.max_messages = int(cmd.get("max_messages", 2_000_000))
        self.saturating = True
        self._set_window(warmup, duration)
        measuring = asyncio.ensure_future(self._window())
        await asyncio.sleep(0)
        for _ in range(window):
            for v in live:
                v.send()
        try:
            cpu, wall = await measuring
        finally:
            self.saturating = False
        drain_s = await self._drain(float(cmd.get("drain", 5)))
        out = self._result(duration, cpu, wall, drain_s)
        out["window_per_visitor"] = window
        return out

    def stats(self) -> dict[str, Any]:
        return {"visitors_alive": sum(1 for v in self.visitors if v.alive),
                "visitors": len(self.visitors), "operators": len(self.operators),
                "created": len(self.created), "errors": dict(self.errors), "closes": dict(self.closes),
                "operator_frames": dict(self.operator_frames),
                "visitor_frames": dict(self.visitor_frames), "cpu_s": round(cpu_seconds(), 3)}

    async def close_visitors(self) -> dict[str, Any]:
        """Close every open visitor socket (they no longer count as alive)."""
        open_ = [v for v in self.visitors if v.alive and v.ws is not None]
        for v in open_:
            v.alive = False
            assert v.ws is not None
            v.ws.close()
        await asyncio.gather(*(v.ws.closed for v in open_ if v.ws is not None))
        return {"closed": len(open_)}

    async def close(self) -> None:
        self.closing = True
        for v in self.visitors:
            if v.ws is not None:
                v.ws.close()
        for o in self.operators:
            if o.ws is not None:
                o.ws.close()
        await asyncio.sleep(0.2)
        await self.http.aclose()


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    gen = Generator()
    raise_nofile()

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = json.loads(line)
            name = cmd.get("cmd")
            try:
                if name == "setup":
                    res = await gen.setup(cmd)
                elif name == "create":
                    res = await gen.create(int(cmd["count"]), int(cmd.get("concurrency", 4)),
                                           bool(cmd.get("accept", True)))
                elif name == "open":
                    res = await gen.open(int(cmd["count"]), int(cmd.get("concurrency", 32)))
                elif name == "rate":
                    res = await gen.rate(cmd)
                elif name == "saturate":
                    res = await gen.saturate(cmd)
                elif name == "close_visitors":
                    res = await asyncio.wait_for(gen.close_visitors(), 60)
                elif name == "stats":
                    res = gen.stats()
                elif name == "quit":
                    reply({"event": "done", "cmd": name})
                    break
                else:
                    raise ValueError(f"unknown command {name!r}")
            except HARNESS_ERRORS as exc:  # reported to the orchestrator, the process goes on
                log(f"{name} failed: {type(exc).__name__}: {exc}")
                reply({"event": "error", "cmd": name, "error": f"{type(exc).__name__}: {exc}"})
                continue
            reply({"event": "done", "cmd": name, **res})
    finally:
        await gen.close()


def main() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(serve())
    else:
        uvloop.run(serve())


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
