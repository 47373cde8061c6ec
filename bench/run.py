"""Confide benchmark suite: ``python -m bench.run`` from the repository root (``make bench``).

Writes bench/results/latest.json and prints a summary. See bench/README.md for what each
figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import widget_size
from bench.idle import measure_idle
from bench.relay import RelayParams, RelayTarget
from bench.servers import (
    HARNESS_ERRORS,
    ROOT,
    Server,
    machine_cpu,
    prefill_confide,
    prepare_confide,
    raise_nofile,
    set_boost,
    start_confide,
    start_raw_relay,
    start_socketio_relay,
    uvicorn_options,
)

RESULTS = ROOT / "bench" / "results" / "latest.json"

# name, description, comparison, threshold
TARGETS: list[tuple[str, str, str, float]] = [
    ("relay_ratio", "Confide/raw throughput at saturation", ">=", 0.5),
    ("relay_over_socketio", "Confide/python-socketio throughput at saturation", ">=", 1.3),
    ("relay_200k_over_fresh", "relay_ratio_at_200k / relay_ratio (within 15 % of fresh)", ">=", 0.85),
    ("relay_p99_over_raw_at_500", "Confide p99 / raw p99 at 500 msg/s", "<=", 10.0),
    ("bytes_per_idle_socket", "memory per idle visitor socket at 5k (bytes)", "<=", 28672),
    ("launcher_gz_bytes", "widget.js gzip -9 (bytes)", "<=", 5120),
    ("widget_gz_bytes", "widget.js + app.js gzip -9 (bytes)", "<=", 20480),
]

GEN_BOUND_UTIL = 0.9  # a generator process above this CPU share is considered saturated
BUSY_MACHINE = 0.25  # CPU cores used by processes outside the benchmark that make a run suspect


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- context ------------------------------------------------------------------------------
def _git(*args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def machine_info() -> dict[str, Any]:
    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    versions: dict[str, str | None] = {}
    for pkg in ("uvicorn", "websockets", "starlette", "fastapi", "uvloop", "httptools", "sqlalchemy",
                "aiosqlite", "confide"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "platform": platform.platform(), "cpu_model": cpu_model, "cpus": os.cpu_count(),
        "mem_total_bytes": mem_total, "python": platform.python_version(), "versions": versions,
        "loadavg_at_start": list(os.getloadavg()),
        "busy_cores_at_start": busy_cores(1.0),
    }


def boost_priority(enabled: bool) -> int | None:
    """Run the orchestrator and every server and generator at nice -10 (process and autogroup, see
    ``servers.boost``) so that other work on a shared machine disturbs the measurement less.
    Needs root; None when not possible."""
    if not enabled:
        return None
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except OSError:
        return None
    set_boost(-10)
    return -10


def busy_cores(seconds: float) -> float:
    """CPU cores kept busy by whatever runs on the machine, sampled over ``seconds``."""
    b0, t0 = machine_cpu()
    time.sleep(seconds)
    b1, t1 = machine_cpu()
    return round((b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1), 2)


# -- relay ------------------------------------------------------------------------------
async def relay_suite(servers: list[Server], logins: dict[str, list[dict[str, str]]], params: RelayParams,
                      generators: int, workdir: Path, errors: list[str], prefill: int = 0) -> dict[str, Any]:
    """Set up every server, then run the phases in turns. A server that fails is dropped (its error is
    recorded) and the others go on.

    With ``prefill``, Confide's database is then topped up to that many stored messages (the server
    idle, its sockets open) and Confide's saturation rounds are run again, interleaved with the raw
    relay's (which count towards the raw relay's best)."""
    targets = [RelayTarget(s, logins[s.name], params, generators, workdir) for s in servers]
    out: dict[str, Any] = {"generators": generators}
    live: list[RelayTarget] = []

    async def attempt(t: RelayTarget, what: str, step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except HARNESS_ERRORS as exc:  # any failure of one server must not lose the others' figures
            errors.append(f"relay, {t.server.name}, {what}: {type(exc).__name__}: {exc}"
                          + ("" if t.server.alive() else f" (server exited; log tail:\n{t.server.log_tail(15)})"))
            log(errors[-1])
            if t in live:
                live.remove(t)
            await t.stop()

    try:
        for t in targets:
            log(f"relay: setting up {t.server.name} ({params.visitors} visitors, "
                f"{params.operators} operators, {generators} generator process(es))")
            live.append(t)
            await attempt(t, "setup", t.start)
            out[t.server.name] = {"setup": t.setup_info}

        async def phase(t: RelayTarget, kind: str, key: str = "saturation_rounds") -> None:
            res = await t.phase(kind)
            if kind == "rate":
                out[t.server.name]["rate"] = res
            else:
                out[t.server.name].setdefault(key, []).append(res)

        for t in targets:  # not `live`: attempt() removes a failed target from it
            if t in live:
                log(f"relay: {t.server.name}: fixed load {params.rate:g} msg/s")
                await attempt(t, "fixed load", functools.partial(phase, t, "rate"))
        for r in range(params.rounds):
            for t in targets:
                if t in live:
                    log(f"relay: {t.server.name}: saturation round {r + 1}/{params.rounds}")
                    await attempt(t, "saturation", functools.partial(phase, t, "saturate"))
        confide = next((t for t in live if t.server.name == "confide"), None)
        if prefill and confide is not None:
            log(f"relay: confide: filling the database up to {prefill:,} messages")
            info: dict[str, Any] = {}

            async def fill() -> None:
                info.update(await asyncio.to_thread(prefill_confide, confide.server, prefill))

            await attempt(confide, "prefill", fill)
            out["confide"]["prefill"] = info
            if info.get("complete"):
                for r in range(params.rounds):
                    for t in (confide, *[x for x in targets if x.server.name == "raw"]):
                        if t in live:
                            held = f" ({info['messages_after']:,} messages stored)" if t is confide else ""
                            log(f"relay: {t.server.name}: saturation round {r + 1}/{params.rounds} after the "
                                f"prefill{held}")
                            key = "saturation_rounds_prefilled" if t is confide else "saturation_rounds"
                            await attempt(t, "saturation after prefill",
                                          functools.partial(phase, t, "saturate", key))
            elif info:
                errors.append(f"relay, confide, prefill: stopped at {info.get('messages_after')} of {prefill} "
                              "messages (time limit)")
        for t in live:
            stats = await t.stats()
            out[t.server.name]["loadgen_stats"] = [{k: v for k, v in s.items() if k not in ("event", "cmd")}
                                                   for s in stats]
    finally:
        for t in targets:
            await t.stop()
    for t in live:
        rounds = out[t.server.name].get("saturation_rounds")
        if rounds and "rate" in out[t.server.name]:
            out[t.server.name]["saturation"] = max(rounds, key=lambda x: x["msgs_per_s"])
        prefilled = out[t.server.name].get("saturation_rounds_prefilled")
        if prefilled:
            out[t.server.name]["saturation_prefilled"] = max(prefilled, key=lambda x: x["msgs_per_s"])
    for name in [n for n, v in out.items() if isinstance(v, dict) and "saturation" not in v]:
        out[name]["incomplete"] = True
    return out


def generator_bound(rel: dict[str, Any]) -> bool:
    """True when a generator, not the raw relay, limited the raw relay's saturation figure."""
    best = rel.get("raw", {}).get("saturation")
    if not best:
        return False
    return max(best["loadgen_cpu_util"]) >= GEN_BOUND_UTIL and (best["server_cpu_util"] or 0) < GEN_BOUND_UTIL


