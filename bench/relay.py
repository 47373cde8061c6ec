"""Relay throughput and latency: load phases driven through one or more load-generator processes."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.control import LoadgenProcess, call_all
from bench.servers import Server, cpu_seconds, machine_cpu, rss_bytes
from bench.stats import Histogram

NCPU = os.cpu_count() or 1


@dataclass
class RelayParams:
    visitors: int = 100          # visitor conversations (one socket each)
    operators: int = 10          # operator sockets (each accepts visitors/operators chats)
    rate: float = 500.0          # fixed offered load, messages/s (all generators together)
    window: int = 4              # saturation: messages in flight per visitor
    warmup: float = 2.0          # seconds of load before measuring
    duration: float = 10.0       # seconds measured
    drain: float = 5.0           # max seconds to wait for in-flight messages after a phase
    rounds: int = 2              # saturation rounds per server (interleaved; best is reported)
    text_bytes: int = 80         # message text length
    max_messages: int = 1_000_000  # hard cap on messages sent per generator per phase

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


class RelayTarget:
    """One server under test with its generator processes, operators and visitors set up."""

    def __init__(self, server: Server, logins: list[dict[str, str]], params: RelayParams,
                 generators: int, workdir: Path) -> None:
        self.server = server
        self.logins = logins
        self.p = params
        self.n_gen = generators
        self.workdir = workdir
        self.gens: list[LoadgenProcess] = []
        self.setup_info: dict[str, Any] = {}

    async def start(self) -> None:
        t0 = time.perf_counter()
        for i in range(self.n_gen):
            log = self.workdir / f"loadgen-{self.server.name}-{self.n_gen}g-{i}.log"
            self.gens.append(await LoadgenProcess.start(f"loadgen-{self.server.name}-{i}", log))
        base = {"cmd": "setup", "host": "127.0.0.1", "port": self.server.port,
                "origin": self.server.origin, "site_key": self.server.site_key,
                "text_bytes": self.p.text_bytes,
                "protocol": "socketio" if self.server.name == "socketio" else "confide"}
        await call_all(self.gens, [{**base, "operators": self.logins[i::self.n_gen]}
                                   for i in range(self.n_gen)], limit_s=120)
        counts = _split(self.p.visitors, self.n_gen)
        created = await call_all(self.gens, [{"cmd": "create", "count": c, "concurrency": 2, "accept": True}
                                             for c in counts], limit_s=300)
        short = [r for r, c in zip(created, counts, strict=True) if r["created"] != c or r["accepted"] != c]
        if short:
            raise RuntimeError(f"{self.server.name}: could not create and accept every conversation: {short}")
        opened = await call_all(self.gens, [{"cmd": "open", "count": c} for c in counts], limit_s=300)
        bad = [r for r, c in zip(opened, counts, strict=True) if r["opened"] != c]
        if bad:
            raise RuntimeError(f"{self.server.name}: could not open every visitor socket: {bad}")
        self.setup_info = {
            "seconds": round(time.perf_counter() - t0, 2),
            "create_and_accept_s": max(r["seconds"] for r in created),
            "open_s": max(r["seconds"] for r in opened),
        }

    async def phase(self, kind: str) -> dict[str, Any]:
        p = self.p
        cmd: dict[str, Any] = {"cmd": kind, "warmup": p.warmup, "duration": p.duration, "drain": p.drain,
                               "max_messages": p.max_messages}
        if kind == "rate":
            cmd["rate"] = p.rate / self.n_gen
            cmd["max_messages"] = int(p.rate / self.n_gen * (p.warmup + p.duration)) + 10
        else:
            cmd["window"] = p.window
        pid = self.server.pid
        tasks = [asyncio.ensure_future(g.call(cmd, limit_s=p.warmup + p.duration + p.drain + 60))
                 for g in self.gens]
        await asyncio.sleep(p.warmup)
        s0, m0, w0 = cpu_seconds(pid), machine_cpu(), time.perf_counter()
        await asyncio.sleep(p.duration)
        s1, m1, w1 = cpu_seconds(pid), machine_cpu(), time.perf_counter()
        results = await asyncio.gather(*tasks)
        wall = w1 - w0
        server_util = (s1 - s0) / wall if s0 is not None and s1 is not None else None
        machine_util = (m1[0] - m0[0]) / (m1[1] - m0[1]) * NCPU if m1[1] > m0[1] else None
        return self._merge(kind, results, server_util, machine_util)

    def _merge(self, kind: str, results: list[dict[str, Any]], server_util: float | None,
               machine_util: float | None) -> dict[str, Any]:
        hist = Histogram.merge(Histogram.from_json(r["hist"]) for r in results)
        delivered = sum(r["delivered_in_window"] for r in results)
        gen_utils = [r["cpu_util"] for r in results]
        gen_cpu = sum(r["cpu_s"] for r in results)
        errors: Counter[str] = Counter()
        closes: Counter[str] = Counter()
        for r in results:
            errors.update(r["errors"])
            closes.update(r["closes"])
        out: dict[str, Any] = {
            "kind": kind, "server": self.server.name, "generators": self.n_gen,
            "msgs_per_s": round(delivered / self.p.duration, 1),
            "delivered_in_window": delivered,
            "sent": sum(r["sent"] for r in results),
            "acks": sum(r["acks"] for r in results),
            "undelivered_after_drain": sum(r["undelivered_after_drain"] for r in results),
            "refused": sum(r["refused"] for r in results),
            "latency": hist.summary(),
            "server_cpu_util": _r(server_util),
            "loadgen_cpu_util": gen_utils,
            "machine_cpu_util": _r(machine_util),
            "other_cpu_util": _r(machine_util - (server_util or 0) - sum(gen_utils)
                                 if machine_util is not None else None),
            "loadgen_cpu_us_per_msg": round(gen_cpu / delivered * 1e6, 2) if delivered else None,
            "server_rss_bytes": rss_bytes(self.server.pid),
            "server_alive": self.server.alive(),
            "errors": dict(errors), "closes": dict(closes),
        }
        if kind == "rate":
            out["offered_per_s"] = self.p.rate
            out["skipped"] = sum(r["skipped"] for r in results)
            out["schedule_lag_p99_ms"] = max((r["schedule_lag"]["p99_ms"] or 0) for r in results)
        else:
            out["window_per_visitor"] = self.p.window
            out["in_flight"] = self.p.window * self.p.visitors
        return out

    async def stats(self) -> list[dict[str, Any]]:
        return await call_all(self.gens, [{"cmd": "stats"}] * len(self.gens), limit_s=30)

    async def stop(self) -> None:
        await asyncio.gather(*(g.stop() for g in self.gens), return_exceptions=True)
        self.gens = []


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