async def run_relay(args: argparse.Namespace, params: RelayParams, workdir: Path, results: dict[str, Any],
                    started: list[Server]) -> None:
    servers: list[Server] = []
    logins: dict[str, list[dict[str, str]]] = {}
    raw = start_raw_relay(workdir)
    started.append(raw)
    servers.append(raw)
    logins["raw"] = [{"email": f"op{i}@raw.test", "password": "-"} for i in range(params.operators)]
    if not args.raw_only and not args.no_socketio:
        try:
            sio = start_socketio_relay(workdir)
            started.append(sio)
            servers.append(sio)
            logins["socketio"] = [{"email": f"op{i}@sio.test", "password": "-"} for i in range(params.operators)]
        except HARNESS_ERRORS as exc:  # report it and still measure the others
            results["errors"].append(f"python-socketio could not be started for the relay benchmark: {exc}")
            log(results["errors"][-1])
    if not args.raw_only:
        try:
            confide = start_confide(workdir)
            started.append(confide)
            logins["confide"] = prepare_confide(confide, params.operators, max_chats=1000)
            servers.append(confide)
        except HARNESS_ERRORS as exc:  # report it and still measure the raw relay
            results["errors"].append(f"Confide could not be started for the relay benchmark: {exc}")
            log(results["errors"][-1])
    generators = 1 if args.generators == "auto" else int(args.generators)
    rel = await relay_suite(servers, logins, params, generators, workdir, results["errors"], args.prefill)
    if args.generators == "auto" and generators == 1 and generator_bound(rel):
        note = ("one load-generator process saturated its core before the raw relay did; "
                "the relay benchmark was repeated with 2 generator processes (results merged)")
        results["notes"].append(note)
        log(note)
        results["relay_first_attempt_1_generator"] = rel
        rel = await relay_suite(servers, logins, params, 2, workdir, results["errors"], args.prefill)
    results["relay"] = rel
    for s in servers:
        s.stop()


def summarize_relay(results: dict[str, Any]) -> None:
    rel = results.get("relay") or {}
    for name, prefix in (("confide", "relay"), ("raw", "raw"), ("socketio", "socketio")):
        r = rel.get(name)
        if not r or r.get("incomplete"):
            continue
        sat, rate = r["saturation"], r["rate"]
        results[f"{prefix}_msgs_per_s"] = sat["msgs_per_s"]
        results[f"{prefix}_p50_ms_at_saturation"] = sat["latency"]["p50_ms"]
        results[f"{prefix}_p99_ms_at_saturation"] = sat["latency"]["p99_ms"]
        results[f"{prefix}_msgs_per_s_at_500"] = rate["msgs_per_s"]
        results[f"{prefix}_p50_ms_at_500"] = rate["latency"]["p50_ms"]
        results[f"{prefix}_p99_ms_at_500"] = rate["latency"]["p99_ms"]
        results[f"{prefix}_server_cpu_util_at_saturation"] = sat["server_cpu_util"]
        results[f"{prefix}_other_cpu_util_at_saturation"] = sat["other_cpu_util"]
        cpu = sat["server_cpu_util"]
        results[f"{prefix}_msgs_per_cpu_s_at_saturation"] = round(sat["msgs_per_s"] / cpu) if cpu else None
        busy = max((ph["other_cpu_util"] or 0)
                   for ph in [rate, *r["saturation_rounds"], *r.get("saturation_rounds_prefilled", [])])
        if busy > BUSY_MACHINE:
            results["notes"].append(
                f"{name}: processes outside the benchmark used up to {busy:.2f} CPU cores during a measured "
                "phase: the machine was not quiet, the figures are pessimistic and noisy")
    def ratio(key: str, a: str, b: str) -> None:
        if results.get(a) and results.get(b):
            results[key] = round(results[a] / results[b], 3)

    ratio("relay_ratio", "relay_msgs_per_s", "raw_msgs_per_s")
    # less sensitive to a busy machine: messages per CPU-second of the server process
    ratio("relay_ratio_per_cpu", "relay_msgs_per_cpu_s_at_saturation", "raw_msgs_per_cpu_s_at_saturation")
    ratio("relay_over_socketio", "relay_msgs_per_s", "socketio_msgs_per_s")
    ratio("relay_over_socketio_per_cpu", "relay_msgs_per_cpu_s_at_saturation",
          "socketio_msgs_per_cpu_s_at_saturation")
    ratio("socketio_ratio", "socketio_msgs_per_s", "raw_msgs_per_s")
    ratio("relay_p99_over_raw_at_500", "relay_p99_ms_at_500", "raw_p99_ms_at_500")
    pre = (rel.get("confide") or {}).get("saturation_prefilled")
    if pre:
        held = rel["confide"]["prefill"]["messages_after"]
        results["relay_prefill_messages"] = held
        results["relay_msgs_per_s_at_200k"] = pre["msgs_per_s"]
        results["relay_p99_ms_at_saturation_at_200k"] = pre["latency"]["p99_ms"]
        results["relay_server_cpu_util_at_saturation_at_200k"] = pre["server_cpu_util"]
        cpu = pre["server_cpu_util"]
        results["relay_msgs_per_cpu_s_at_200k"] = round(pre["msgs_per_s"] / cpu) if cpu else None
        ratio("relay_ratio_at_200k", "relay_msgs_per_s_at_200k", "raw_msgs_per_s")
        ratio("relay_ratio_per_cpu_at_200k", "relay_msgs_per_cpu_s_at_200k", "raw_msgs_per_cpu_s_at_saturation")
        ratio("relay_200k_over_fresh", "relay_ratio_at_200k", "relay_ratio")
        ratio("relay_200k_over_fresh_per_cpu", "relay_msgs_per_cpu_s_at_200k", "relay_msgs_per_cpu_s_at_saturation")
    raw = rel.get("raw", {}).get("saturation")
    if raw:
        us = raw["loadgen_cpu_us_per_msg"]
        per_process = round(1e6 / us) if us else None
        conf = results.get("relay_msgs_per_s")
        results["loadgen"] = {
            "generators": rel.get("generators"),
            "cpu_util_at_raw_saturation": raw["loadgen_cpu_util"],
            "raw_server_cpu_util_at_saturation": raw["server_cpu_util"],
            "cpu_us_per_msg": us,
            "ceiling_msgs_per_s_per_process_est": per_process,
            "raw_over_confide": round(raw["msgs_per_s"] / conf, 2) if conf else None,
            "bottleneck_at_raw_saturation": "loadgen" if generator_bound(rel) else "server",
        }


# -- idle -------------------------------------------------------------------------------
async def run_idle(args: argparse.Namespace, counts: list[int], workdir: Path, results: dict[str, Any],
                   started: list[Server]) -> None:
    idle: dict[str, Any] = {}
    results["idle"] = idle
    if not args.raw_only:
        try:
            confide = start_confide(workdir)
            started.append(confide)
            logins = prepare_confide(confide, 1, max_chats=1000, own_department=True)
            log(f"idle: Confide, {max(counts)} conversations then {counts} sockets")
            idle["confide"] = await measure_idle(confide, logins, counts, workdir)
            confide.stop()
        except HARNESS_ERRORS as exc:  # report it and still measure the raw relay
            results["errors"].append(f"idle benchmark on Confide failed: {exc}")
            log(results["errors"][-1])
    raw = start_raw_relay(workdir)
    started.append(raw)
    log(f"idle: raw relay, {counts} sockets")
    idle["raw"] = await measure_idle(raw, [], counts, workdir)
    raw.stop()
    for name, prefix in (("confide", ""), ("raw", "raw_")):
        steps = {s["sockets"]: s for s in (idle.get(name) or {}).get("steps", [])}
        for n, step in steps.items():
            results[f"{prefix}bytes_per_idle_socket_{_k(n)}"] = step["bytes_per_socket"]
        if steps:
            results[f"{prefix}bytes_per_idle_socket"] = steps[max(steps)]["bytes_per_socket"]


def _k(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


# -- report -----------------------------------------------------------------------------
def evaluate_targets(results: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, desc, op, threshold in TARGETS:
        value = results.get(key)
        ok = None if value is None else (value >= threshold if op == ">=" else value <= threshold)
        out[key] = {"description": desc, "target": f"{op} {threshold:g}", "value": value, "pass": ok}
    return out


def _fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:,.2f}{unit}" if abs(x) < 100 else f"{x:,.0f}{unit}"
    if isinstance(x, int):
        return f"{x:,}{unit}"
    return f"{x}{unit}"


def render(results: dict[str, Any]) -> str:
    p = results["params"]["relay"]
    lines = [
        (f"Confide benchmark — {results['timestamp']}  commit {results.get('git_commit') or 'none'}"
         f"{' (dirty tree)' if results.get('git_dirty') else ''}"),
        (f"machine: {results['machine']['cpus']} CPU {results['machine']['cpu_model']}, "
         f"Python {results['machine']['python']}, uvicorn {results['machine']['versions'].get('uvicorn')}; "
         f"uvicorn {' '.join(results['params']['uvicorn_options'])}"),
        (f"machine load at start: {results['machine']['busy_cores_at_start']} cores busy, loadavg "
         f"{' '.join(f'{x:.2f}' for x in results['machine']['loadavg_at_start'])}; servers and generators at "
         f"nice {results['nice'] if results['nice'] is not None else 'unchanged'}"),
        "",
        (f"Relay: {p['visitors']} visitor sockets, {p['operators']} operator sockets, {p['text_bytes']}-byte "
         f"messages, {p['warmup']:g}s warm-up + {p['duration']:g}s measured per phase; visitor rate limit "
         "lifted (CONFIDE_VISITOR_MSG_RATE/BURST=100000)"),
        f"{'':38}{'Confide':>14}{'raw relay':>14}{'socketio':>14}",
    ]
    rows = [
        (f"delivered/s at {p['rate']:g} msg/s", "msgs_per_s_at_500", ""),
        ("  p50 latency", "p50_ms_at_500", " ms"),
        ("  p99 latency", "p99_ms_at_500", " ms"),
        (f"saturation (window {p['window']}/visitor) msg/s", "msgs_per_s", ""),
        ("  p50 latency", "p50_ms_at_saturation", " ms"),
        ("  p99 latency", "p99_ms_at_saturation", " ms"),
        ("  server CPU (cores)", "server_cpu_util_at_saturation", ""),
        ("  other processes' CPU (cores)", "other_cpu_util_at_saturation", ""),
        ("  msg per server CPU-second", "msgs_per_cpu_s_at_saturation", ""),
    ]
    for label, key, unit in rows:
        lines.append(f"{label:<38}" + "".join(f"{_fmt(results.get(f'{prefix}_{key}'), unit):>14}"
                                              for prefix in ("relay", "raw", "socketio")))
    if results.get("relay_prefill_messages"):
        lines += [
            f"saturation with {results['relay_prefill_messages']:,} messages stored",
            f"{'  msg/s':<38}{_fmt(results.get('relay_msgs_per_s_at_200k')):>14}",
            f"{'  p99 latency':<38}{_fmt(results.get('relay_p99_ms_at_saturation_at_200k'), ' ms'):>14}",
            f"{'  server CPU (cores)':<38}{_fmt(results.get('relay_server_cpu_util_at_saturation_at_200k')):>14}",
            f"{'  msg per server CPU-second':<38}{_fmt(results.get('relay_msgs_per_cpu_s_at_200k')):>14}",
        ]
    lines.append("")
    for label, key, key_cpu in (
        ("Confide / raw relay", "relay_ratio", "relay_ratio_per_cpu"),
        ("Confide / python-socketio", "relay_over_socketio", "relay_over_socketio_per_cpu"),
        ("python-socketio / raw relay", "socketio_ratio", None),
        ("Confide / raw relay, 200k stored", "relay_ratio_at_200k", "relay_ratio_per_cpu_at_200k"),
        ("200k stored / fresh", "relay_200k_over_fresh", "relay_200k_over_fresh_per_cpu"),
        ("p99 at 500 msg/s, Confide / raw", "relay_p99_over_raw_at_500", None),
    ):
        per_cpu = f"   per CPU-second {_fmt(results.get(key_cpu))}" if key_cpu else ""
        lines.append(f"{label:<38}{_fmt(results.get(key)):>14}{per_cpu}")
    lg = results.get("loadgen")
    if lg:
        utils = ", ".join(f"{u:.0%}" for u in lg["cpu_util_at_raw_saturation"])
        lines += [
            "",
            (f"Load generator: {lg['generators']} separate process(es); CPU at raw saturation {utils} of a "
             f"core (raw server {_fmt(lg['raw_server_cpu_util_at_saturation'])} cores); "
             f"{_fmt(lg['cpu_us_per_msg'])} µs CPU per message → ceiling ≈ "
             f"{_fmt(lg['ceiling_msgs_per_s_per_process_est'])} msg/s per process; raw relay = "
             f"{_fmt(lg['raw_over_confide'])}× Confide; bottleneck at raw saturation: "
             f"{lg['bottleneck_at_raw_saturation']}"),
        ]
    idle = results.get("idle") or {}
    if idle:
        lines += ["", "Idle visitor sockets (after hello/welcome): RSS growth / sockets"]
        for name, label in (("confide", "Confide"), ("raw", "raw relay")):
            d = idle.get(name)
            if not d:
                continue
            steps = ", ".join(f"{_k(s['sockets'])}: {_fmt(s['bytes_per_socket'])} B "
                              f"(Pss {_fmt(s['pss_bytes_per_socket'])} B, {s['alive_after_settle']} alive)"
                              for s in d["steps"])
            extra = ""
            if d.get("bytes_per_conversation") is not None:
                extra = f"; creating the conversations cost {_fmt(d['bytes_per_conversation'])} B each"
            lines.append(f"  {label:<10} {steps}{extra}")
    w = results.get("widget") or {}
    lines += ["", f"Widget: widget.js {_fmt(w.get('launcher_gz_bytes'))} B gz, widget.js+app.js "
                  f"{_fmt(w.get('widget_gz_bytes'))} B gz"
                  + (f" (missing: {', '.join(w['missing'])})" if w.get("missing") else "")]
    lines += ["", "Targets:"]
    for key, t in results["targets"].items():
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[t["pass"]]
        lines.append(f"  [{mark}] {key:<24} {_fmt(t['value']):>12}  target {t['target']:<10} "
                     f"{t['description']}")
    for note in results["notes"]:
        lines.append(f"note: {note}")
    for err in results["errors"]:
        lines.append(f"ERROR: {err}")
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    d = RelayParams()
    ap.add_argument("--quick", action="store_true", help="short phases and small counts (smoke test)")
    ap.add_argument("--raw-only", action="store_true", help="benchmark only the raw relay")
    ap.add_argument("--no-socketio", action="store_true", help="leave out the python-socketio peer")
    ap.add_argument("--prefill", type=int, default=None,
                    help="after the fresh rounds, fill Confide's database up to this many messages and measure "
                         "again (default 200000; 0 with --quick)")
    ap.add_argument("--skip-relay", action="store_true")
    ap.add_argument("--skip-idle", action="store_true")
    ap.add_argument("--visitors", type=int, default=d.visitors)
    ap.add_argument("--operators", type=int, default=d.operators)
    ap.add_argument("--rate", type=float, default=d.rate)
    ap.add_argument("--window", type=int, default=d.window)
    ap.add_argument("--warmup", type=float, default=d.warmup)
    ap.add_argument("--duration", type=float, default=d.duration)
    ap.add_argument("--rounds", type=int, default=d.rounds)
    ap.add_argument("--text-bytes", type=int, default=d.text_bytes)
    ap.add_argument("--generators", choices=["auto", "1", "2"], default="auto")
    ap.add_argument("--idle-counts", default="1000,5000")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--keep-workdir", action="store_true", help="keep server and generator logs")
    ap.add_argument("--no-boost", action="store_true",
                    help="do not raise the CPU priority of the benchmark (nice -10, needs root)")
    return ap.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    params = RelayParams(visitors=args.visitors, operators=args.operators, rate=args.rate, window=args.window,
                         warmup=args.warmup, duration=args.duration, rounds=args.rounds,
                         text_bytes=args.text_bytes)
    counts = [int(x) for x in args.idle_counts.split(",") if x.strip()]
    if args.prefill is None:
        args.prefill = 0 if args.quick else 200_000
    if args.quick:
        params.warmup, params.duration, params.rounds = 1.0, 3.0, 1
        counts = [200, 1000]
    # SIGTERM/SIGHUP (e.g. make interrupted) cancel the run like Ctrl-C does, so that every server and
    # generator process (each in its own process group) is still stopped by the finally blocks
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, task.cancel)
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
        "machine": machine_info(),
        "params": {"relay": params.as_dict(), "idle_counts": counts, "uvicorn_options": uvicorn_options(),
                   "generators": args.generators, "quick": args.quick, "prefill_messages": args.prefill,
                   "confide_env": {"CONFIDE_VISITOR_MSG_RATE": "100000",
                                   "CONFIDE_VISITOR_MSG_BURST": "100000", "CONFIDE_LOG_LEVEL": "warning"}},
        "notes": [("the per-visitor message rate limit is lifted for the benchmark "
                   "(CONFIDE_VISITOR_MSG_RATE=100000, CONFIDE_VISITOR_MSG_BURST=100000)")],
        "errors": [],
        "nofile_limit": raise_nofile(),
        "nice": boost_priority(not args.no_boost),
    }
    results["widget"] = widget_size.measure()
    results["launcher_gz_bytes"] = results["widget"]["launcher_gz_bytes"]
    results["widget_gz_bytes"] = results["widget"]["widget_gz_bytes"]
    workdir = Path(tempfile.mkdtemp(prefix="confide-bench-"))
    started: list[Server] = []
    failed = False
    try:
        if not args.skip_relay:
            try:
                await run_relay(args, params, workdir, results, started)
            except HARNESS_ERRORS as exc:  # the other parts and the report still run
                failed = True
                results["errors"].append(f"relay benchmark failed: {type(exc).__name__}: {exc}")
                log(traceback.format_exc())
            summarize_relay(results)
        if not args.skip_idle:
            try:
                await run_idle(args, counts, workdir, results, started)
            except HARNESS_ERRORS as exc:  # the report is still written
                failed = True
                results["errors"].append(f"idle benchmark failed: {type(exc).__name__}: {exc}")
                log(traceback.format_exc())
    finally:
        for s in started:
            s.stop()
        if failed or results["errors"] or args.keep_workdir:
            results["workdir"] = str(workdir)
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["targets"] = evaluate_targets(results)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        results = runner(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("benchmark interrupted; servers and load generators stopped", file=sys.stderr)
        return 130
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    print(f"\nwritten: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out} "
          f"({results['seconds']:g}s)")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
